"""Find secrets in a saved image (``docker save`` tar): every file of every layer, and the config.

Streams the tar (an image is hundreds of MB): the outer archive once, each layer as a nested
stream, each file in chunks that overlap by the longest needle so nothing straddling a chunk
boundary is missed. A finding says which secret (by name), which layer and which path; the
value itself never leaves this module, not even in a repr.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatch
from typing import IO, Any

PRIVATE_KEY = "private key"
MIN_SECRET_LENGTH = 8  # shorter values match by accident everywhere; reported as not checked
_MARKER = b"PRIVATE KEY-----"
# A real key block: the BEGIN line, optional RFC 1421 headers, then base64. Library code that
# merely names the marker (cryptography, google-auth) has no base64 body after it.
_KEY_BLOCK = re.compile(rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----\r?\n"
                        rb"(?:[A-Za-z-]+: [^\r\n]*\r?\n)*\r?\n?[A-Za-z0-9+/=\r\n]{64}")
_CHUNK = 1 << 20
# Private keys shipped on purpose by Debian packages: GnuTLS compiles in the key of its FIPS
# power-on self-tests. Only private-key findings are waived here, never a configured secret.
KNOWN_TEST_KEYS = ("/usr/lib/*/libgnutls.so*",)
_SMALL_MEMBER = 16 << 20


@dataclass(frozen=True)
class SecretFinding:
    kind: str  # PRIVATE_KEY, or "secret" for a configured value
    name: str | None  # the configured secret's name (e.g. the env variable), never its value
    layer: str  # "3/7 (sha256:ab12...)" once resolved, or "image config"
    path: str

    def describe(self) -> str:
        what = "a private key block" if self.kind == PRIVATE_KEY else f"the value of {self.name}"
        return f"{what} in layer {self.layer} at {self.path}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "layer": self.layer, "path": self.path}


@dataclass
class ScanResult:
    findings: list[SecretFinding] = field(default_factory=list)
    files_scanned: int = 0
    layers_scanned: int = 0
    checked: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    waived: list[SecretFinding] = field(default_factory=list)  # allowed or known test keys


def secrets_from_env(names: Iterable[str], environ: Mapping[str, str] | None = None
                     ) -> dict[str, str]:
    """``{"$NAME": value}`` for each set, non-empty variable in ``names``."""
    env = os.environ if environ is None else environ
    return {f"${n}": env[n] for n in names if env.get(n)}


class _Needles:
    def __init__(self, secrets: Mapping[str, str]) -> None:
        self.by_name = {name: v.encode() for name, v in secrets.items()
                        if len(v) >= MIN_SECRET_LENGTH}
        self.skipped = tuple(n for n, v in secrets.items() if len(v) < MIN_SECRET_LENGTH)
        self.overlap = max([1024, *map(len, self.by_name.values())])

    def __repr__(self) -> str:  # never show the values
        return f"_Needles({sorted(self.by_name)})"

    def search(self, buf: bytes) -> set[tuple[str, str | None]]:
        hits: set[tuple[str, str | None]] = set()
        if _MARKER in buf and _KEY_BLOCK.search(buf):
            hits.add((PRIVATE_KEY, None))
        for name, value in self.by_name.items():
            if value in buf:
                hits.add(("secret", name))
        return hits


def scan_image_for_secrets(saved: Iterable[bytes], secrets: Mapping[str, str], *,
                           allow_paths: Sequence[str] = ()) -> ScanResult:
    """Scan a ``docker save`` stream (an iterable of byte chunks, as ``Image.save()`` yields).

    ``allow_paths`` are fnmatch patterns of in-image paths not to report; private keys at
    :data:`KNOWN_TEST_KEYS` are waived too. Waived findings are kept in ``result.waived``.
    """
    needles = _Needles(secrets)
    result = ScanResult(checked=tuple(sorted(needles.by_name)), skipped=needles.skipped)
    raw: list[tuple[str, str, str | None]] = []  # (member, path, secret name) ...
    kinds: list[str] = []
    manifest: list[dict[str, Any]] = []
    with tarfile.open(fileobj=_ChunkStream(saved), mode="r|") as outer:
        for member in outer:
            if not member.isfile():
                continue
            fh = outer.extractfile(member)
            if fh is None:
                continue
            if member.name == "manifest.json":
                manifest = json.loads(fh.read())
                continue
            for member_name, path, kind, name in _scan_member(member, fh, needles, result):
                raw.append((member_name, path, name))
                kinds.append(kind)
    layers = _layer_names(manifest)
    for (member_name, path, name), kind in zip(raw, kinds, strict=True):
        finding = SecretFinding(kind, name, layers.get(member_name, member_name), path)
        waivers = [*allow_paths, *(KNOWN_TEST_KEYS if kind == PRIVATE_KEY else ())]
        waived = any(fnmatch(path, pattern) for pattern in waivers)
        (result.waived if waived else result.findings).append(finding)
    return result


def _scan_member(member: tarfile.TarInfo, fh: IO[bytes], needles: _Needles, result: ScanResult
                 ) -> Iterator[tuple[str, str, str, str | None]]:
    """Findings of one outer member: a layer tar (legacy ``<id>/layer.tar`` or an OCI blob)
    or a metadata file (the image config holds ENV values and build-arg history)."""
    if member.name.endswith("/layer.tar") or member.size > _SMALL_MEMBER:
        yield from _scan_layer(member.name, fh, needles, result)
        return
    data = fh.read()
    if _is_tar(data):
        yield from _scan_layer(member.name, io.BytesIO(data), needles, result)
        return
    for kind, name in needles.search(data):
        yield member.name, member.name, kind, name


def _scan_layer(member_name: str, fh: IO[bytes], needles: _Needles, result: ScanResult
                ) -> Iterator[tuple[str, str, str, str | None]]:
    result.layers_scanned += 1
    with tarfile.open(fileobj=fh, mode="r|*") as layer:
        for entry in layer:
            if not entry.isfile():
                continue
            content = layer.extractfile(entry)
            if content is None:
                continue
            result.files_scanned += 1
            path = "/" + entry.name.removeprefix("./")
            for kind, name in sorted(_scan_file(content, needles), key=str):
                yield member_name, path, kind, name


def _scan_file(fh: IO[bytes], needles: _Needles) -> set[tuple[str, str | None]]:
    hits: set[tuple[str, str | None]] = set()
    tail = b""
    while chunk := fh.read(_CHUNK):
        buf = tail + chunk
        hits |= needles.search(buf)
        tail = buf[-needles.overlap:]
    return hits


def _is_tar(data: bytes) -> bool:
    return len(data) >= 512 and data[257:262] == b"ustar"


def _layer_names(manifest: list[dict[str, Any]]) -> dict[str, str]:
    """Outer member name -> "i/n (id)" in the order the image stacks its layers; the config
    file -> "image config"."""
    names: dict[str, str] = {}
    for entry in manifest[:1]:
        layers = entry.get("Layers", [])
        for i, member in enumerate(layers, start=1):
            layer_id = member.split("/")[-2] if member.endswith("/layer.tar") else member
            names[member] = f"{i}/{len(layers)} ({layer_id.split('/')[-1][:19]})"
        if entry.get("Config"):
            names[entry["Config"]] = "image config"
    return names


class _ChunkStream(io.RawIOBase):
    """A readable stream over an iterable of byte chunks (the SDK's ``Image.save()``)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf:
            try:
                self._buf = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n
