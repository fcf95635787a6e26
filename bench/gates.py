"""Time and peak memory of the data gates (schema, drift) on a large synthetic table.

    .venv/bin/python bench/gates.py [--rows 1000000 --cols 20] [--skip-full-evidently]

Builds a project config with ``cols - 1`` features (60 % numeric, the rest categorical) plus a
0/1 target, then measures, each in a fresh forked process (so peak memory is not polluted by the
previous measurement):

* the schema gate (``validate_frame``) vs hand-written vectorised pandas/numpy checks of the same
  rules, and vs plain full-frame Pandera lazy validation, on clean data and with 1 % bad rows
  (nulls, out-of-range numbers, unknown categories);
* the drift gate (``compute_drift``: seeded sample + Evidently) vs Evidently on the full frames
  with the same per-column methods, on data where some columns are shifted.

Each measurement runs in a fresh spawned process that rebuilds its frames from seeds. Peak
memory is read from the kernel: the peak RSS (VmHWM, reset just before the call through
/proc/self/clear_refs) minus the RSS before the call, and the absolute peak RSS, which includes
the interpreter, the imported libraries (~300 MB for pandas, Pandera and Evidently) and the
input frames. Timings are wall-clock; the machine may be shared, so best-of-N is reported.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from ml_platform.config import ProjectConfig, parse_project
from ml_platform.drift import compute_drift, run_evidently
from ml_platform.validation import _full as plain_pandera  # the reference the gate must equal
from ml_platform.validation import build_schema, validate_frame

CATEGORIES = ["red", "green", "blue", "black", "white"]
NUM_RANGE = (0.0, 1000.0)


# --- data --------------------------------------------------------------------------------


def make_config(cols: int, max_sample_rows: int) -> ProjectConfig:
    n_features = cols - 1
    n_num = round(0.6 * n_features)
    features: list[dict[str, Any]] = []
    for i in range(n_features):
        if i < n_num:
            dtype = "int" if i % 2 else "float"
            features.append({"name": f"f{i:02d}", "dtype": dtype, "min": 0, "max": 1000})
        else:
            features.append({"name": f"f{i:02d}", "dtype": "category", "allowed": CATEGORIES})
    return parse_project(
        {
            "name": "bench",
            "dataset": {"repository": "bench", "path": "bench.parquet"},
            "target": "label",
            "features": features,
            "drift": {"max_sample_rows": max_sample_rows, "drift_share": 0.3},
        }
    )


def make_frame(cfg: ProjectConfig, rows: int, seed: int) -> pd.DataFrame:
    """Typed columns as a Parquet file would give them (category columns are categoricals)."""
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {}
    for f in cfg.features:
        if f.dtype == "category":
            codes = rng.integers(0, len(CATEGORIES), rows).astype("int8")
            data[f.name] = pd.Categorical.from_codes(codes, categories=CATEGORIES)
        else:
            x = np.clip(rng.normal(500, 120, rows), *NUM_RANGE)
            data[f.name] = np.rint(x).astype("int64") if f.dtype == "int" else x
    data["label"] = (rng.random(rows) < 0.25).astype("int64")
    return pd.DataFrame(data)


def make_bad(cfg: ProjectConfig, df: pd.DataFrame, fraction: float, seed: int) -> pd.DataFrame:
    """``fraction`` of the rows get one bad cell each: a null, an out-of-range number or an
    unknown category, spread over every feature column."""
    rng = np.random.default_rng(seed)
    out = df.copy()
    rows = rng.choice(len(df), size=int(fraction * len(df)), replace=False)
    names = cfg.feature_names
    for j, name in enumerate(names):
        pos = rows[j :: len(names)]
        col = out[name]
        if isinstance(col.dtype, pd.CategoricalDtype):
            col = col.cat.add_categories(["purple"])
            col.iloc[pos[::2]] = "purple"
            col.iloc[pos[1::2]] = np.nan
        elif col.dtype.kind == "i":
            col = col.copy()
            col.iloc[pos] = -5  # an int column keeps its dtype: no NaN here
        else:
            col = col.copy()
            col.iloc[pos[::2]] = 5000.0
            col.iloc[pos[1::2]] = np.nan
        out[name] = col
    return out


def shifted_columns(cfg: ProjectConfig) -> list[str]:
    """Two numeric and one categorical column: fewer than drift_share, so per-column agreement
    matters more than the dataset verdict."""
    num = [f.name for f in cfg.features if f.is_numeric]
    cat = [f.name for f in cfg.features if not f.is_numeric]
    return num[:2] + cat[:1]


def make_shifted(cfg: ProjectConfig, rows: int, seed: int) -> pd.DataFrame:
    df = make_frame(cfg, rows, seed)
    for name in shifted_columns(cfg):
        col = df[name]
        if isinstance(col.dtype, pd.CategoricalDtype):
            rng = np.random.default_rng(seed + 1)
            codes = col.cat.codes.to_numpy().copy()
            codes[rng.random(rows) < 0.4] = 0  # 40 % of rows move to the first category
            df[name] = pd.Categorical.from_codes(codes, categories=CATEGORIES)
        else:
            df[name] = (col + col.std()).astype(col.dtype)  # one standard deviation
    return df


# --- the hand-written baseline ---------------------------------------------------------------


def hand_written(df: pd.DataFrame, cfg: ProjectConfig) -> dict[str, int]:
    """The same rules as the schema, written directly in pandas/numpy: failures per check."""
    counts: dict[str, int] = {}
    expected = {f.name for f in cfg.features} | {cfg.target}
    counts["missing"] = len(expected - set(df.columns))
    counts["extra"] = len(set(df.columns) - expected)
    for f in cfg.features:
        s = df[f.name]
        isna = s.isna().to_numpy()
        counts[f"{f.name}: null"] = int(isna.sum())
        if f.is_numeric:
            a = s.to_numpy()
            with np.errstate(invalid="ignore"):
                out = (a < f.min) | (a > f.max)
            counts[f"{f.name}: range"] = int(out.sum())
        elif isinstance(s.dtype, pd.CategoricalDtype):
            # decide per category, then look the codes up (the fast way for categoricals)
            bad = np.append(~s.cat.categories.isin(f.allowed or []), False)
            counts[f"{f.name}: isin"] = int(bad[s.cat.codes.to_numpy()].sum())
        else:
            counts[f"{f.name}: isin"] = int((~s.isin(f.allowed or []).to_numpy() & ~isna).sum())
    counts["label: isin"] = int((~df[cfg.target].isin([0, 1])).sum())
    return counts


# --- measurement -----------------------------------------------------------------------------


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> None:
    # Linux: writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS.
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


@dataclass(frozen=True)
class Measured:
    seconds: float  # best of the repeats (wall clock)
    peak_delta_mb: float  # peak RSS during the call minus RSS just before it
    peak_rss_mb: float  # absolute peak RSS of the process during the call
    value: Any


@dataclass(frozen=True)
class Job:
    """What a child process builds and measures; frames are rebuilt there from seeds."""

    kind: str  # gate | hand | plain | drift | full_evidently
    frame: str  # clean | bad | shifted (the drift jobs compare clean vs shifted)
    rows: int
    cols: int
    sample_rows: int
    repeats: int


def _frames(job: Job, cfg: ProjectConfig) -> tuple[pd.DataFrame, ...]:
    clean = make_frame(cfg, job.rows, seed=1)
    if job.frame == "clean":
        return (clean,)
    if job.frame == "bad":
        return (make_bad(cfg, clean, 0.01, seed=2),)
    return clean, make_shifted(cfg, job.rows, seed=3)


def _call(job: Job, cfg: ProjectConfig, frames: tuple[pd.DataFrame, ...]) -> Callable[[], Any]:
    df = frames[0]
    calls: dict[str, Callable[[], Any]] = {
        "gate": lambda: validate_frame(df, cfg),
        "hand": lambda: hand_written(df, cfg),
        "plain": lambda: plain_pandera(build_schema(cfg), df, 50),
        "drift": lambda: compute_drift(frames[0], frames[-1], cfg),
        "full_evidently": lambda: run_evidently(frames[0], frames[-1], cfg)[1:],
    }
    return calls[job.kind]


def _child(job: Job, conn: Any) -> None:
    import warnings

    warnings.simplefilter("ignore")  # pandas FutureWarnings from inside Pandera
    cfg = make_config(job.cols, job.sample_rows)
    fn = _call(job, cfg, _frames(job, cfg))
    base = _status_mb("VmRSS")
    _reset_peak()
    best, value = float("inf"), None
    for _ in range(job.repeats):
        t = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - t)
    peak = _status_mb("VmHWM")
    conn.send(Measured(best, peak - base, peak, value))
    conn.close()


def measure(job: Job) -> Measured:
    """Run one job in a fresh process, so no earlier allocation hides or inflates its peak."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(job, child))
    proc.start()
    result: Measured = parent.recv()
    proc.join()
    return result


# --- report ----------------------------------------------------------------------------------


def _row(label: str, m: Measured, extra: str = "") -> str:
    return f"  {label:<44} {m.seconds:>8.3f} s  {m.peak_delta_mb:>8.0f} MB  {m.peak_rss_mb:>8.0f} MB  {extra}"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def bench_schema(args: argparse.Namespace) -> list[bool]:
    print(f"\nSchema gate ({args.rows:,} rows x {args.cols} columns, best of {args.repeats})")
    print(f"  {'':<44} {'time':>10}  {'+peak':>11}  {'peak RSS':>11}")
    ok: list[bool] = []
    for label, frame in (("clean", "clean"), ("1% bad rows", "bad")):
        job = Job("gate", frame, args.rows, args.cols, args.sample_rows, args.repeats)
        gate = measure(job)
        hand = measure(replace(job, kind="hand"))
        plain = measure(replace(job, kind="plain", repeats=min(3, args.repeats)))
        ratio = gate.seconds / hand.seconds
        g, p = gate.value, plain.value
        same = (g.passed, g.n_failure_cases, dict(g.error_counts)) == (
            p.passed,
            p.n_failure_cases,
            dict(p.error_counts),
        )
        hand_total = sum(v for k, v in hand.value.items())
        print(f" {label}:")
        print(_row("schema gate (validate_frame)", gate, f"{g.n_failure_cases} failure cases"))
        print(_row("hand-written vectorised checks", hand, f"{hand_total} failures"))
        print(_row("plain Pandera lazy, full frame", plain, f"{p.n_failure_cases} failure cases"))
        print(f"  target gate <= 2x hand-written: ratio {ratio:.2f}  {_verdict(ratio <= 2)}")
        print(f"  verdict and counts equal plain Pandera: {same}  {_verdict(same)}")
        ok += [ratio <= 2, same]
    return ok


def bench_drift(args: argparse.Namespace) -> list[bool]:
    cfg = make_config(args.cols, args.sample_rows)
    shape = f"{args.rows:,} x {args.cols}"
    print(f"\nDrift gate ({shape} reference vs {shape} current, one run each)")
    print(f"  shifted columns: {shifted_columns(cfg)}")
    job = Job("drift", "shifted", args.rows, args.cols, args.sample_rows, 1)
    gate = measure(job)
    r = gate.value
    flags = {c.column: c.drifted for c in r.columns}
    print(_row(f"drift gate (sample {cfg.drift.max_sample_rows:,})", gate, f"{r.drifted_columns}"))
    fast_ok, mem_ok = gate.seconds <= 10, gate.peak_delta_mb <= 600
    print(f"  target <= 10 s: {gate.seconds:.2f} s  {_verdict(fast_ok)}")
    print(
        f"  target <= 600 MB peak: the gate adds {gate.peak_delta_mb:.0f} MB to its inputs "
        f"{_verdict(mem_ok)} (process peak {gate.peak_rss_mb:.0f} MB = libraries ~300 MB "
        "+ both input frames + the gate)"
    )
    exact = set(r.drifted_columns) == set(shifted_columns(cfg))
    print(f"  drifted columns are exactly the shifted ones: {_verdict(exact)}")
    ok = [fast_ok, mem_ok, exact]
    if args.skip_full_evidently:
        print("  full-data Evidently: skipped (--skip-full-evidently)")
        return ok
    full = measure(replace(job, kind="full_evidently"))
    full_flags = {c.column: c.drifted for c in full.value[0]}
    print(
        _row(
            "Evidently on full frames, same methods",
            full,
            str([c for c, d in full_flags.items() if d]),
        )
    )
    diff = [c for c in flags if flags[c] != full_flags[c]]
    print(f"  per-column verdicts equal full-data Evidently: {not diff} {diff or ''} {_verdict(not diff)}")
    print(
        f"  speed-up {full.seconds / gate.seconds:.0f}x, peak RSS "
        f"{full.peak_rss_mb:.0f} -> {gate.peak_rss_mb:.0f} MB"
    )
    return [*ok, not diff]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--cols", type=int, default=20, help="columns including the target")
    ap.add_argument("--sample-rows", type=int, default=50_000, help="drift.max_sample_rows")
    ap.add_argument("--skip-full-evidently", action="store_true")
    ap.add_argument("--repeats", type=int, default=7, help="schema timings: best of N")
    args = ap.parse_args()
    ok = bench_schema(args) + bench_drift(args)
    print(f"\n{'ALL TARGETS PASS' if all(ok) else 'SOME TARGETS FAIL'} ({sum(ok)}/{len(ok)})")


if __name__ == "__main__":
    main()
