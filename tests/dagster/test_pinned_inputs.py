"""A run pins its inputs: a data commit that lands mid-run changes nothing in that run and gets
its own run on the next sensor tick."""

from collections.abc import Mapping
from typing import BinaryIO, ClassVar

import dagster as dg
import pandas as pd

from assets import tags
from definitions import build_defs, build_project_defs, default_resources
from ml_platform import dataset
from ml_platform.config import ProjectConfig
from ml_platform.data.local import LocalDataStore
from ml_platform.data.store import DataStore
from ml_platform.settings import platform_paths
from orchestration import sensor_run_requests
from resources import DataStoreResource
from tests.dagster.conftest import clean_frame, commit_frame

SENSOR = "churn_data_commit_sensor"


class CommitAfterFirstRead:
    """A DataStore (test double) that commits ``frame`` to the branch right after the first read
    of ``path``: the moment training_data has read its pinned commit."""

    def __init__(self, inner: LocalDataStore, cfg: ProjectConfig, frame: pd.DataFrame) -> None:
        self._inner = inner
        self._cfg = cfg
        self._frame = frame
        self.landed: str | None = None
        self.kind = inner.kind

    def open(self, repository: str, ref: str, path: str) -> BinaryIO:
        stream = self._inner.open(repository, ref, path)
        if self.landed is None and path == self._cfg.dataset.path:
            payload = {path: dataset.to_bytes(self._frame, path)}
            self.landed = self._inner.commit(
                repository, self._cfg.dataset.branch, payload, message="mid-run", author="race"
            ).id
        return stream

    def __getattr__(self, name: str):  # every other DataStore method: the real store
        return getattr(self._inner, name)


class RacingDataStoreResource(DataStoreResource):
    """The real resource, except the store commits during the run (shared across steps)."""

    stores: ClassVar[dict[str, DataStore]] = {}
    race_id: str = "default"

    def store(self) -> DataStore:
        return self.stores[self.race_id]


def test_commit_landing_mid_run_is_not_read_and_gets_its_own_run(
    churn: ProjectConfig, instance: dg.DagsterInstance, store: LocalDataStore
) -> None:
    pinned = commit_frame(store, churn, clean_frame(seed=1), "pinned")
    racing = CommitAfterFirstRead(LocalDataStore(platform_paths().data_store), churn, clean_frame(seed=2))
    RacingDataStoreResource.stores["mid-run"] = racing  # type: ignore[assignment]
    defs = build_defs([churn])
    (request,), cursor = sensor_run_requests(defs, instance, SENSOR, None)
    assert request.tags[tags.DATA_COMMIT] == pinned

    resources: Mapping[str, object] = {
        **default_resources(), "data_store": RacingDataStoreResource(race_id="mid-run")
    }
    racing_defs = dg.Definitions.merge(
        build_project_defs(churn, None), dg.Definitions(resources=dict(resources))
    )
    result = racing_defs.resolve_job_def("churn_ci").execute_in_process(
        instance=instance, tags=dict(request.tags), raise_on_error=False
    )
    assert result.success
    assert racing.landed is not None and racing.landed != pinned
    assert store.branch_head(churn.dataset.repository, "main") == racing.landed  # it did land

    events = result.get_asset_materialization_events()
    assert {e.asset_key.path[-1] for e in events} >= {
        "training_data", "validation_report", "drift_report", "candidate_model", "evaluation"
    }
    for e in events:
        mat = e.event_specific_data.materialization
        if "data_commit" in mat.metadata:
            assert mat.metadata["data_commit"].value == pinned, e.asset_key
    for name in ("training_data", "validation_report", "drift_report"):
        mat = instance.get_latest_materialization_event(dg.AssetKey(["churn", name])).asset_materialization
        assert mat.tags["dagster/data_version"] == pinned, name

    (next_request,), _ = sensor_run_requests(defs, instance, SENSOR, cursor)
    assert next_request.tags[tags.DATA_COMMIT] == racing.landed
    assert next_request.run_key == racing.landed
