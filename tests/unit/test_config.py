from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ml_platform.config import Direction, GateMode, load_project, load_projects, parse_project
from ml_platform.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
CHURN = ROOT / "projects" / "churn.yaml"


def churn_dict() -> dict:
    return yaml.safe_load(CHURN.read_text())


def test_demo_projects_load() -> None:
    projects = load_projects(ROOT / "projects")
    names = [p.name for p in projects]
    assert "churn" in names
    churn = next(p for p in projects if p.name == "churn")
    assert churn.target == "churned"
    assert "gender" in churn.sensitive_attributes
    assert "gender" not in churn.training_features  # sensitive attributes stay out of training
    assert churn.thresholds[2].direction is Direction.LOWER_IS_BETTER


def test_gate_modes_default_and_override() -> None:
    d = churn_dict()
    d["gates"]["modes"] = {"fairness": "blocking", "no_drift": "off"}
    cfg = parse_project(d)
    assert cfg.gates.mode("fairness") is GateMode.BLOCKING
    assert cfg.gates.mode("no_drift") is GateMode.OFF
    assert cfg.gates.mode("schema_valid") is GateMode.BLOCKING


@pytest.mark.parametrize(
    ("mutate", "field", "reason"),
    [
        (lambda d: d.pop("target"), "target", "Field required"),
        (lambda d: d["features"][0].update(dtype="decimal"), "features[0].dtype", "Input should be"),
        (lambda d: d["features"][0].update(min=200), "features[0]", "greater than max"),
        (lambda d: d.update(sensitive_attributes=["zodiac"]), "<root>", "are not features"),
        (lambda d: d["dataset"].update(path="x.xlsx"), "dataset.path", ".csv or .parquet"),
        (lambda d: d["rollout"].update(steps=[10, 50]), "rollout.steps", "must end at 100"),
        (lambda d: d["gates"].update(modes={"vibes": "blocking"}), "gates.modes", "unknown gate"),
        (lambda d: d.update(colour="blue"), "colour", "Extra inputs"),
        (lambda d: d.update(name="Churn Model"), "name", "String should match"),
    ],
)
def test_bad_config_names_file_field_and_reason(tmp_path: Path, mutate, field: str, reason: str) -> None:
    d = churn_dict()
    mutate(d)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(d))
    with pytest.raises(ConfigError) as e:
        load_project(bad)
    text = str(e.value)
    assert str(bad) in text
    assert f"field '{field}'" in text
    assert reason in text


def test_unparseable_and_missing_files(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="cannot parse"):
        load_project(broken)
    with pytest.raises(ConfigError, match="does not exist"):
        load_project(tmp_path / "nope.yaml")


def test_toml_project(tmp_path: Path) -> None:
    toml = tmp_path / "p.toml"
    toml.write_text(
        'name = "tiny"\ntarget = "y"\n[dataset]\nrepository = "r1x"\npath = "t.parquet"\n'
        '[[features]]\nname = "x"\ndtype = "float"\n'
    )
    assert load_project(toml).dataset.branch == "main"


def test_duplicate_project_names_rejected(tmp_path: Path) -> None:
    for f in ("a.yaml", "b.yaml"):
        (tmp_path / f).write_text(CHURN.read_text())
    with pytest.raises(ConfigError, match="also used by"):
        load_projects(tmp_path)
