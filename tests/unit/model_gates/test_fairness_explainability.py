from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    equalized_odds_difference,
    selection_rate,
    true_positive_rate,
)

from ml_platform.config import ExplainabilitySpec, FairnessSpec, GateMode
from ml_platform.model_gates import explainability, fairness, write_importance_report
from tests.unit.model_gates.synthetic import FEATURES, SENSITIVE, fit

ALL = [*FEATURES, SENSITIVE]
EXPLAIN = ExplainabilitySpec(top_k=2, n_repeats=3, max_rows=1000)


def _fairness(model, holdout, spec=None):
    spec = spec or FairnessSpec()
    y_pred = model.predict(holdout.drop(columns="label"))
    return fairness(holdout["label"], y_pred, holdout[[SENSITIVE]], spec, GateMode.WARNING)


def test_model_driven_by_the_sensitive_attribute_fails_fairness(biased_data):
    train, holdout = biased_data
    v = _fairness(fit(ALL, train), holdout)
    assert not v.passed and not v.blocks  # warning mode: reported, not blocking
    assert v.observed > v.threshold
    json.dumps(v.to_dict(), allow_nan=False)  # details go to Dagster metadata as they are
    assert "demographic_parity_difference" in v.message and SENSITIVE in v.message
    table = v.details["groups"][SENSITIVE]
    assert {r["group"] for r in table} == {"0", "1"}
    assert {"accuracy", "selection_rate", "tpr", "fpr", "count"} <= set(table[0])
    rates = sorted(r["selection_rate"] for r in table)
    dpd = next(b for b in v.details["bounds"] if b["metric"] == "demographic_parity_difference")
    assert dpd["value"] == pytest.approx(rates[1] - rates[0]) and dpd["value"] > dpd["limit"]


def test_model_on_unbiased_data_without_the_attribute_passes_fairness(fair_data):
    train, holdout = fair_data
    v = _fairness(fit(FEATURES, train), holdout)
    assert v.passed, v.message
    assert v.observed is not None and v.observed <= v.threshold


def test_small_groups_are_reported_and_kept_out_of_the_disparity():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    y_pred = y.copy()
    group = np.array(["a"] * 200 + ["b"] * 190 + ["tiny"] * 10)
    y_pred[group == "tiny"] = 1  # a 100 % selection rate on 10 rows: noise, not evidence
    sensitive = pd.DataFrame({"region": group})
    v = fairness(y, y_pred, sensitive, FairnessSpec(min_group_size=30), GateMode.WARNING)
    assert v.passed, v.message
    assert v.details["excluded_small_groups"] == {"region": ["tiny"]}
    assert "tiny" in v.message
    strict = fairness(y, y_pred, sensitive, FairnessSpec(min_group_size=5), GateMode.WARNING)
    assert not strict.passed


def test_a_limit_of_none_is_not_gated(biased_data):
    train, holdout = biased_data
    spec = FairnessSpec(max_demographic_parity_difference=None, max_equalized_odds_difference=None)
    v = _fairness(fit(ALL, train), holdout, spec)
    assert v.passed and v.details["bounds"] == []


def test_model_driven_by_the_sensitive_attribute_fails_explainability(biased_data):
    train, holdout = biased_data
    model = fit(ALL, train)
    X, y = holdout.drop(columns="label"), holdout["label"]
    v = explainability(model, X, y, EXPLAIN, [SENSITIVE], GateMode.WARNING, seed=0)
    assert not v.passed
    assert v.details["ranking"][0]["feature"] == SENSITIVE
    assert v.details["flagged"] == [SENSITIVE] and v.details["rows"] == 1000


def test_model_without_the_attribute_passes_explainability(biased_data):
    train, holdout = biased_data
    model = fit(FEATURES, train)  # the pipeline drops the attribute: permuting it costs nothing
    X, y = holdout.drop(columns="label"), holdout["label"]
    v = explainability(model, X, y, EXPLAIN, [SENSITIVE], GateMode.WARNING, seed=0)
    assert v.passed, v.message
    ranking = {r["feature"]: r["importance_mean"] for r in v.details["ranking"]}
    assert ranking[SENSITIVE] == 0.0 and ranking["income"] > 0.01


def test_forbidden_feature_in_top_k_fails_with_a_predict_function(fair_data):
    train, holdout = fair_data
    model = fit(FEATURES, train)
    spec = ExplainabilitySpec(top_k=1, n_repeats=2, forbidden_features=["income"])
    X, y = holdout.drop(columns="label"), holdout["label"]

    def predict(frame: pd.DataFrame) -> np.ndarray:
        return model.predict_proba(frame)[:, 1]

    v = explainability(predict, X, y, spec, [], GateMode.BLOCKING, seed=1)
    assert not v.passed and v.details["flagged"] == ["income"]


def test_importance_report_is_json_and_html(biased_data, tmp_path):
    train, holdout = biased_data
    X, y = holdout.drop(columns="label"), holdout["label"]
    v = explainability(fit(ALL, train), X, y, EXPLAIN, [SENSITIVE], GateMode.WARNING, seed=0)
    json_path, html_path = write_importance_report(v, tmp_path / "report")
    loaded = json.loads(json_path.read_text())
    assert loaded["gate"] == "explainability" and len(loaded["details"]["ranking"]) == len(ALL)
    html = html_path.read_text()
    assert html.count("<tr") == len(ALL) + 1 and 'class="flagged"' in html
    body = ET.fromstring(html.split("\n", 1)[1])  # well-formed once the doctype is dropped
    assert body.find(".//tr[@class='flagged']/td[2]").text == SENSITIVE


def test_collapsed_confusion_cells_give_fairlearns_per_row_results():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 3000)
    y_pred = (rng.random(3000) < 0.3 + 0.3 * y).astype(int)
    region = pd.Series(rng.choice(["n", "s", "e", "w"], 3000, p=[0.4, 0.3, 0.2, 0.1]))
    v = fairness(y, y_pred, pd.DataFrame({"region": region}), FairnessSpec(), GateMode.WARNING)
    got = {b["metric"]: b["value"] for b in v.details["bounds"]}
    per_row = MetricFrame(
        metrics={"selection_rate": selection_rate, "tpr": true_positive_rate},
        y_true=y,
        y_pred=y_pred,
        sensitive_features=region,
    ).by_group
    assert got["demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(y, y_pred, sensitive_features=region), abs=1e-12
    )
    assert got["equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(y, y_pred, sensitive_features=region), abs=1e-12
    )
    for row in v.details["groups"]["region"]:
        assert row["selection_rate"] == pytest.approx(per_row.loc[row["group"], "selection_rate"])
        assert row["tpr"] == pytest.approx(per_row.loc[row["group"], "tpr"])
    assert sum(r["count"] for r in v.details["groups"]["region"]) == 3000
