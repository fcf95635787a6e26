"""GitRemote and plan_runs against real git: a bare repository in tmp_path and a working clone."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ml_platform.code_source import (
    ForcePushDetected,
    GitRemote,
    PushCursor,
    PushEventKind,
    plan_runs,
)
from ml_platform.code_version import DIRTY_SUFFIX, current_code_sha
from ml_platform.config import BranchRule, BranchScope, CodeSpec
from ml_platform.errors import CodeSourceError
from tests.conftest import require_service

pytestmark = pytest.mark.integration

RULES = [*CodeSpec().branches, BranchRule(pattern="tag:v*", scope=BranchScope.PRODUCTION)]
PATTERNS = [r.pattern for r in RULES]


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch) -> None:
    require_service(shutil.which("git") is not None, "git")
    # Neither the developer's ~/.gitconfig nor the system one may change what these tests see.
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{var}_NAME", "Ada Lovelace")
        monkeypatch.setenv(f"GIT_{var}_EMAIL", "ada@example.com")


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=True
    )
    return done.stdout.strip()


class Work:
    """A working clone that commits and pushes to the bare 'origin'."""

    def __init__(self, root: Path):
        self.origin = root / "origin.git"
        self.dir = root / "work"
        git(root, "init", "--quiet", "--bare", "-b", "main", str(self.origin))
        git(root, "clone", "--quiet", str(self.origin), str(self.dir))
        git(self.dir, "checkout", "--quiet", "-b", "main")

    def commit(self, message: str, files: dict[str, str] | None = None) -> str:
        for name, text in (files or {message.replace(" ", "_") + ".txt": message}).items():
            (self.dir / name).parent.mkdir(parents=True, exist_ok=True)
            (self.dir / name).write_text(text)
        git(self.dir, "add", "-A")
        git(self.dir, "commit", "--quiet", "-m", message)
        return git(self.dir, "rev-parse", "HEAD")

    def push(self, branch: str, *, force: bool = False) -> None:
        flags = ["--force"] if force else []
        git(self.dir, "push", "--quiet", *flags, "origin", f"HEAD:{branch}")

    def branch(self, name: str, start: str = "HEAD") -> None:
        """Create (or reset) ``name`` at ``start`` and switch to it."""
        git(self.dir, "checkout", "--quiet", "-B", name, start)

    def switch(self, name: str) -> None:
        git(self.dir, "checkout", "--quiet", name)


@pytest.fixture
def work(tmp_path: Path) -> Work:
    return Work(tmp_path)


@pytest.fixture
def remote(work: Work, tmp_path: Path) -> GitRemote:
    return GitRemote(str(work.origin), tmp_path / "cache", timeout_s=30)


def test_heads_lists_branches_and_tags_filtered_by_pattern(work: Work, remote: GitRemote) -> None:
    first = work.commit("first")
    work.push("main")
    work.push("feature/x")
    work.push("experiment/y")
    second = work.commit("second")
    work.push("release/1.0")
    git(work.dir, "tag", "-a", "v1.0", "-m", "one point oh")  # annotated: resolves to the commit
    git(work.dir, "tag", "nightly", first)
    git(work.dir, "push", "--quiet", "origin", "--tags")

    assert remote.heads(PATTERNS) == {
        "main": first,
        "feature/x": first,
        "release/1.0": second,
        "tag:v1.0": second,
    }
    assert remote.heads(["tag:*"]) == {"tag:v1.0": second, "tag:nightly": first}
    assert remote.heads([]) == {}


def test_file_url_works_too(work: Work, tmp_path: Path) -> None:
    head = work.commit("first")
    work.push("main")
    assert GitRemote(work.origin.as_uri(), tmp_path / "c").heads(["main"]) == {"main": head}


def test_new_commits_are_first_parent_oldest_first(work: Work, remote: GitRemote) -> None:
    base = work.commit("base")
    work.push("main")
    work.branch("feature/side")
    work.commit("side one")
    work.commit("side two")
    work.switch("main")
    a = work.commit("a")
    git(work.dir, "merge", "--quiet", "--no-ff", "-m", "merge side", "feature/side")
    merge = git(work.dir, "rev-parse", "HEAD")
    b = work.commit("b")
    work.push("main")

    assert remote.new_commits("main", base, b).shas == (a, merge, b)  # not the side commits
    assert remote.new_commits("main", b, b).shas == ()
    assert remote.new_commits("main", None, b).shas == (base, a, merge, b)


def test_new_commits_keeps_the_newest_up_to_the_cap(work: Work, tmp_path: Path) -> None:
    base = work.commit("base")
    shas = [work.commit(f"c{i}") for i in range(5)]
    work.push("main")
    remote = GitRemote(str(work.origin), tmp_path / "cache", max_commits=3)
    found = remote.new_commits("main", base, shas[-1])
    assert found.shas == tuple(shas[2:])
    assert found.skipped == 2


def test_force_push_is_detected(work: Work, remote: GitRemote) -> None:
    base = work.commit("base")
    old = work.commit("doomed")
    work.push("main")
    assert remote.new_commits("main", base, old).shas == (old,)  # the mirror now holds 'old'
    git(work.dir, "reset", "--quiet", "--hard", base)
    new = work.commit("rewritten")
    work.push("main", force=True)

    with pytest.raises(ForcePushDetected) as e:
        remote.new_commits("main", old, new)
    assert (e.value.branch, e.value.old_sha, e.value.new_sha) == ("main", old, new)
    assert isinstance(e.value, CodeSourceError)


def test_force_push_is_detected_with_a_cold_cache(work: Work, remote: GitRemote) -> None:
    work.commit("base")
    old = work.commit("never fetched")
    git(work.dir, "reset", "--quiet", "--hard", "HEAD~1")
    new = work.commit("pushed instead")
    work.push("main")
    with pytest.raises(ForcePushDetected):
        remote.new_commits("main", old, new)


def test_commit_info(work: Work, remote: GitRemote) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    head = work.commit("Add the scorer\n\nLonger body that is not the subject.")
    work.push("main")
    info = remote.commit_info(head)  # cold cache: fetched by sha
    assert (info.sha, info.author, info.subject) == (
        head,
        "Ada Lovelace <ada@example.com>",
        "Add the scorer",
    )
    assert info.committed_at.tzinfo is UTC and before <= info.committed_at <= datetime.now(UTC)


def test_export_writes_the_exact_tree_of_a_sha(
    work: Work, remote: GitRemote, tmp_path: Path
) -> None:
    files = {
        "app/model.py": "V = 1\n",
        ".gitattributes": "secret.txt export-ignore\n",
        "secret.txt": "x",
    }
    first = work.commit("first", files)
    work.commit("second", {"app/model.py": "V = 2\n", "extra.txt": "later"})
    work.push("main")

    dest = remote.export(first, tmp_path / "build")
    assert (dest / "app/model.py").read_text() == "V = 1\n"
    assert (dest / "secret.txt").exists()  # export-ignore does not trim an exact export
    assert not (dest / "extra.txt").exists()
    with pytest.raises(CodeSourceError, match="not empty"):
        remote.export(first, dest)


def test_unknown_sha_is_a_clear_error(work: Work, remote: GitRemote, tmp_path: Path) -> None:
    work.commit("first")
    work.push("main")
    with pytest.raises(CodeSourceError, match="origin.git"):
        remote.export("f" * 40, tmp_path / "out")
    with pytest.raises(CodeSourceError, match="not a full commit sha"):
        remote.commit_info("HEAD")


def test_not_a_repository_names_the_url(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    with pytest.raises(CodeSourceError) as e:
        GitRemote(str(tmp_path / "plain"), tmp_path / "cache").heads(["*"])
    assert str(tmp_path / "plain") in str(e.value) and "git could not list" in str(e.value)


def test_unreachable_remote_error_has_no_credentials(tmp_path: Path) -> None:
    url = "https://user:secret@127.0.0.1:9/x.git"
    with pytest.raises(CodeSourceError) as e:
        GitRemote(url, tmp_path / "cache", timeout_s=20).heads(["*"])
    message = str(e.value)
    assert "secret" not in message
    assert "https://***@127.0.0.1:9/x.git" in message
    assert "127.0.0.1" in message.split(":", 1)[1]  # the stderr tail is there too


def test_plan_runs_across_several_pushes(work: Work, remote: GitRemote) -> None:
    def poll(cursor: PushCursor):
        plan = plan_runs(cursor, remote.heads(PATTERNS), RULES, remote.new_commits)
        kinds = [(e.kind, e.branch) for e in plan.events]
        runs = [(r.branch, r.sha, r.scope) for r in plan.runs]
        return PushCursor.from_json(plan.cursor.to_json()), runs, kinds

    m1 = work.commit("m1")
    work.commit("m2-unseen")
    m3 = work.commit("m3")
    work.push("main")
    cursor, runs, kinds = poll(PushCursor.from_json(None))
    assert runs == [("main", m3, BranchScope.STAGING)]  # first sighting: the head only
    assert kinds == [(PushEventKind.BRANCH_CREATED, "main")]

    m4, m5 = work.commit("m4"), work.commit("m5")
    work.push("main")
    work.branch("feature/x")
    f1 = work.commit("f1")
    work.push("feature/x")
    cursor, runs, kinds = poll(cursor)
    assert runs == [
        ("feature/x", f1, BranchScope.VALIDATE),
        ("main", m4, BranchScope.STAGING),
        ("main", m5, BranchScope.STAGING),
    ]
    assert kinds == [(PushEventKind.BRANCH_CREATED, "feature/x")]
    assert poll(cursor)[1:] == ([], [])  # nothing new, nothing to do

    work.branch("main", m1)
    rewritten = work.commit("rewritten")
    work.push("main", force=True)
    git(work.dir, "push", "--quiet", "origin", "--delete", "feature/x")
    work.push("release/1.0")
    git(work.dir, "tag", "v1.0")
    git(work.dir, "push", "--quiet", "origin", "v1.0")
    cursor, runs, kinds = poll(cursor)
    assert runs == [
        ("main", rewritten, BranchScope.STAGING),
        ("release/1.0", rewritten, BranchScope.PRODUCTION),  # tag:v1.0 is the same production run
    ]
    assert kinds == [
        (PushEventKind.BRANCH_DELETED, "feature/x"),
        (PushEventKind.FORCE_PUSH, "main"),
        (PushEventKind.BRANCH_CREATED, "release/1.0"),
        (PushEventKind.BRANCH_CREATED, "tag:v1.0"),
    ]
    assert cursor.heads == {"main": rewritten, "release/1.0": rewritten, "tag:v1.0": rewritten}

    git(work.dir, "branch", "--quiet", "-D", "feature/x")
    work.branch("feature")  # named like the deleted feature/x's directory: no clash in the mirror
    work.push("feature")
    assert remote.new_commits("feature", rewritten, rewritten).shas == ()


def test_current_code_sha(work: Work, tmp_path: Path) -> None:
    assert current_code_sha(tmp_path / "nowhere") is None
    (tmp_path / "plain").mkdir()
    assert current_code_sha(tmp_path / "plain") is None
    assert current_code_sha(work.dir) is None  # no commit yet
    head = work.commit("first", {"a.py": "x = 1\n"})
    assert current_code_sha(work.dir) == head
    (work.dir / "untracked.log").write_text("noise")
    assert current_code_sha(work.dir) == head
    (work.dir / "a.py").write_text("x = 2\n")
    assert current_code_sha(work.dir) == head + DIRTY_SUFFIX
