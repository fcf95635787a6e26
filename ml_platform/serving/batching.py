"""Opportunistic micro-batching of concurrent predict calls.

A single-row sklearn predict costs about the same as a 32-row one, so requests that arrive while
the model is busy are merged into the next call. Nothing waits on a timer: an idle server
predicts a lone request at once, which keeps p50 latency where it was.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ml_platform.serving.model import PredictFn, Predictions
from ml_platform.serving.schema import InputSchema, to_frame


@dataclass
class _Job:
    columns: dict[str, list[Any]]
    rows: int
    future: asyncio.Future[Predictions] = field(repr=False)


class MicroBatcher:
    """Runs ``predict`` on merged batches in one worker thread, off the event loop."""

    def __init__(self, predict: PredictFn, schema: InputSchema, *, max_rows: int = 256):
        self._predict = predict
        self._schema = schema
        self._max_rows = max_rows
        self._pending: list[_Job] = []
        self._draining = False
        # one thread: the model is not assumed thread-safe, and the GIL leaves no gain from more
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")

    async def predict(self, columns: dict[str, list[Any]], rows: int) -> Predictions:
        loop = asyncio.get_running_loop()
        job = _Job(columns, rows, loop.create_future())
        self._pending.append(job)
        if not self._draining:
            self._draining = True
            loop.create_task(self._drain())
        return await job.future

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch = self._take()
                results = await loop.run_in_executor(self._executor, self._run, batch)
                for job, result in zip(batch, results, strict=True):
                    if job.future.done():  # the client went away
                        continue
                    if isinstance(result, BaseException):
                        job.future.set_exception(result)
                    else:
                        job.future.set_result(result)
        finally:
            self._draining = False

    def _take(self) -> list[_Job]:
        batch: list[_Job] = []
        rows = 0
        while self._pending and (not batch or rows + self._pending[0].rows <= self._max_rows):
            job = self._pending.pop(0)
            batch.append(job)
            rows += job.rows
        return batch

    def _run(self, batch: list[_Job]) -> list[Predictions | Exception]:
        if len(batch) == 1:
            return [self._one(batch[0])]
        merged = {c: [v for job in batch for v in job.columns[c]] for c in self._schema.names}
        try:
            labels, scores = self._predict(to_frame(self._schema, merged))
        except Exception:  # isolate the request that broke the batch, below
            return [self._one(job) for job in batch]
        out: list[Predictions | Exception] = []
        start = 0
        for job in batch:
            end = start + job.rows
            out.append((labels[start:end], None if scores is None else scores[start:end]))
            start = end
        return out

    def _one(self, job: _Job) -> Predictions | Exception:
        try:
            return self._predict(to_frame(self._schema, job.columns))
        except Exception as e:  # handed to the awaiting request, which maps it to a status
            return e
