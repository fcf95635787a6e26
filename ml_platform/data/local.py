"""The embedded data store: immutable, content-addressed commits on branches, on local disk.

One directory per repository under ``root``::

    <root>/<repository>/
        refs.json                          {"format": 1, "branches": {name: commit id}}
        lock                               flock'ed around every ref update
        objects/blobs/<h[:2]>/<h[2:]>      file contents, named by their sha256
        objects/commits/<id[:2]>/<id[2:]>  canonical JSON of a commit; id = sha256 of those bytes

Objects are written once and never changed; ``refs.json`` is the only mutable file and is
replaced atomically under the lock, so readers take no lock and never see a half-made commit.
Every object is checked against its hash when read: damage is reported, never served.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from ml_platform.data.store import Change, Commit
from ml_platform.errors import (
    ConfigError,
    ConflictError,
    CorruptStoreError,
    DataStoreError,
    NotFoundError,
)

FORMAT = 1
INITIAL_MESSAGE = "Repository created"
INITIAL_AUTHOR = "ml-platform"
MIN_PREFIX = 6
_CHUNK = 1 << 20
_REPO_RE = re.compile(r"[a-z0-9][a-z0-9-]{2,62}")
# lakeFS's own rules (pkg/validator), so a name that works here also works in production.
_BRANCH_RE = re.compile(r"\w[-\w]*", re.ASCII)
_ID_RE = re.compile(r"[0-9a-f]{64}")
_HEX_RE = re.compile(r"[0-9a-f]+")


@dataclass(frozen=True)
class _Entry:
    """One file of a commit's tree."""

    blob: str
    size: int


Tree = Mapping[str, _Entry]


@dataclass(frozen=True)
class _Stored:
    """A commit as read from disk: the public part plus its tree."""

    commit: Commit
    tree: Tree


def _utcnow() -> datetime:
    return datetime.now(UTC)


class LocalDataStore:
    """The zero-setup :class:`~ml_platform.data.store.DataStore`: a directory on local disk.

    Safe for several processes at once: ref updates are serialized by ``fcntl.flock`` on a
    per-repository lock file. ``clock`` is injectable so tests can pin commit times.
    """

    kind: str = "local"

    def __init__(self, root: str | Path, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self.root = Path(root)
        self._clock = clock

    # ----------------------------------------------------------------- repositories, branches
    def create_repository(self, repository: str, default_branch: str = "main") -> None:
        _check_repository(repository)
        _check_branch(default_branch)
        final = self.root / repository
        if final.exists():
            raise ConflictError(f"repository '{repository}' already exists under {self.root}")
        self.root.mkdir(parents=True, exist_ok=True)
        # Built aside and renamed into place, so a repository is either complete or absent.
        staging = self.root / f".tmp-{repository}-{uuid.uuid4().hex}"
        try:
            initial = _Stored(self._new_commit(repository, (), {}, INITIAL_MESSAGE,
                                               INITIAL_AUTHOR, {}), {})
            _write_commit_object(staging, initial)
            _write_refs(staging, {default_branch: initial.commit.id})
            (staging / "lock").touch()
            _rename_repository(staging, final, repository)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        _fsync_dir(self.root)

    def repository_exists(self, repository: str) -> bool:
        _check_repository(repository)
        return (self.root / repository).is_dir()

    def create_branch(self, repository: str, branch: str, source_ref: str) -> str:
        _check_branch(branch)
        head = self.resolve_ref(repository, source_ref)
        self._load(repository, head, referenced_by=f"ref '{source_ref}'")
        with self._locked(repository):
            branches = self._read_refs(repository)
            if branch in branches:
                raise ConflictError(
                    f"branch '{branch}' already exists in repository '{repository}' "
                    f"(at {branches[branch][:12]}); pick another name or commit to it"
                )
            _write_refs(self.root / repository, {**branches, branch: head})
        return head

    def list_branches(self, repository: str) -> dict[str, str]:
        return dict(sorted(self._read_refs(repository).items()))

    def branch_head(self, repository: str, branch: str) -> str:
        _check_branch(branch)
        return _head_of(self._read_refs(repository), repository, branch)

    def resolve_ref(self, repository: str, ref: str) -> str:
        branches = self._read_refs(repository)
        if ref in branches:
            return branches[ref]
        return self._resolve_commit_id(repository, ref, branches)

    def get_commit(self, repository: str, commit_id: str) -> Commit:
        cid = self.resolve_ref(repository, commit_id)
        return self._load(repository, cid, referenced_by=f"ref '{commit_id}'").commit

    # ----------------------------------------------------------------------------- writing
    def commit(
        self,
        repository: str,
        branch: str,
        changes: Mapping[str, bytes | None],
        *,
        message: str,
        author: str,
        metadata: Mapping[str, str] | None = None,
        expected_head: str | None = None,
    ) -> Commit:
        _check_branch(branch)
        _check_changes(changes)
        meta = _check_text_fields(message, author, metadata)
        self._require_repository(repository)
        # Blobs go first and outside the lock: they are content-addressed, so an unused one is
        # harmless, and large writes do not hold up other writers.
        written = {p: self._put_blob(repository, d) for p, d in changes.items() if d is not None}
        with self._locked(repository):
            branches = self._read_refs(repository)
            head = _head_of(branches, repository, branch)
            if expected_head is not None and expected_head != head:
                raise ConflictError(
                    f"branch '{branch}' of '{repository}' moved: expected head {expected_head}, "
                    f"found {head}; re-read the branch and retry"
                )
            parent = self._load(repository, head, referenced_by=f"branch '{branch}'")
            tree = _apply(parent.tree, changes, written)
            if tree == parent.tree:
                raise ConflictError(
                    f"nothing to commit on branch '{branch}' of '{repository}': the "
                    f"{len(changes)} change(s) leave the files at {head[:12]} as they are"
                )
            new = self._new_commit(repository, (head,), tree, message, author, meta)
            self._publish(repository, branches, branch, _Stored(new, tree))
        return new

    def merge(
        self,
        repository: str,
        source_ref: str,
        destination_branch: str,
        *,
        message: str,
        author: str,
        metadata: Mapping[str, str] | None = None,
    ) -> Commit:
        _check_branch(destination_branch)
        meta = _check_text_fields(message, author, metadata)
        source = self.resolve_ref(repository, source_ref)
        with self._locked(repository):
            branches = self._read_refs(repository)
            dest = _head_of(branches, repository, destination_branch)
            base = self._merge_base(repository, dest, source)
            if base == source:
                raise ConflictError(
                    f"nothing to merge: branch '{destination_branch}' of '{repository}' already "
                    f"contains '{source_ref}' ({source[:12]})"
                )
            tree = self._merged_tree(repository, base, dest, source)
            new = self._new_commit(repository, (dest, source), tree, message, author, meta)
            self._publish(repository, branches, destination_branch, _Stored(new, tree))
        return new

    def reset_branch(self, repository: str, branch: str, commit_id: str) -> str:
        _check_branch(branch)
        target = self.resolve_ref(repository, commit_id)
        self._load(repository, target, referenced_by=f"reset target '{commit_id}'")
        with self._locked(repository):
            branches = self._read_refs(repository)
            _head_of(branches, repository, branch)  # NotFoundError for a missing branch
            _write_refs(self.root / repository, {**branches, branch: target})
        return target

    # ----------------------------------------------------------------------------- reading
    def log(self, repository: str, ref: str, limit: int | None = None) -> list[Commit]:
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise ConfigError(f"log limit must be a non-negative integer or None, got {limit!r}")
        cid: str | None = self.resolve_ref(repository, ref)
        history: list[Commit] = []
        while cid is not None and (limit is None or len(history) < limit):
            commit = self._load(repository, cid, referenced_by=f"the history of '{ref}'").commit
            history.append(commit)
            cid = commit.parents[0] if commit.parents else None
        return history

    def list_files(self, repository: str, ref: str, prefix: str = "") -> dict[str, int]:
        tree = self._tree_at(repository, ref)
        return {p: e.size for p, e in sorted(tree.items()) if p.startswith(prefix)}

    def open(self, repository: str, ref: str, path: str) -> BinaryIO:
        entry = self._entry_at(repository, ref, path)
        blob = self._blob_path(repository, entry.blob)
        with contextlib.ExitStack() as on_error:
            stream = on_error.enter_context(_open_object(blob, repository, path))
            _verify_stream(stream, entry, blob, repository, path)
            stream.seek(0)
            on_error.pop_all()
        return stream

    def read(self, repository: str, ref: str, path: str) -> bytes:
        entry = self._entry_at(repository, ref, path)
        blob = self._blob_path(repository, entry.blob)
        with _open_object(blob, repository, path) as f:
            data = f.read()
        if len(data) != entry.size or _sha256(data) != entry.blob:
            raise _corrupt(blob, repository, f"content of '{path}' does not match its hash")
        return data

    def diff(self, repository: str, left_ref: str, right_ref: str) -> list[Change]:
        return _diff_trees(self._tree_at(repository, left_ref),
                           self._tree_at(repository, right_ref))

    def verify(self, repository: str) -> int:
        """Check every commit and blob reachable from any branch; return how many were checked.

        Raises CorruptStoreError at the first damaged or missing object."""
        checked: set[str] = set()
        for branch, head in self.list_branches(repository).items():
            for cid in self._ancestors(repository, head, f"branch '{branch}'"):
                if cid in checked:
                    continue
                checked.add(cid)
                for path, entry in self._load(repository, cid).tree.items():
                    if entry.blob not in checked:
                        blob = self._blob_path(repository, entry.blob)
                        with _open_object(blob, repository, path) as f:
                            _verify_stream(f, entry, blob, repository, path)
                        checked.add(entry.blob)
        return len(checked)

    # ----------------------------------------------------------------------------- helpers
    def _require_repository(self, repository: str) -> Path:
        _check_repository(repository)
        path = self.root / repository
        if not path.is_dir():
            raise NotFoundError(
                f"repository '{repository}' does not exist under {self.root}; "
                f"create it with create_repository('{repository}')"
            )
        return path

    @contextlib.contextmanager
    def _locked(self, repository: str) -> Iterator[None]:
        lock = self._require_repository(repository) / "lock"
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    def _read_refs(self, repository: str) -> dict[str, str]:
        path = self._require_repository(repository) / "refs.json"
        try:
            doc = json.loads(path.read_bytes())
        except FileNotFoundError as e:
            raise _corrupt(path, repository, "the branch list is missing") from e
        except ValueError as e:  # also covers UnicodeDecodeError
            raise _corrupt(path, repository, f"the branch list is not valid JSON ({e})") from e
        branches = doc.get("branches") if isinstance(doc, dict) else None
        if not isinstance(branches, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and _ID_RE.fullmatch(v)
            for k, v in branches.items()
        ):
            raise _corrupt(path, repository, 'expected {"branches": {name: 64-hex commit id}}')
        return branches

    def _publish(self, repository: str, branches: Mapping[str, str], branch: str,
                 stored: _Stored) -> None:
        """Write the commit object, then move the branch: the caller holds the lock."""
        repo_dir = self.root / repository
        _write_commit_object(repo_dir, stored)
        _write_refs(repo_dir, {**branches, branch: stored.commit.id})

    def _new_commit(self, repository: str, parents: tuple[str, ...], tree: Tree, message: str,
                    author: str, metadata: Mapping[str, str]) -> Commit:
        created = self._clock().astimezone(UTC)
        doc = _commit_document(parents, tree, message, author, created, metadata)
        return Commit(id=_sha256(_canonical(doc)), repository=repository, parents=parents,
                      message=message, author=author, created_at=created,
                      metadata=dict(metadata))

    def _put_blob(self, repository: str, data: bytes | bytearray) -> _Entry:
        digest = _sha256(data)
        path = self._blob_path(repository, digest)
        if not path.exists():
            _write_atomic(path, data)
        return _Entry(digest, len(data))

    def _blob_path(self, repository: str, digest: str) -> Path:
        return self.root / repository / "objects" / "blobs" / digest[:2] / digest[2:]

    def _load(self, repository: str, cid: str, *, referenced_by: str | None = None) -> _Stored:
        """Read and verify commit ``cid``; missing is corruption when something points at it."""
        path = _commit_path(self.root / repository, cid)
        try:
            raw = path.read_bytes()
        except FileNotFoundError as e:
            if referenced_by is None:
                raise NotFoundError(f"no commit {cid} in repository '{repository}'") from e
            raise _corrupt(path, repository, f"commit {cid} of {referenced_by} is missing") from e
        if _sha256(raw) != cid:
            raise _corrupt(path, repository, f"commit object does not match its id {cid}")
        return _parse_commit(raw, cid, repository, path)

    def _resolve_commit_id(self, repository: str, ref: str, branches: Mapping[str, str]) -> str:
        if not (MIN_PREFIX <= len(ref) <= 64 and _HEX_RE.fullmatch(ref)):
            raise NotFoundError(
                f"'{ref}' is neither a branch of '{repository}' (branches: "
                f"{', '.join(sorted(branches))}) nor a commit id (64 hex characters, or a "
                f"unique prefix of at least {MIN_PREFIX})"
            )
        shard = self.root / repository / "objects" / "commits" / ref[:2]
        names = sorted(p.name for p in shard.glob(f"{ref[2:]}*")) if shard.is_dir() else []
        if not names:
            raise NotFoundError(f"no commit starting with '{ref}' in repository '{repository}'")
        if len(names) > 1:
            shown = ", ".join(ref[:2] + n[:12] for n in names[:5])
            raise DataStoreError(
                f"commit prefix '{ref}' is ambiguous in repository '{repository}': it matches "
                f"{len(names)} commits ({shown}); give more characters of the id"
            )
        return ref[:2] + names[0]

    def _tree_at(self, repository: str, ref: str) -> Tree:
        return self._load(repository, self.resolve_ref(repository, ref),
                          referenced_by=f"ref '{ref}'").tree

    def _entry_at(self, repository: str, ref: str, path: str) -> _Entry:
        tree = self._tree_at(repository, ref)
        if path not in tree:
            raise NotFoundError(
                f"no file '{path}' at '{ref}' in repository '{repository}' "
                f"({len(tree)} files there; see list_files)"
            )
        return tree[path]

    def _ancestors(self, repository: str, start: str, what: str) -> dict[str, tuple[str, ...]]:
        """Every commit reachable from ``start`` (itself included) -> its parents."""
        found: dict[str, tuple[str, ...]] = {}
        todo = [start]
        while todo:
            cid = todo.pop()
            if cid not in found:
                found[cid] = self._load(repository, cid, referenced_by=what).commit.parents
                todo.extend(found[cid])
        return found

    def _merge_base(self, repository: str, dest: str, source: str) -> str:
        dest_anc = self._ancestors(repository, dest, "the merge destination")
        if source in dest_anc:
            return source
        source_anc = self._ancestors(repository, source, "the merge source")
        if dest in source_anc:
            return dest
        common = dest_anc.keys() & source_anc.keys()
        # Ancestors of a common ancestor are common too, so the best bases are the common
        # commits that are no other common commit's parent.
        parents_of_common = {p for c in common for p in dest_anc[c]}
        best = sorted(common - parents_of_common)
        if not best:
            raise DataStoreError(
                f"commits {dest[:12]} and {source[:12]} of '{repository}' share no history; "
                "they cannot be merged"
            )
        # Criss-cross histories have several bases: take the newest, deterministically.
        return max(best, key=lambda c: (self._load(repository, c).commit.created_at, c))

    def _merged_tree(self, repository: str, base: str, dest: str, source: str) -> Tree:
        source_tree = self._load(repository, source).tree
        if base == dest:
            return source_tree
        merged = dict(self._load(repository, dest).tree)
        base_tree = self._load(repository, base).tree
        for path in base_tree.keys() | source_tree.keys():
            if source_tree.get(path) == base_tree.get(path):
                continue  # source did not touch it: destination's version stands
            if path in source_tree:
                merged[path] = source_tree[path]
            else:
                merged.pop(path, None)
        return merged


# --------------------------------------------------------------------------- validation
def _check_repository(name: str) -> None:
    if not isinstance(name, str) or not _REPO_RE.fullmatch(name):
        raise ConfigError(
            f"invalid repository name {name!r}: use 3-63 characters, lower-case letters, digits "
            "and '-', starting with a letter or digit (e.g. 'churn-data')",
            field="repository",
        )


def _check_branch(name: str) -> None:
    if not isinstance(name, str) or not _BRANCH_RE.fullmatch(name):
        raise ConfigError(
            f"invalid branch name {name!r}: use ASCII letters, digits, '_' and '-', starting "
            "with a letter, digit or '_' (lakeFS's rule; e.g. 'feature-new-data')",
            field="branch",
        )


def _check_changes(changes: Mapping[str, bytes | None]) -> None:
    for path, data in changes.items():
        parts = path.split("/") if isinstance(path, str) else [""]
        if not all(parts) or any(p in (".", "..") for p in parts) or "\0" in path:
            raise ConfigError(
                f"invalid file path {path!r}: use a non-empty relative path like 'dir/file.csv' "
                "without leading/trailing '/', '//', '.' or '..' segments",
                field="changes",
            )
        if data is not None and not isinstance(data, bytes | bytearray):
            raise ConfigError(
                f"change for '{path}' must be bytes (to write) or None (to delete), got "
                f"{type(data).__name__}; encode text with .encode('utf-8')",
                field="changes",
            )


def _check_text_fields(message: str, author: str,
                       metadata: Mapping[str, str] | None) -> dict[str, str]:
    for name, value in (("message", message), ("author", author)):
        if not isinstance(value, str):
            raise ConfigError(f"commit {name} must be a string, got {type(value).__name__}",
                              field=name)
    meta = dict(metadata or {})
    bad = {k: v for k, v in meta.items() if not (isinstance(k, str) and isinstance(v, str))}
    if bad:
        raise ConfigError(
            f"commit metadata must map strings to strings; these entries are not: {bad!r}. "
            "Convert values with str() (or json.dumps) before committing",
            field="metadata",
        )
    return meta


# ------------------------------------------------------------------------ on-disk objects
def _sha256(data: bytes | bytearray) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _commit_document(parents: tuple[str, ...], tree: Tree, message: str, author: str,
                     created_at: datetime, metadata: Mapping[str, str]) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "parents": list(parents),
        "author": author,
        "message": message,
        "created_at": created_at.isoformat(),
        "metadata": dict(metadata),
        "tree": {p: {"blob": e.blob, "size": e.size} for p, e in tree.items()},
    }


def _commit_path(repo_dir: Path, cid: str) -> Path:
    return repo_dir / "objects" / "commits" / cid[:2] / cid[2:]


def _write_commit_object(repo_dir: Path, stored: _Stored) -> None:
    c = stored.commit
    raw = _canonical(_commit_document(c.parents, stored.tree, c.message, c.author,
                                      c.created_at, c.metadata))
    path = _commit_path(repo_dir, c.id)
    if not path.exists():
        _write_atomic(path, raw)


def _parse_commit(raw: bytes, cid: str, repository: str, path: Path) -> _Stored:
    try:
        doc = json.loads(raw)
        created = datetime.fromisoformat(doc["created_at"])
        tree = {str(p): _Entry(str(e["blob"]), int(e["size"])) for p, e in doc["tree"].items()}
        commit = Commit(id=cid, repository=repository, parents=tuple(doc["parents"]),
                        message=doc["message"], author=doc["author"], created_at=created,
                        metadata=dict(doc["metadata"]))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        problem = f"commit object is not in the expected format ({e})"
        raise _corrupt(path, repository, problem) from e
    return _Stored(commit, tree)


def _write_refs(repo_dir: Path, branches: Mapping[str, str]) -> None:
    _write_atomic(repo_dir / "refs.json",
                  _canonical({"format": FORMAT, "branches": dict(sorted(branches.items()))}))


def _write_atomic(path: Path, data: bytes | bytearray) -> None:
    """Temp file + fsync + rename: the file is either the old or the new content, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp-{uuid.uuid4().hex}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    # Makes the rename itself durable: without it a crash can lose a "committed" ref update.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _rename_repository(staging: Path, final: Path, repository: str) -> None:
    try:
        os.rename(staging, final)
    except OSError as e:
        if e.errno in (errno.EEXIST, errno.ENOTEMPTY):
            raise ConflictError(
                f"repository '{repository}' already exists under {final.parent} "
                "(created concurrently by another process)"
            ) from e
        raise DataStoreError(f"could not create repository '{repository}' at {final}: {e}") from e


def _open_object(path: Path, repository: str, what: str) -> BinaryIO:
    try:
        return open(path, "rb")
    except FileNotFoundError as e:
        raise _corrupt(path, repository, f"the stored content of '{what}' is missing") from e


def _verify_stream(stream: BinaryIO, entry: _Entry, blob: Path, repository: str,
                   what: str) -> None:
    # Hashed in chunks before the caller reads anything, so memory stays flat for big files.
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    if size != entry.size or digest.hexdigest() != entry.blob:
        raise _corrupt(blob, repository, f"content of '{what}' does not match its hash")


def _corrupt(path: Path, repository: str, problem: str) -> CorruptStoreError:
    return CorruptStoreError(
        f"data store damaged: {path}: {problem}. Files under the store must never be edited by "
        f"hand. Restore '{path.parent}' from a backup (or re-create repository '{repository}' "
        f"and commit the data again); LocalDataStore(root).verify('{repository}') checks "
        "the rest of the repository"
    )


# ------------------------------------------------------------------------------- trees
def _head_of(branches: Mapping[str, str], repository: str, branch: str) -> str:
    if branch not in branches:
        raise NotFoundError(
            f"branch '{branch}' does not exist in repository '{repository}' (branches: "
            f"{', '.join(sorted(branches))}); create it with create_branch"
        )
    return branches[branch]


def _apply(tree: Tree, changes: Mapping[str, bytes | None],
           written: Mapping[str, _Entry]) -> dict[str, _Entry]:
    new = dict(tree)
    for path, data in changes.items():
        if data is None:
            new.pop(path, None)
        else:
            new[path] = written[path]
    return new


def _diff_trees(left: Tree, right: Tree) -> list[Change]:
    changes: list[Change] = []
    for path in sorted(left.keys() | right.keys()):
        before, after = left.get(path), right.get(path)
        if before == after:
            continue
        if before is None:
            changes.append(Change(path, "added", after.size if after else None))
        elif after is None:
            changes.append(Change(path, "removed", before.size))
        else:
            changes.append(Change(path, "changed", after.size))
    return changes
