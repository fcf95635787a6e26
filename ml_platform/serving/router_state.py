"""Router state: variants (upstream URL + weight), its atomic persistence, and draining upstreams.

The persisted state is what an operator set; the in-memory pool adds what only a live process
has: in-flight counts, and upstreams that left the state but still serve requests they started.
"""

from __future__ import annotations

import bisect
import json
import os
import random
import re
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ml_platform.errors import DeploymentError
from ml_platform.serving.schema import RequestRejected

VARIANT_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")


@dataclass(frozen=True)
class VariantSpec:
    name: str
    url: str
    weight: int


@dataclass(frozen=True)
class RouterState:
    """Which variants exist and how traffic splits (blue/green is weights 100/0)."""

    variants: tuple[VariantSpec, ...]

    def __post_init__(self) -> None:
        names = [v.name for v in self.variants]
        if not names:
            raise RequestRejected("the router needs at least one variant", field="variants")
        for v in self.variants:
            _check_variant(v)
        if len(set(names)) != len(names):
            raise RequestRejected(f"variant names repeat: {names}", field="variants")
        if sum(v.weight for v in self.variants) <= 0:
            raise RequestRejected("at least one variant needs a weight above 0", field="weights")

    @property
    def weights(self) -> dict[str, int]:
        return {v.name: v.weight for v in self.variants}

    def with_weights(self, weights: dict[str, int]) -> RouterState:
        """New weights for existing variants; variants not named keep theirs."""
        known = {v.name for v in self.variants}
        for name in weights:
            if name not in known:
                raise RequestRejected(f"unknown variant '{name}'; known: {sorted(known)}",
                                      field=f"weights.{name}")
        return RouterState(tuple(replace(v, weight=weights.get(v.name, v.weight))
                                 for v in self.variants))

    def to_json(self) -> dict[str, Any]:
        return {"variants": {v.name: {"url": v.url, "weight": v.weight} for v in self.variants}}

    @classmethod
    def from_json(cls, data: Any) -> RouterState:
        if not isinstance(data, dict) or set(data) != {"variants"}:
            raise RequestRejected('expected {"variants": {name: {"url": ..., "weight": ...}}}',
                                  field="variants")
        variants = data["variants"]
        if not isinstance(variants, dict):
            raise RequestRejected("'variants' must be an object", field="variants")
        return cls(tuple(_variant_from_json(name, spec) for name, spec in variants.items()))


def _variant_from_json(name: Any, spec: Any) -> VariantSpec:
    if not isinstance(spec, dict) or set(spec) != {"url", "weight"}:
        raise RequestRejected(f"variant '{name}' must be {{\"url\": ..., \"weight\": ...}}",
                              field=f"variants.{name}")
    return VariantSpec(str(name), spec["url"], spec["weight"])


def _check_variant(v: VariantSpec) -> None:
    if not isinstance(v.name, str) or not VARIANT_NAME.fullmatch(v.name):
        raise RequestRejected(f"variant name '{v.name}' must match {VARIANT_NAME.pattern}",
                              field="variants")
    if not isinstance(v.url, str) or not re.fullmatch(r"https?://[^\s/]+(/\S*)?", v.url):
        raise RequestRejected(f"variant '{v.name}' url must be http(s)://host[:port]",
                              field=f"variants.{v.name}.url")
    if type(v.weight) is not int or not 0 <= v.weight <= 1_000_000:
        raise RequestRejected(f"variant '{v.name}' weight must be an integer >= 0",
                              field=f"weights.{v.name}")


class StateStore:
    """A JSON file written atomically (temp file + fsync + os.replace): a crash mid-write leaves
    the previous state, never a truncated one."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> RouterState | None:
        if not self.path.exists():
            return None
        try:
            return RouterState.from_json(json.loads(self.path.read_text(encoding="utf-8")))
        except (ValueError, RequestRejected) as e:
            raise DeploymentError(f"router state file '{self.path}' is invalid: {e}. Fix or "
                                  "delete it (the router then starts from its initial state)."
                                  ) from e

    def save(self, state: RouterState) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".router-state-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(state.to_json(), fh, indent=2, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except OSError as e:
            Path(tmp).unlink(missing_ok=True)
            raise DeploymentError(f"cannot write router state to '{self.path}': {e}") from e


class Upstream:
    """One live upstream. Requests hold a reference, so a state change never redirects them."""

    __slots__ = ("inflight", "name", "url")

    def __init__(self, name: str, url: str) -> None:
        self.name, self.url, self.inflight = name, url.rstrip("/"), 0


class UpstreamPool:
    """Weighted choice over active upstreams; removed ones drain until their in-flight is 0."""

    def __init__(self, state: RouterState, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()
        self.active: dict[str, Upstream] = {}
        self.draining: list[Upstream] = []
        self.state = state
        self.apply(state)

    def apply(self, state: RouterState) -> None:
        new: dict[str, Upstream] = {}
        for v in state.variants:
            old = self.active.get(v.name)
            new[v.name] = old if old is not None and old.url == v.url.rstrip("/") else Upstream(
                v.name, v.url)
        for name, old in self.active.items():
            if new.get(name) is not old and old.inflight > 0:
                self.draining.append(old)
        self.active, self.state = new, state
        live = [v for v in state.variants if v.weight > 0]
        self._names = [v.name for v in live]
        self._cumulative = [sum(v.weight for v in live[: i + 1]) for i in range(len(live))]

    def choose(self) -> Upstream:
        point = self._rng.random() * self._cumulative[-1]
        return self.active[self._names[bisect.bisect_right(self._cumulative, point)]]

    def find(self, name: str) -> Upstream | None:
        """The upstream a variant name points at now, or a draining one of that name."""
        if name in self.active:
            return self.active[name]
        return next((u for u in reversed(self.draining) if u.name == name), None)

    def acquire(self, upstream: Upstream) -> None:
        upstream.inflight += 1

    def release(self, upstream: Upstream) -> None:
        upstream.inflight -= 1
        if upstream.inflight == 0 and upstream in self.draining:
            self.draining.remove(upstream)  # drained: nothing refers to it any more
