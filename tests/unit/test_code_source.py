"""The pure side of code versions: names, scopes, cursor, run planning, error messages.

Git itself is exercised in tests/integration/test_git_source.py; here a fake runner stands in
for the failures real git cannot be made to produce on demand (timeouts, a missing binary).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from ml_platform.code_source import (
    ForcePushDetected,
    GitRemote,
    NewCommits,
    PushCursor,
    PushEventKind,
    PushRun,
    parse_ls_remote,
    plan_runs,
    redact_url,
    scope_for,
)
from ml_platform.config import BranchRule, BranchScope, CodeSpec
from ml_platform.errors import CodeSourceError

RULES = [*CodeSpec().branches, BranchRule(pattern="tag:v*", scope=BranchScope.PRODUCTION)]


def sha(n: int) -> str:
    return f"{n:040x}"


# -- names and scopes -----------------------------------------------------------------------


def test_ls_remote_names_branches_and_tags_and_peels_annotated_tags() -> None:
    out = (
        f"{sha(1)}\trefs/heads/main\n{sha(2)}\trefs/heads/feature/x\n"
        f"{sha(3)}\trefs/tags/v1\n{sha(4)}\trefs/tags/v1^{{}}\n{sha(5)}\trefs/tags/light\n"
        f"{sha(6)}\trefs/pull/1/head\n"
    )
    assert parse_ls_remote(out) == {
        "main": sha(1),
        "feature/x": sha(2),
        "tag:v1": sha(4),  # the commit, not the tag object
        "tag:light": sha(5),
    }


@pytest.mark.parametrize(
    ("name", "scope"),
    [
        ("main", BranchScope.STAGING),
        ("feature/x", BranchScope.VALIDATE),
        ("feature/a/b", BranchScope.VALIDATE),
        ("release/1.0", BranchScope.PRODUCTION),
        ("tag:v1.2", BranchScope.PRODUCTION),
        ("tag:nightly", None),
        ("mainline", None),
        ("Main", None),  # refs are case-sensitive
    ],
)
def test_scope_for_maps_names_through_the_rules(name: str, scope: BranchScope | None) -> None:
    assert scope_for(name, RULES) is scope


def test_scope_for_first_matching_rule_wins() -> None:
    rules = [
        BranchRule(pattern="release/rc-*", scope=BranchScope.STAGING),
        BranchRule(pattern="release/*", scope=BranchScope.PRODUCTION),
    ]
    assert scope_for("release/rc-1", rules) is BranchScope.STAGING
    assert scope_for("release/2.0", rules) is BranchScope.PRODUCTION


def test_tags_are_not_matched_by_branch_patterns() -> None:
    assert scope_for("tag:release/1.0", CodeSpec().branches) is None


# -- cursor ---------------------------------------------------------------------------------


def test_cursor_round_trips() -> None:
    cursor = PushCursor({"main": sha(1), "release/1.0": sha(2)})
    assert PushCursor.from_json(cursor.to_json()) == cursor


@pytest.mark.parametrize("raw", [None, "", "  "])
def test_missing_cursor_is_empty(raw: str | None) -> None:
    assert PushCursor.from_json(raw) == PushCursor()


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("{not json", "not JSON"),
        ('["main"]', "expected a JSON object, got list"),
        ('{"main": 3}', "['main'] are not commit shas"),
        ('{"main": "HEAD"}', "['main'] are not commit shas"),
    ],
)
def test_garbage_cursor_is_a_clear_error(raw: str, why: str) -> None:
    with pytest.raises(CodeSourceError) as e:
        PushCursor.from_json(raw)
    assert "git_push_sensor cursor" in str(e.value)
    assert why in str(e.value)
    assert "reset the sensor's cursor" in str(e.value)


# -- planning -------------------------------------------------------------------------------


class FakeHistory:
    """new_commits_fn over a scripted answer per branch; records the calls it got."""

    def __init__(self, answers: dict[str, NewCommits | CodeSourceError]):
        self.answers = answers
        self.calls: list[tuple[str, str | None, str]] = []

    def __call__(self, branch: str, since: str | None, head: str) -> NewCommits:
        self.calls.append((branch, since, head))
        answer = self.answers[branch]
        if isinstance(answer, CodeSourceError):
            raise answer
        return answer


def test_first_sighting_runs_each_head_once_without_history() -> None:
    history = FakeHistory({})
    heads = {"main": sha(1), "feature/x": sha(2)}
    plan = plan_runs(PushCursor(), heads, RULES, history)
    assert plan.runs == (
        PushRun("feature/x", sha(2), BranchScope.VALIDATE),
        PushRun("main", sha(1), BranchScope.STAGING),
    )
    assert history.calls == []
    assert plan.cursor == PushCursor(heads)
    assert [e.kind for e in plan.events] == [PushEventKind.BRANCH_CREATED] * 2


def test_new_commits_run_oldest_first_and_unchanged_branches_do_nothing() -> None:
    history = FakeHistory({"main": NewCommits((sha(11), sha(12)))})
    cursor = PushCursor({"main": sha(10), "feature/x": sha(2)})
    plan = plan_runs(cursor, {"main": sha(12), "feature/x": sha(2)}, RULES, history)
    assert [(r.sha, r.run_key) for r in plan.runs] == [
        (sha(11), f"{sha(11)}:staging"),
        (sha(12), f"{sha(12)}:staging"),
    ]
    assert history.calls == [("main", sha(10), sha(12))]
    assert plan.cursor.heads == {"main": sha(12), "feature/x": sha(2)}
    assert plan.events == ()


def test_force_push_is_reported_and_the_new_head_runs() -> None:
    history = FakeHistory({"main": ForcePushDetected("main", sha(10), sha(20))})
    plan = plan_runs(PushCursor({"main": sha(10)}), {"main": sha(20)}, RULES, history)
    assert [r.sha for r in plan.runs] == [sha(20)]
    (event,) = plan.events
    assert event.kind is PushEventKind.FORCE_PUSH
    assert (event.old_sha, event.new_sha) == (sha(10), sha(20))
    assert plan.cursor.heads == {"main": sha(20)}


def test_deleted_branch_leaves_the_cursor_and_is_reported() -> None:
    plan = plan_runs(
        PushCursor({"main": sha(1), "feature/x": sha(2)}), {"main": sha(1)}, RULES, FakeHistory({})
    )
    assert plan.runs == ()
    assert plan.cursor.heads == {"main": sha(1)}
    (event,) = plan.events
    assert (event.kind, event.branch) == (PushEventKind.BRANCH_DELETED, "feature/x")


def test_capped_history_is_reported() -> None:
    history = FakeHistory({"main": NewCommits((sha(98), sha(99)), skipped=7)})
    plan = plan_runs(PushCursor({"main": sha(1)}), {"main": sha(99)}, RULES, history)
    assert [r.sha for r in plan.runs] == [sha(98), sha(99)]
    (event,) = plan.events
    assert event.kind is PushEventKind.COMMITS_SKIPPED
    assert "moved by 9 commits" in event.message and "skipping 7" in event.message


def test_failed_branch_keeps_its_cursor_and_others_go_on() -> None:
    history = FakeHistory(
        {
            "main": CodeSourceError("git could not fetch 'main'"),
            "feature/x": NewCommits((sha(3),)),
        }
    )
    cursor = PushCursor({"main": sha(1), "feature/x": sha(2)})
    plan = plan_runs(cursor, {"main": sha(9), "feature/x": sha(3)}, RULES, history)
    assert [r.branch for r in plan.runs] == ["feature/x"]
    assert plan.cursor.heads == {"main": sha(1), "feature/x": sha(3)}
    assert [e.kind for e in plan.events] == [PushEventKind.FETCH_FAILED]


def test_same_sha_dedupes_within_a_scope_but_not_across_scopes() -> None:
    heads = {"feature/a": sha(5), "feature/b": sha(5), "main": sha(5), "release/1.0": sha(5)}
    plan = plan_runs(PushCursor(), heads, RULES, FakeHistory({}))
    assert [(r.branch, r.scope) for r in plan.runs] == [
        ("feature/a", BranchScope.VALIDATE),
        ("main", BranchScope.STAGING),
        ("release/1.0", BranchScope.PRODUCTION),
    ]
    assert len({r.run_key for r in plan.runs}) == 3


def test_names_without_a_rule_are_neither_run_nor_tracked() -> None:
    plan = plan_runs(PushCursor(), {"experiment": sha(1)}, RULES, FakeHistory({}))
    assert plan.runs == () and plan.cursor.heads == {} and plan.events == ()


# -- errors at the process boundary -----------------------------------------------------------


def test_credentials_are_redacted_from_urls() -> None:
    text = "fatal: unable to access 'https://user:secret@host/x.git/' and ssh://tok@h/y"
    assert redact_url(text) == "fatal: unable to access 'https://***@host/x.git/' and ssh://***@h/y"
    assert redact_url("git@github.com:org/repo.git") == "git@github.com:org/repo.git"


def _runner_raising(exc: BaseException):
    def runner(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        raise exc

    return runner


def test_timeout_names_the_redacted_url(tmp_path: Path) -> None:
    url = "https://user:secret@example.invalid/x.git"
    timeout = subprocess.TimeoutExpired(["git"], 1.5, stderr=f"Cloning {url}".encode())
    remote = GitRemote(url, tmp_path, timeout_s=1.5, runner=_runner_raising(timeout))
    with pytest.raises(CodeSourceError) as e:
        remote.heads(["*"])
    message = str(e.value)
    assert "secret" not in message and "user" not in message
    assert "https://***@example.invalid/x.git" in message and "1.5s" in message


def test_missing_git_binary_is_a_clear_error(tmp_path: Path) -> None:
    remote = GitRemote("/srv/x.git", tmp_path, runner=_runner_raising(FileNotFoundError("git")))
    with pytest.raises(CodeSourceError, match="git executable was not found"):
        remote.heads(["*"])


def test_runner_gets_a_timeout_and_no_prompt(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def runner(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        seen.update(kwargs, args=args)
        return subprocess.CompletedProcess(args, 0, stdout="", stderr="")

    GitRemote("/srv/x.git", tmp_path, timeout_s=7, runner=runner).heads(["*"])
    assert seen["timeout"] == 7 and seen["env"]["GIT_TERMINAL_PROMPT"] == "0"
    assert seen["args"] == ["git", "ls-remote", "--heads", "--tags", "/srv/x.git"]
    assert "shell" not in seen


@pytest.mark.parametrize("url", ["", "--upload-pack=touch /tmp/pwned"])
def test_option_like_urls_are_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(CodeSourceError, match="invalid git remote URL"):
        GitRemote(url, tmp_path)
