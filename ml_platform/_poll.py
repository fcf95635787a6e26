"""Bounded HTTP polling with an injectable clock and sleeper (tests run it without real waits)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

Clock = Callable[[], float]
Sleeper = Callable[[float], None]


@dataclass(frozen=True)
class PollResult:
    ok: bool
    attempts: int
    waited: float
    last: str  # the last status or transport error seen, for the error message


def wait_for_http(
    url: str,
    *,
    timeout: float,
    interval: float = 0.25,
    alive: Callable[[], str | None] = lambda: None,
    clock: Clock = time.monotonic,
    sleeper: Sleeper = time.sleep,
    client: httpx.Client | None = None,
) -> PollResult:
    """GET ``url`` until it answers 200 or ``timeout`` seconds pass.

    ``alive`` is asked before every attempt and returns a reason when the thing being waited on
    is gone (process exited, container stopped): waiting on is then pointless.
    """
    http = client or httpx.Client(timeout=2.0)
    start, attempts, last = clock(), 0, "no attempt made"
    try:
        while True:
            gone = alive()
            if gone is not None:
                return PollResult(False, attempts, clock() - start, gone)
            attempts += 1
            try:
                status = http.get(url).status_code
                if status == 200:
                    return PollResult(True, attempts, clock() - start, "200")
                last = f"HTTP {status}"
            except httpx.TransportError as e:
                last = f"{type(e).__name__}: {e}"
            if clock() - start >= timeout:
                return PollResult(False, attempts, clock() - start, last)
            sleeper(interval)
    finally:
        if client is None:
            http.close()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the caller binds it soon after)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
