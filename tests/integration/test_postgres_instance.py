"""The production Dagster instance backend: run, event log and schedule storage on Postgres.

.ci/run starts Debian's PostgreSQL and exports ML_PLATFORM_TEST_POSTGRES_URL; elsewhere the test
skips with that reason (and fails under CI=true).
"""

import os
import uuid
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from orchestration import execute_requests, sensor_run_requests
from tests.conftest import require_service
from tests.dagster.conftest import churn, clean_frame, commit_frame, store  # noqa: F401 (fixtures)

pytestmark = pytest.mark.integration


@pytest.fixture
def postgres_db() -> str:
    url = os.environ.get("ML_PLATFORM_TEST_POSTGRES_URL", "")
    reachable = False
    if url:
        try:
            with sa.create_engine(url).connect():
                reachable = True
        except sa.exc.OperationalError:
            reachable = False
    require_service(reachable, "PostgreSQL (ML_PLATFORM_TEST_POSTGRES_URL)")
    name = f"dagster_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield url.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_ci_run_recorded_in_postgres_instance(tmp_path: Path, postgres_db: str, churn, store) -> None:
    from definitions import build_defs

    home = tmp_path / "dagster-home"
    home.mkdir()
    storage = {"postgres": {"postgres_url": postgres_db}}
    (home / "dagster.yaml").write_text(
        yaml.safe_dump({"storage": storage, "telemetry": {"enabled": False}})
    )
    defs = build_defs([churn])
    commit = commit_frame(store, churn, clean_frame())
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        requests, _ = sensor_run_requests(defs, instance, "churn_data_commit_sensor", None)
        (outcome,) = list(execute_requests(defs, instance, churn, requests))
        assert outcome.data_commit == commit
        assert outcome.decision == "PROMOTE", outcome
        record = instance.get_run_record_by_id(outcome.run_id)
        assert record.dagster_run.tags["ml_platform/data_commit"] == commit
        event = instance.get_latest_materialization_event(dg.AssetKey(["churn", "training_data"]))
        assert event.asset_materialization.tags["dagster/data_version"] == commit
    # The records live in Postgres itself, not in files under DAGSTER_HOME.
    with sa.create_engine(postgres_db).connect() as conn:
        runs = conn.execute(sa.text("select count(*) from runs")).scalar_one()
    assert runs == 1
