"""Code versions from git: which shas a push produced and which runs they should start.

This is the decision behind ``git_push_sensor``; the sensor only adapts it to Dagster.

Names. :meth:`GitRemote.heads` names a branch by its short name (``main``, ``feature/x``) and a
tag as ``tag:<name>`` (``refs/tags/v1`` -> ``tag:v1``). Git forbids ``:`` in ref names, so the two
can never collide. Patterns are :func:`fnmatch.fnmatchcase` patterns on these names, so
``release/*`` never matches a tag; give tags their own rule (``tag:v*`` -> production).

Run keys. A run's key is ``<sha>:<scope>``, not the bare sha the issue first proposed. Dagster
drops a RunRequest whose key it has already seen; with a bare sha, cutting ``release/1.0`` from
the sha ``main`` just built would be dropped as a duplicate of the staging run and the production
rollout would never start (likewise a feature sha fast-forwarded into ``main``). With the scope in
the key, the same sha on two branches of the same scope (``feature/a`` and ``feature/b``) still
runs once (the first branch in name order is the one tagged), and a higher scope always runs.

Mirror. Commits are read from a local bare mirror under ``cache_dir`` (one per remote URL, named
by a hash of the URL so credentials never land in a path). The URL is passed to each ``git fetch``
rather than stored as a remote, so credentials are not written to disk either.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from fnmatch import fnmatchcase
from pathlib import Path

from ml_platform.config import BranchRule, BranchScope
from ml_platform.errors import CodeSourceError

TAG_PREFIX = "tag:"
DEFAULT_MAX_COMMITS = 50
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")  # sha1 or sha256 object names
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")
_STDERR_TAIL = 600


# The slice of subprocess.run this module uses; injectable so tests can simulate failures.
Runner = Callable[..., "subprocess.CompletedProcess[str]"]


class ForcePushDetected(CodeSourceError):
    """The last sha seen on a branch is no longer an ancestor of its head (force-push or reset)."""

    def __init__(self, branch: str, old_sha: str, new_sha: str):
        self.branch = branch
        self.old_sha = old_sha
        self.new_sha = new_sha
        super().__init__(
            f"branch '{branch}' was force-pushed or reset: {old_sha[:12]} is not an ancestor of "
            f"the new head {new_sha[:12]}; continuing from the new head"
        )


@dataclass(frozen=True)
class GitCommit:
    sha: str
    author: str  # "Name <email>"
    subject: str  # first line of the message
    committed_at: datetime  # committer date, UTC


@dataclass(frozen=True)
class NewCommits:
    """Commits after ``since`` up to ``head`` on the first-parent line, oldest first.

    At most ``max_commits`` are kept, and they are the newest ones: the head is the commit whose
    result matters, so a huge push never leaves it unbuilt. ``skipped`` counts the older ones
    that were left out, so callers can say so.
    """

    shas: tuple[str, ...]
    skipped: int = 0


def redact_url(text: str) -> str:
    """``text`` with the user-info of every ``scheme://user:secret@host`` URL replaced by ***."""
    return _USERINFO.sub(r"\g<scheme>***@", text)


def scope_for(branch: str, rules: Sequence[BranchRule]) -> BranchScope | None:
    """The scope of the first rule matching ``branch`` (or ``tag:<name>``), else None."""
    for rule in rules:
        if fnmatchcase(branch, rule.pattern):
            return rule.scope
    return None


def _ref_for(name: str) -> str:
    if name.startswith(TAG_PREFIX):
        return f"refs/tags/{name[len(TAG_PREFIX) :]}"
    return f"refs/heads/{name}"


def _name_for(ref: str) -> str | None:
    if ref.startswith("refs/heads/"):
        return ref[len("refs/heads/") :]
    if ref.startswith("refs/tags/"):
        return TAG_PREFIX + ref[len("refs/tags/") :].removesuffix("^{}")
    return None


def parse_ls_remote(output: str) -> dict[str, str]:
    """``git ls-remote`` lines -> name -> commit sha (annotated tags resolved to their commit)."""
    found: dict[str, str] = {}
    peeled: dict[str, str] = {}
    for line in output.splitlines():
        sha, _, ref = line.partition("\t")
        name = _name_for(ref)
        if name is None:
            continue
        # "refs/tags/v1^{}" is the commit an annotated tag points to; "refs/tags/v1" is the tag.
        (peeled if ref.endswith("^{}") else found)[name] = sha
    return found | peeled


class GitRemote:
    """One git remote (any URL git accepts) plus its local bare mirror under ``cache_dir``."""

    def __init__(
        self,
        url: str,
        cache_dir: Path,
        *,
        timeout_s: float = 60,
        max_commits: int = DEFAULT_MAX_COMMITS,
        runner: Runner = subprocess.run,
    ):
        if not url or url.startswith("-"):
            # A leading dash would be read by git as an option (e.g. --upload-pack=...).
            raise CodeSourceError(f"invalid git remote URL '{redact_url(url)}'")
        if max_commits < 1:
            raise CodeSourceError(f"max_commits must be at least 1, got {max_commits}")
        self.url = url
        self.cache_dir = Path(cache_dir)
        self.timeout_s = timeout_s
        self.max_commits = max_commits
        self._runner = runner

    @property
    def safe_url(self) -> str:
        return redact_url(self.url)

    @property
    def mirror_dir(self) -> Path:
        digest = hashlib.sha256(self.url.encode()).hexdigest()[:16]
        return self.cache_dir / f"mirror-{digest}.git"

    def heads(self, patterns: Sequence[str]) -> dict[str, str]:
        """Branches and tags (``tag:<name>``) matching any of ``patterns`` -> commit sha.

        Tags resolve to the commit they point to. An empty ``patterns`` matches nothing.
        """
        out = self._git(["ls-remote", "--heads", "--tags", self.url], what="list branches and tags")
        return {
            name: sha
            for name, sha in parse_ls_remote(out).items()
            if any(fnmatchcase(name, p) for p in patterns)
        }

    def new_commits(self, branch: str, since_sha: str | None, head_sha: str) -> NewCommits:
        """First-parent commits in ``since_sha..head_sha``, oldest first, capped at max_commits.

        ``since_sha=None`` means the branch's whole first-parent history (still capped). Raises
        :class:`ForcePushDetected` when ``since_sha`` is not an ancestor of ``head_sha``.
        """
        self._fetch([f"+{_ref_for(branch)}:{_mirror_ref(branch)}"], what=f"fetch '{branch}'")
        self._require_commit(head_sha, f"head of '{branch}'")
        if since_sha is not None and not self._is_ancestor(since_sha, head_sha):
            raise ForcePushDetected(branch, since_sha, head_sha)
        span = head_sha if since_sha is None else f"{since_sha}..{head_sha}"
        total = int(self._mirror(["rev-list", "--first-parent", "--count", span]).strip())
        # --max-count applies before --reverse: the newest N, then printed oldest first.
        listed = self._mirror(
            ["rev-list", "--first-parent", "--reverse", f"--max-count={self.max_commits}", span]
        )
        shas = tuple(listed.split())
        return NewCommits(shas=shas, skipped=total - len(shas))

    def commit_info(self, sha: str) -> GitCommit:
        self._ensure_commit(sha)
        fmt = "%H%x00%an <%ae>%x00%ct%x00%s"
        out = self._mirror(["show", "-s", f"--format={fmt}", f"{sha}^{{commit}}"])
        full, author, ts, subject = out.rstrip("\n").split("\0", 3)
        return GitCommit(full, author, subject, datetime.fromtimestamp(int(ts), UTC))

    def export(self, sha: str, dest: Path) -> Path:
        """Write the exact tree of ``sha`` into ``dest`` (created; must be empty if it exists)."""
        dest = Path(dest)
        if dest.exists() and any(dest.iterdir()):
            raise CodeSourceError(
                f"cannot export {sha[:12]} into {dest}: the directory is not empty, and mixing "
                "files would make the build not come from exactly that sha"
            )
        self._ensure_commit(sha)
        dest.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="ml-platform-export-") as tmp:
            archive = Path(tmp) / "tree.tar"
            self._mirror(["archive", "--format=tar", f"--output={archive}", f"{sha}^{{tree}}"])
            _extract(archive, dest, sha)
        return dest

    # -- mirror plumbing ------------------------------------------------------------------

    def _ensure_mirror(self) -> None:
        if (self.mirror_dir / "HEAD").is_file():
            return
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._git(["init", "--bare", "--quiet", str(self.mirror_dir)], what="create the mirror")
        # Exports must be the exact tree: ignore a project's export-ignore/export-subst rules.
        info = self.mirror_dir / "info"
        info.mkdir(exist_ok=True)
        (info / "attributes").write_text("* -export-ignore -export-subst\n", encoding="utf-8")

    def _fetch(self, refspecs: list[str], *, what: str) -> None:
        self._ensure_mirror()
        args = ["fetch", "--quiet", "--no-tags", "--no-write-fetch-head", self.url, *refspecs]
        self._mirror(args, what)

    def _ensure_commit(self, sha: str) -> None:
        """Fetch ``sha`` by name if the mirror lacks it (e.g. a fresh cache on another machine)."""
        if not _SHA.match(sha):
            raise CodeSourceError(f"'{sha}' is not a full commit sha; pass the 40-hex sha")
        self._ensure_mirror()
        if not self._has_commit(sha):
            self._fetch([f"{sha}:refs/ml-platform/pinned/{sha}"], what=f"fetch commit {sha[:12]}")
        self._require_commit(sha, "requested commit")

    def _has_commit(self, sha: str) -> bool:
        done = self._run(["--git-dir", str(self.mirror_dir), "cat-file", "-e", f"{sha}^{{commit}}"])
        return done.returncode == 0

    def _require_commit(self, sha: str, role: str) -> None:
        if not self._has_commit(sha):
            raise CodeSourceError(
                f"{role} {sha[:12]} is not in the mirror of {self.safe_url} after fetching; the "
                "ref probably moved since it was listed. The next poll will pick up the new head."
            )

    def _is_ancestor(self, old: str, new: str) -> bool:
        # A sha the fetch did not bring is not reachable from the new head, hence not an ancestor.
        if not self._has_commit(old):
            return False
        args = ["--git-dir", str(self.mirror_dir), "merge-base", "--is-ancestor", old, new]
        done = self._run(args)
        if done.returncode in (0, 1):
            return done.returncode == 0
        raise self._error("compare commits", done.stderr)

    def _mirror(self, args: list[str], what: str = "read the mirror") -> str:
        return self._git(["--git-dir", str(self.mirror_dir), *args], what=what)

    # -- process boundary -----------------------------------------------------------------

    def _git(self, args: list[str], *, what: str) -> str:
        done = self._run(args)
        if done.returncode != 0:
            raise self._error(what, done.stderr)
        return done.stdout

    def _run(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        try:
            return self._runner(
                ["git", *args],
                capture_output=True,
                text=True,
                timeout=self.timeout_s,
                env=_git_env(),
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            stderr = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr
            raise self._error(f"finish within {self.timeout_s:g}s (timed out)", stderr or "") from e
        except FileNotFoundError as e:
            raise CodeSourceError("the git executable was not found on PATH; install git") from e

    def _error(self, what: str, stderr: str) -> CodeSourceError:
        tail = redact_url(stderr.strip())[-_STDERR_TAIL:] or "(no output)"
        return CodeSourceError(f"git could not {what} for remote {self.safe_url}: {tail}")


def _mirror_ref(name: str) -> str:
    # Hex-encoded so 'feature' and a deleted 'feature/x' never clash as file vs directory.
    return f"refs/ml-platform/heads/{name.encode().hex()}"


def _git_env() -> dict[str, str]:
    env = dict(os.environ)
    # A sensor must fail, not hang, when a remote asks for a password or an unknown host key.
    env["GIT_TERMINAL_PROMPT"] = "0"
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    env["LC_ALL"] = "C"  # stable, English stderr in error messages
    return env


def _extract(archive: Path, dest: Path, sha: str) -> None:
    try:
        with tarfile.open(archive) as tar:
            # The "data" filter refuses absolute paths and links escaping dest.
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, OSError) as e:
        raise CodeSourceError(f"cannot unpack the tree of {sha[:12]} into {dest}: {e}") from e


# -- the sensor's decision (pure) ---------------------------------------------------------


@dataclass(frozen=True)
class PushCursor:
    """Last sha handled per branch/tag name; stored as the sensor's cursor (JSON object)."""

    heads: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(dict(self.heads), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | None) -> PushCursor:
        if raw is None or not raw.strip():
            return cls()
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as e:
            raise _cursor_error(raw, f"it is not JSON ({e})") from e
        if not isinstance(value, dict):
            raise _cursor_error(raw, f"expected a JSON object, got {type(value).__name__}")
        bad = [k for k, v in value.items() if not isinstance(v, str) or not _SHA.match(v)]
        if bad:
            raise _cursor_error(raw, f"entries {sorted(bad)[:5]} are not commit shas")
        return cls(dict(value))


def _cursor_error(raw: str, why: str) -> CodeSourceError:
    shown = raw if len(raw) <= 80 else raw[:77] + "..."
    return CodeSourceError(
        f"git_push_sensor cursor {shown!r} is invalid: {why}. Expected a JSON object mapping "
        "branch names to commit shas; reset the sensor's cursor in the Dagster UI."
    )


class PushEventKind(StrEnum):
    BRANCH_CREATED = "branch_created"  # first sighting (also every branch on an empty cursor)
    BRANCH_DELETED = "branch_deleted"
    FORCE_PUSH = "force_push"
    COMMITS_SKIPPED = "commits_skipped"  # more new commits than the cap
    FETCH_FAILED = "fetch_failed"  # this branch is retried next poll; others go on


@dataclass(frozen=True)
class PushEvent:
    kind: PushEventKind
    branch: str
    message: str
    old_sha: str | None = None
    new_sha: str | None = None


@dataclass(frozen=True)
class PushRun:
    branch: str
    sha: str
    scope: BranchScope

    @property
    def run_key(self) -> str:
        return f"{self.sha}:{self.scope.value}"


@dataclass(frozen=True)
class PushPlan:
    runs: tuple[PushRun, ...]
    cursor: PushCursor
    events: tuple[PushEvent, ...]


NewCommitsFn = Callable[[str, str | None, str], NewCommits]


def plan_runs(
    cursor: PushCursor,
    heads: Mapping[str, str],
    rules: Sequence[BranchRule],
    new_commits_fn: NewCommitsFn,
) -> PushPlan:
    """The runs to request for what changed since ``cursor``, the next cursor, and what happened.

    Branches go in name order, each branch's runs oldest first. A branch seen for the first time
    (or after a force-push) gets one run for its head, never a replay of its history. A branch
    that fails to fetch keeps its old cursor entry and is retried on the next poll. Names no
    rule matches are neither run nor tracked.
    """
    runs: list[PushRun] = []
    events: list[PushEvent] = []
    next_heads = dict(cursor.heads)
    for branch in sorted(cursor.heads.keys() - heads.keys()):
        del next_heads[branch]
        events.append(
            PushEvent(
                PushEventKind.BRANCH_DELETED,
                branch,
                f"'{branch}' was deleted",
                cursor.heads[branch],
            )
        )
    for branch in sorted(heads):
        scope = scope_for(branch, rules)
        if scope is None or cursor.heads.get(branch) == heads[branch]:
            continue
        since = cursor.heads.get(branch)
        shas, branch_events = _branch_shas(branch, since, heads[branch], new_commits_fn)
        events += branch_events
        if shas is None:
            continue
        next_heads[branch] = heads[branch]
        runs += [PushRun(branch, sha, scope) for sha in shas]
    return PushPlan(_unique(runs), PushCursor(next_heads), tuple(events))


def _branch_shas(
    branch: str, since: str | None, head: str, new_commits_fn: NewCommitsFn
) -> tuple[tuple[str, ...] | None, list[PushEvent]]:
    """Shas to run on one branch (None: leave its cursor alone) and the events to report."""
    if since is None:
        msg = f"first sighting of '{branch}' at {head[:12]}: one run for its head"
        return (head,), [PushEvent(PushEventKind.BRANCH_CREATED, branch, msg, None, head)]
    try:
        found = new_commits_fn(branch, since, head)
    except ForcePushDetected as e:
        return (head,), [PushEvent(PushEventKind.FORCE_PUSH, branch, str(e), since, head)]
    except CodeSourceError as e:
        return None, [PushEvent(PushEventKind.FETCH_FAILED, branch, str(e), since, head)]
    events = []
    if found.skipped:
        msg = (
            f"'{branch}' moved by {found.skipped + len(found.shas)} commits; running the newest "
            f"{len(found.shas)} and skipping {found.skipped} older ones"
        )
        events.append(PushEvent(PushEventKind.COMMITS_SKIPPED, branch, msg, since, head))
    return found.shas, events


def _unique(runs: list[PushRun]) -> tuple[PushRun, ...]:
    seen: set[str] = set()
    kept = []
    for run in runs:
        if run.run_key not in seen:
            seen.add(run.run_key)
            kept.append(run)
    return tuple(kept)
