"""MicroBatcher: concurrent calls are merged, answered separately, and failures stay isolated."""

from __future__ import annotations

import asyncio
import threading

import pandas as pd
import pytest

from ml_platform.serving.batching import MicroBatcher
from ml_platform.serving.model import Predictions
from ml_platform.serving.schema import ColumnSpec, InputSchema

SCHEMA = InputSchema((ColumnSpec("x", "double"),))


class SlowDouble:
    """predict = 2x; the first call blocks until released so later calls pile up behind it."""

    def __init__(self) -> None:
        self.batch_sizes: list[int] = []
        self.release = threading.Event()

    def __call__(self, frame: pd.DataFrame) -> Predictions:
        self.release.wait(timeout=5)
        self.batch_sizes.append(len(frame))
        if (frame["x"] < 0).any():
            raise ValueError("negative x")
        values = (frame["x"] * 2).tolist()
        return values, values


def test_calls_arriving_while_busy_share_one_predict() -> None:
    model = SlowDouble()

    async def run() -> list[Predictions]:
        batcher = MicroBatcher(model, SCHEMA)
        first = asyncio.create_task(batcher.predict({"x": [0.0]}, 1))
        await asyncio.sleep(0.05)  # the first call is now inside predict
        rest = [asyncio.create_task(batcher.predict({"x": [float(i)] * i}, i))
                for i in range(1, 6)]
        await asyncio.sleep(0.01)
        model.release.set()
        out = await asyncio.gather(first, *rest)
        batcher.close()
        return out

    results = asyncio.run(run())
    assert model.batch_sizes == [1, 15]
    assert [r[0] for r in results] == [[0.0]] + [[2.0 * i] * i for i in range(1, 6)]


def test_a_failing_request_does_not_fail_its_batch_mates() -> None:
    model = SlowDouble()
    model.release.set()

    async def run() -> list[Predictions | BaseException]:
        batcher = MicroBatcher(model, SCHEMA)
        calls = [batcher.predict({"x": [x]}, 1) for x in (1.0, -1.0, 3.0)]
        out = await asyncio.gather(*calls, return_exceptions=True)
        batcher.close()
        return out

    good, bad, other = asyncio.run(run())
    assert good == ([2.0], [2.0]) and other == ([6.0], [6.0])
    assert isinstance(bad, ValueError)


def test_batches_respect_max_rows() -> None:
    model = SlowDouble()

    async def run() -> None:
        batcher = MicroBatcher(model, SCHEMA, max_rows=4)
        first = asyncio.create_task(batcher.predict({"x": [1.0]}, 1))
        await asyncio.sleep(0.05)
        rest = [asyncio.create_task(batcher.predict({"x": [1.0] * 3}, 3)) for _ in range(3)]
        await asyncio.sleep(0.01)
        model.release.set()
        await asyncio.gather(first, *rest)
        batcher.close()

    asyncio.run(run())
    assert model.batch_sizes == [1, 3, 3, 3]


@pytest.mark.parametrize("rows", [1, 7])
def test_single_caller_is_predicted_at_once(rows: int) -> None:
    model = SlowDouble()
    model.release.set()

    async def run() -> Predictions:
        batcher = MicroBatcher(model, SCHEMA)
        out = await batcher.predict({"x": [1.0] * rows}, rows)
        batcher.close()
        return out

    assert asyncio.run(run())[0] == [2.0] * rows
