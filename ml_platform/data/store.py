"""The data-versioning interface shared by the embedded store and the lakeFS backend.

Both backends are real implementations of :class:`DataStore`; the contract test suite
(tests/contract) runs the same tests against each so they cannot drift apart.

Semantics (modelled on lakeFS):
- a repository has branches; a branch points at a commit; commits are immutable;
- a commit has an id (embedded: content hash; lakeFS: its commit id), parents, author, message,
  creation time and string metadata;
- ``commit`` applies a set of file changes (bytes to write, ``None`` to delete) on top of the
  branch head, atomically: readers never see a half-written commit;
- ``log`` walks first parents from a ref, newest first;
- reads address a file *at a ref* (commit id or branch name); callers that need a pinned
  version resolve the ref to a commit id first and use only that.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO, Literal, Protocol, runtime_checkable

ChangeType = Literal["added", "removed", "changed"]


@dataclass(frozen=True)
class Commit:
    id: str
    repository: str
    parents: tuple[str, ...]
    message: str
    author: str
    created_at: datetime  # timezone-aware UTC
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Change:
    path: str
    type: ChangeType
    size_bytes: int | None = None


@runtime_checkable
class DataStore(Protocol):
    """A versioned data store: repositories, branches and immutable commits."""

    kind: str  # "local" or "lakefs": shown in metadata

    def create_repository(self, repository: str, default_branch: str = "main") -> None:
        """Create a repository with an empty initial commit on ``default_branch``.

        Raises ConflictError if it exists."""
        ...

    def repository_exists(self, repository: str) -> bool: ...

    def create_branch(self, repository: str, branch: str, source_ref: str) -> str:
        """Create ``branch`` at ``source_ref``; return its head commit id. ConflictError if it exists."""
        ...

    def list_branches(self, repository: str) -> dict[str, str]:
        """Branch name -> head commit id."""
        ...

    def branch_head(self, repository: str, branch: str) -> str:
        """Head commit id of ``branch``. NotFoundError if the branch does not exist."""
        ...

    def resolve_ref(self, repository: str, ref: str) -> str:
        """Commit id for a branch name or commit id (full or unique prefix)."""
        ...

    def get_commit(self, repository: str, commit_id: str) -> Commit: ...

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
        """Apply ``changes`` to ``branch`` as one new commit.

        If ``expected_head`` is given and the branch has moved, raise ConflictError (compare
        and swap). An empty change set that changes nothing raises ConflictError too
        ("nothing to commit"), like lakeFS."""
        ...

    def log(self, repository: str, ref: str, limit: int | None = None) -> list[Commit]:
        """Commits reachable from ``ref`` by first parent, newest first."""
        ...

    def list_files(self, repository: str, ref: str, prefix: str = "") -> dict[str, int]:
        """Path -> size in bytes of every file at ``ref`` under ``prefix``."""
        ...

    def open(self, repository: str, ref: str, path: str) -> BinaryIO:
        """A readable binary stream of ``path`` at ``ref`` (streamed, not the whole repo)."""
        ...

    def read(self, repository: str, ref: str, path: str) -> bytes: ...

    def diff(self, repository: str, left_ref: str, right_ref: str) -> list[Change]:
        """Changes that turn ``left_ref`` into ``right_ref``, sorted by path."""
        ...

    def reset_branch(self, repository: str, branch: str, commit_id: str) -> str:
        """Point ``branch`` at ``commit_id`` (a hard reset, like ``git reset --hard``); return it.

        Commits after ``commit_id`` leave the branch's history; readers that remembered one of
        them see a reset (``iter_new_commits`` raises LookupError). NotFoundError if the branch
        or commit does not exist."""
        ...

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
        """Merge ``source_ref`` into ``destination_branch`` (source wins on conflict)."""
        ...


def iter_new_commits(
    store: DataStore, repository: str, branch: str, since: str | None, limit: int = 1000
) -> Iterator[Commit]:
    """Commits on ``branch`` after ``since``, oldest first.

    Raises ``LookupError`` if ``since`` is not on the branch's first-parent history any more
    (branch reset or force-push): callers report it instead of replaying or crashing."""
    history = store.log(repository, branch, limit=limit)
    if since is None:
        yield from reversed(history)
        return
    ids = [c.id for c in history]
    if since not in ids:
        raise LookupError(
            f"commit {since} is no longer on branch '{branch}' of '{repository}' "
            f"(reset or force-push), or is older than the last {limit} commits"
        )
    yield from reversed(history[: ids.index(since)])
