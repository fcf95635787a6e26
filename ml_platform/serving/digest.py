"""Content digest of a model directory, checked before a server loads the model."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ml_platform.errors import DeploymentError

_CHUNK = 1 << 20


def directory_digest(path: str | Path) -> str:
    """sha256 over every file's relative path and content, in sorted path order.

    The one implementation: the registry records it, the artifact gate and the server check it
    (ml_platform.model_gates re-exports it). Kept here, free of heavy imports, because the
    serving image carries only what the server needs. Lengths are hashed before paths and
    contents so no two different trees share a byte stream.
    """
    root = Path(path)
    if not root.is_dir():
        raise DeploymentError(f"cannot digest model directory '{root}': not a directory")
    digest = hashlib.sha256()
    files = {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file()}
    for rel_path in sorted(files):
        file, rel = files[rel_path], rel_path.encode()
        digest.update(len(rel).to_bytes(8, "big") + rel)
        digest.update(file.stat().st_size.to_bytes(8, "big"))
        with file.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()
