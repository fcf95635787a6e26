from __future__ import annotations

import pickle
from importlib import metadata

import numpy as np
import pandas as pd
import pytest

from ml_platform.config import ArtifactSpec, GateMode, LatencySpec
from ml_platform.errors import MLPlatformError
from ml_platform.model_gates import (
    artifact_size,
    dependencies_pinned,
    directory_digest,
    latency_budget,
    round_trip,
)
from tests.unit.model_gates.synthetic import FEATURES, fit

NUMPY = metadata.version("numpy")


def test_artifact_size_limit():
    spec = ArtifactSpec(max_size_mb=5.0)
    small = artifact_size(1_200_000, spec, GateMode.BLOCKING)
    big = artifact_size(7_500_000, spec, GateMode.BLOCKING)
    assert small.passed and small.observed == pytest.approx(1.2)
    assert not big.passed and big.blocks and big.observed == pytest.approx(7.5)
    assert "7.5 MB" in big.message and "5 MB" in big.message


def test_pickle_round_trip_is_identical_and_a_changed_model_is_not(fair_data):
    train, holdout = fair_data
    model = fit(FEATURES, train)
    reloaded = pickle.loads(pickle.dumps(model))
    X = holdout.drop(columns="label").head(200)

    def original(frame):
        return model.predict_proba(frame)[:, 1]

    same = round_trip(original, lambda f: reloaded.predict_proba(f)[:, 1], X, GateMode.BLOCKING)
    assert same.passed and same.observed == 0.0
    drifted = round_trip(original, lambda f: original(f) + 1e-7, X, GateMode.BLOCKING)
    assert not drifted.passed and drifted.observed == pytest.approx(1e-7)
    truncated = round_trip(original, lambda f: original(f)[:-1], X, GateMode.BLOCKING)
    assert not truncated.passed and truncated.observed == float("inf")


def test_pinned_requirements_matching_this_environment_pass():
    lines = [
        "# exported by the training step",
        f"numpy=={NUMPY}  # inline comment",
        "surely-not-installed-here-pkg==1.2.3 \\",
        "    --hash=sha256:0123456789abcdef",
        "",
        "-i https://pypi.org/simple",
        'windows-only-pkg==2.0 ; sys_platform == "win32"',
    ]
    v = dependencies_pinned(lines, GateMode.WARNING)
    assert v.passed, v.message
    assert v.details["requirements"] == 3
    assert "surely-not-installed-here-pkg" in v.details["not_installed_here"]


def test_unpinned_and_mismatched_requirements_fail():
    lines = ["pandas>=2", "scikit-learn", "numpy==0.0.1", "-e ./src", "mlflow==3.*"]
    v = dependencies_pinned(lines, GateMode.WARNING)
    assert not v.passed and v.observed == 5.0
    assert v.details["unpinned"] == ["pandas>=2", "scikit-learn", "-e ./src", "mlflow==3.*"]
    assert v.details["mismatched"] == [f"numpy (pinned 0.0.1, installed here {NUMPY})"]
    assert "pandas>=2" in v.message and "numpy" in v.message


def test_directory_digest_covers_paths_and_contents(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root, order in ((a, ["x.bin", "sub/y.txt"]), (b, ["sub/y.txt", "x.bin"])):
        for name in order:  # different creation order, same tree
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(name.encode() * 3)
    assert directory_digest(a) == directory_digest(b)
    assert len(directory_digest(a)) == 64
    (b / "x.bin").write_bytes(b"changed")
    assert directory_digest(a) != directory_digest(b)
    (b / "x.bin").write_bytes(b"x.bin" * 3)
    (b / "x.bin").rename(b / "z.bin")
    assert directory_digest(a) != directory_digest(b)
    with pytest.raises(MLPlatformError, match="not a directory"):
        directory_digest(tmp_path / "missing")


class FakeClock:
    """Each timed call takes the next duration (seconds) from the script."""

    def __init__(self, durations: list[float]) -> None:
        self._durations = iter(durations)
        self._now = 0.0
        self._started = False
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        if self._started:
            self._now += next(self._durations)
        self._started = not self._started
        return self._now


def _predict_counter():
    calls: list[int] = []

    def predict(X: pd.DataFrame) -> np.ndarray:
        calls.append(len(X))
        return np.zeros(len(X))

    return predict, calls


def test_latency_percentiles_from_a_fake_clock():
    spec = LatencySpec(repeats=20, batch_rows=50, single_row_p95_ms=10, batch_p95_ms=100)
    single = [i / 1000 for i in range(1, 21)]  # 1..20 ms
    batch = [0.050] * 20
    clock = FakeClock(single + batch)
    predict, calls = _predict_counter()
    X = pd.DataFrame({"a": range(7)})
    v = latency_budget(predict, X, spec, GateMode.WARNING, clock=clock)
    assert v.details["single_row"]["p50_ms"] == pytest.approx(10.5)
    assert v.details["single_row"]["p95_ms"] == pytest.approx(np.percentile(range(1, 21), 95))
    assert v.details["batch"]["p95_ms"] == pytest.approx(50.0)
    assert not v.passed and v.observed == pytest.approx(19.05)  # single-row p95 over 10 ms
    assert calls[:2] == [1, 50]  # warm-up calls first, untimed
    assert calls[2:] == [1] * 20 + [50] * 20 and clock.calls == 80


def test_latency_within_budget_passes_and_slow_batches_fail():
    spec = LatencySpec(repeats=10, batch_rows=5, single_row_p95_ms=10, batch_p95_ms=100)
    X = pd.DataFrame({"a": range(3)})
    fast = FakeClock([0.002] * 10 + [0.040] * 10)
    ok = latency_budget(_predict_counter()[0], X, spec, GateMode.WARNING, clock=fast)
    assert ok.passed, ok.message
    slow = FakeClock([0.002] * 10 + [0.300] * 10)
    v = latency_budget(_predict_counter()[0], X, spec, GateMode.WARNING, clock=slow)
    assert not v.passed and "batch of 5 p95 300 ms > 100 ms" in v.message
