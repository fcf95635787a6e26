"""Seeded demo datasets (churn, credit) and pure, seeded corruption helpers.

The generators follow ``projects/churn.yaml`` and ``projects/credit.yaml`` exactly: same column
names, dtypes, ranges and allowed values. Labels come from a logistic model of the features plus
noise, so a gradient-boosting model can learn them (ROC AUC about 0.8-0.9) while the sensitive
attribute has at most a weak effect. The corruption helpers return new frames and never modify
their input; they exist to show (and test) that the gates stop bad commits.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

CHURN_PLANS = ("basic", "standard", "premium")
CHURN_CONTRACTS = ("monthly", "annual", "two_year")
CHURN_REGIONS = ("north", "south", "east", "west")
GENDERS = ("female", "male", "nonbinary")

CREDIT_EMPLOYMENT = ("salaried", "self_employed", "unemployed", "retired", "student")
CREDIT_HOME = ("own", "mortgage", "rent", "other")
CREDIT_AGE_BANDS = ("18-25", "26-35", "36-50", "51-65", "65+")


def _pick(rng: np.random.Generator, values: Sequence[str], p: Sequence[float], n: int) -> np.ndarray:
    return rng.choice(np.asarray(values, dtype=object), size=n, p=np.asarray(p))


def _labels(rng: np.random.Generator, logit: np.ndarray, positive_rate: float) -> np.ndarray:
    """Bernoulli draws whose mean is ``positive_rate``: the intercept is solved, not guessed."""
    lo, hi = -20.0, 20.0
    for _ in range(60):  # bisection on the intercept; the mean probability is monotone in it
        mid = (lo + hi) / 2
        if float(np.mean(1 / (1 + np.exp(-(logit + mid))))) < positive_rate:
            lo = mid
        else:
            hi = mid
    p = 1 / (1 + np.exp(-(logit + lo)))
    return (rng.random(len(logit)) < p).astype("int64")


def _category(values: np.ndarray, allowed: Sequence[str]) -> pd.Categorical:
    return pd.Categorical(values, categories=list(allowed))


def generate_churn(n_rows: int, seed: int, positive_rate: float = 0.25) -> pd.DataFrame:
    """Subscription customers matching ``projects/churn.yaml``; ``churned`` is about
    ``positive_rate`` ones.

    The same ``seed`` gives the same customers whatever ``positive_rate``: only the label's base
    rate moves, as when upstream widens the churn definition (e.g. "left within 90 days" ->
    "within 180 days"): the same customers are at risk for the same reasons, more of them count
    as churned. Features do not drift, so data gates cannot see it (see demo.py, "relabelled").
    """
    if not 0 < positive_rate < 1:
        raise ValueError(f"positive_rate must be between 0 and 1, got {positive_rate}")
    rng = np.random.default_rng(seed)
    n = n_rows
    plan = _pick(rng, CHURN_PLANS, [0.45, 0.35, 0.20], n)
    contract = _pick(rng, CHURN_CONTRACTS, [0.55, 0.30, 0.15], n)
    region = _pick(rng, CHURN_REGIONS, [0.3, 0.25, 0.25, 0.2], n)
    gender = _pick(rng, GENDERS, [0.49, 0.48, 0.03], n)
    age = np.clip(np.rint(rng.normal(44, 14, n)), 18, 90).astype("int64")
    tenure_scale = np.select([contract == "annual", contract == "two_year"], [36.0, 60.0], 14.0)
    tenure = np.clip(np.rint(rng.exponential(tenure_scale)), 0, 240).astype("int64")
    base_charge = np.select([plan == "standard", plan == "premium"], [65.0, 110.0], 30.0)
    charges = np.clip(base_charge * rng.lognormal(0, 0.2, n), 5, 480).round(2)
    usage_scale = np.select([plan == "standard", plan == "premium"], [60.0, 150.0], 20.0)
    usage = np.clip(rng.gamma(2.0, usage_scale / 2.0, n), 0, 1900).round(2)
    calls = np.clip(rng.poisson(1.2 + 0.004 * charges), 0, 50).astype("int64")

    logit = (
        -0.045 * tenure
        + 0.018 * (charges - 60)
        + 0.55 * calls
        - 0.003 * usage
        - 0.015 * (age - 44)
        + np.select([contract == "annual", contract == "two_year"], [-1.0, -2.0], 0.6)
        + np.select([region == "south"], [0.25], 0.0)
        + np.select([gender == "female"], [0.05], 0.0)  # deliberately weak
        + rng.normal(0, 0.4, n)  # label noise the features cannot explain
    )
    return pd.DataFrame(
        {
            "age": age,
            "tenure_months": tenure,
            "monthly_charges": charges,
            "support_calls": calls,
            "data_usage_gb": usage,
            "plan": _category(plan, CHURN_PLANS),
            "contract": _category(contract, CHURN_CONTRACTS),
            "region": _category(region, CHURN_REGIONS),
            "gender": _category(gender, GENDERS),
            "churned": _labels(rng, logit, positive_rate),
        }
    )


def generate_credit(n_rows: int, seed: int) -> pd.DataFrame:
    """Loan applicants matching ``projects/credit.yaml``; ``defaulted`` is about 20 % ones."""
    rng = np.random.default_rng(seed)
    n = n_rows
    age_band = _pick(rng, CREDIT_AGE_BANDS, [0.12, 0.26, 0.32, 0.2, 0.1], n)
    employment = _pick(rng, CREDIT_EMPLOYMENT, [0.6, 0.15, 0.07, 0.1, 0.08], n)
    home = _pick(rng, CREDIT_HOME, [0.2, 0.38, 0.38, 0.04], n)
    income_scale = np.select(
        [employment == "unemployed", employment == "student", employment == "retired"],
        [12_000.0, 15_000.0, 30_000.0],
        52_000.0,
    )
    income = np.clip(income_scale * rng.lognormal(0, 0.45, n), 0, 2_000_000).round(0)
    debt_ratio = np.clip(rng.beta(2.0, 5.0, n) * 1.6, 0, 5).round(4)
    credit_lines = np.clip(rng.poisson(5, n), 0, 60).astype("int64")
    late = np.clip(rng.poisson(0.3 + 1.2 * debt_ratio), 0, 99).astype("int64")

    logit = (
        -1.6 * np.log(income + 1_000) / np.log(10)
        + 4.0 * debt_ratio
        + 0.7 * late
        - 0.06 * credit_lines
        + np.select([employment == "unemployed", employment == "self_employed"], [1.0, 0.3], 0.0)
        + np.select([home == "own", home == "mortgage"], [-0.4, -0.2], 0.0)
        + np.select([age_band == "18-25"], [0.1], 0.0)  # deliberately weak
        + rng.normal(0, 0.4, n)
    )
    return pd.DataFrame(
        {
            "income": income,
            "debt_ratio": debt_ratio,
            "credit_lines": credit_lines,
            "late_payments": late,
            "employment": _category(employment, CREDIT_EMPLOYMENT),
            "home_ownership": _category(home, CREDIT_HOME),
            "age_band": _category(age_band, CREDIT_AGE_BANDS),
            "defaulted": _labels(rng, logit, 0.20),
        }
    )


# --- corruption helpers: pure, seeded, each returns a new frame ------------------------------


def _rows(df: pd.DataFrame, fraction: float, seed: int) -> np.ndarray:
    """Positions of ``fraction`` of the rows (at least one when the frame is not empty)."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    k = min(len(df), max(1, round(fraction * len(df)))) if fraction > 0 else 0
    return np.sort(np.random.default_rng(seed).choice(len(df), size=k, replace=False))


def _require(df: pd.DataFrame, column: str) -> None:
    if column not in df.columns:
        raise KeyError(f"column '{column}' is not in the frame (have {list(df.columns)})")


def with_nulls(df: pd.DataFrame, column: str, fraction: float, seed: int) -> pd.DataFrame:
    """``fraction`` of ``column`` set to missing (int columns become float, as pandas does)."""
    _require(df, column)
    out = df.copy()
    pos = _rows(df, fraction, seed)
    col = out[column]
    if pd.api.types.is_integer_dtype(col) or pd.api.types.is_bool_dtype(col):
        col = col.astype("float64" if pd.api.types.is_integer_dtype(col) else "object")
    col = col.copy()
    col.iloc[pos] = np.nan
    out[column] = col
    return out


def with_wrong_dtype(df: pd.DataFrame, column: str, fraction: float, seed: int) -> pd.DataFrame:
    """``fraction`` of ``column`` replaced by strings that parse as nothing (e.g. ``"n/a"``)."""
    _require(df, column)
    out = df.copy()
    pos = _rows(df, fraction, seed)
    col = out[column].astype("object")
    junk = np.array(["n/a", "unknown", "#REF!", "twelve"], dtype=object)
    col.iloc[pos] = junk[np.arange(len(pos)) % len(junk)]
    out[column] = col
    return out


def with_out_of_range(df: pd.DataFrame, column: str, fraction: float, seed: int) -> pd.DataFrame:
    """``fraction`` of ``column`` set far outside its observed values.

    Numeric columns get a large negative value (below any sensible minimum); other columns get
    the label ``"__invalid__"``, which no allowed list contains.
    """
    _require(df, column)
    out = df.copy()
    pos = _rows(df, fraction, seed)
    col = out[column].copy()
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        bad = -(10 * float(np.nanmax(np.abs(col.to_numpy(dtype="float64")))) + 1_000)
        col.iloc[pos] = int(bad) if pd.api.types.is_integer_dtype(col) else bad
    else:
        if isinstance(col.dtype, pd.CategoricalDtype):
            col = col.cat.add_categories(["__invalid__"])
        else:
            col = col.astype("object")
        col.iloc[pos] = "__invalid__"
    out[column] = col
    return out


def without_column(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """``df`` without ``column``."""
    _require(df, column)
    return df.drop(columns=[column])


def with_extra_column(df: pd.DataFrame, name: str) -> pd.DataFrame:
    """``df`` with one more column, ``name``, that no schema declares."""
    if name in df.columns:
        raise ValueError(f"column '{name}' already exists")
    out = df.copy()
    out[name] = np.arange(len(df), dtype="int64")
    return out


def with_shift(df: pd.DataFrame, columns: Sequence[str], amount_in_std: float, seed: int) -> pd.DataFrame:
    """Distributions moved: numeric columns by ``amount_in_std`` standard deviations.

    Categorical columns move ``min(1, amount_in_std / 2)`` of their rows to their rarest
    category (a comparable, visible shift). Values are not clipped to the schema's range, so a
    large shift can also fail the schema gate.
    """
    out = df.copy()
    rng = np.random.default_rng(seed)
    for column in columns:
        _require(df, column)
        col = out[column]
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            delta = amount_in_std * float(col.std())
            shifted = col + delta
            out[column] = shifted.round().astype(col.dtype) if col.dtype.kind in "iu" else shifted
            continue
        fraction = min(1.0, abs(amount_in_std) / 2)
        pos = _rows(df, fraction, int(rng.integers(2**31)))
        rarest = col.value_counts().idxmin()
        moved = col.copy()
        moved.iloc[pos] = rarest
        out[column] = moved
    return out


def with_noisy_labels(df: pd.DataFrame, target: str, fraction: float, seed: int) -> pd.DataFrame:
    """``fraction`` of the binary ``target`` flipped to the other label."""
    _require(df, target)
    labels = pd.unique(df[target].dropna())
    if len(labels) != 2:
        raise ValueError(f"target '{target}' must have exactly 2 labels to flip, got {list(labels)}")
    out = df.copy()
    pos = _rows(df, fraction, seed)
    col = out[target].copy()
    current = col.iloc[pos]
    col.iloc[pos] = np.where(current == labels[0], labels[1], labels[0])
    out[target] = col
    return out
