"""lakeFS pre-merge webhook: data may enter a protected branch only if the data gates pass.

lakeFS calls ``POST /hooks/lakefs/pre-merge`` (an action file, see
``deploy/lakefs/_lakefs_actions/pre_merge_data_gate.yaml``) with its hook payload::

    {"event_type": "pre-merge", "repository_id": "demo-data", "branch_id": "main",
     "source_ref": "<commit id of the source>", "commit_id": "<merge commit to be>", ...}

In a pre-merge record lakeFS sets ``branch_id`` to the *destination* branch and ``source_ref`` to
the source's commit id (treeverse/lakeFS ``pkg/graveler``: ``BranchID: destination, SourceRef:
fromCommit.CommitID``). The gates run on ``source_ref``; drift is measured against the
destination branch's head (:mod:`ml_platform.data_gate`).

Answers: 200 pass; 422 fail, with every failure case as JSON (lakeFS aborts the merge on any
non-2xx); 401 bad or missing token; 400 malformed payload naming the field; 404 unknown
repository or ref; 413 body too large; 503 data store unreachable. Bad input is never a 5xx.

The token travels in the ``X-ML-Platform-Token`` header (lakeFS action ``headers`` can read it
from ``{{ ENV.LAKEFSACTIONS_ML_PLATFORM_HOOK_TOKEN }}``) and is compared in constant time.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ml_platform.config import ProjectConfig
from ml_platform.data.store import DataStore
from ml_platform.data_gate import gate_ref
from ml_platform.errors import (
    BackendUnavailableError,
    ConfigError,
    DataStoreError,
    NotFoundError,
)

TOKEN_ENV = "ML_PLATFORM_HOOK_TOKEN"
TOKEN_HEADER = "x-ml-platform-token"
PRE_MERGE_PATH = "/hooks/lakefs/pre-merge"
MAX_BODY_BYTES = 1024 * 1024
_REQUIRED = ("event_type", "repository_id", "branch_id", "source_ref")
_OPTIONAL_STR = ("commit_id", "event_time", "action_name", "hook_id", "merge_source", "committer")
_EVENT = "pre-merge"

log = logging.getLogger(__name__)


class PayloadError(ValueError):
    """The request body is not a lakeFS pre-merge hook payload; names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def parse_payload(body: bytes) -> dict[str, str]:
    """The fields the gate uses, validated; raises :class:`PayloadError` naming the field."""
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PayloadError("body", f"the body is not JSON ({e})") from e
    if not isinstance(doc, dict):
        raise PayloadError("body", f"expected a JSON object, got {type(doc).__name__}")
    out: dict[str, str] = {}
    for name in _REQUIRED:
        value = doc.get(name)
        if not isinstance(value, str) or not value.strip():
            raise PayloadError(name, f"'{name}' is required and must be a non-empty string")
        out[name] = value.strip()
    for name in _OPTIONAL_STR:
        value = doc.get(name)
        if value is not None and not isinstance(value, str):
            raise PayloadError(name, f"'{name}' must be a string when present")
        if value:
            out[name] = value
    if out["event_type"] != _EVENT:
        raise PayloadError(
            "event_type", f"this endpoint gates '{_EVENT}' events, got '{out['event_type']}'"
        )
    return out


def token_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison (hmac.compare_digest) of the presented token."""
    if not given:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def create_app(
    projects: Sequence[ProjectConfig],
    store_factory: Callable[[], DataStore],
    token: str,
) -> Starlette:
    """The webhook app. ``token`` must be non-empty: an unprotected gate is refused."""
    if not token or not token.strip():
        raise ConfigError(
            f"the hook service needs a shared token; set {TOKEN_ENV} (and the same value in the "
            "lakeFS action's header)",
            field=TOKEN_ENV,
        )

    async def pre_merge(request: Request) -> JSONResponse:
        if not token_matches(request.headers.get(TOKEN_HEADER), token):
            return JSONResponse({"error": "missing or wrong token"}, status_code=401)
        body = await _body(request)
        if body is None:
            return _bad("body", f"the body is larger than {MAX_BODY_BYTES} bytes", 413)
        try:
            payload = parse_payload(body)
        except PayloadError as e:
            return _bad(e.field, str(e))
        return await run_in_threadpool(_gate, payload)

    def _gate(payload: dict[str, str]) -> JSONResponse:
        repository, destination = payload["repository_id"], payload["branch_id"]
        try:
            report = gate_ref(
                store_factory(),
                projects,
                repository,
                payload["source_ref"],
                reference_ref=destination,
            )
        except NotFoundError as e:
            return JSONResponse({"passed": False, "error": str(e)}, status_code=404)
        except BackendUnavailableError as e:
            return JSONResponse({"passed": False, "error": str(e)}, status_code=503)
        except (ConfigError, DataStoreError) as e:
            return JSONResponse({"passed": False, "error": str(e)}, status_code=400)
        doc: dict[str, Any] = {"event": payload, **report.to_dict()}
        log.info(
            "pre-merge %s -> %s@%s: %s",
            payload["source_ref"][:12],
            repository,
            destination,
            "pass" if report.passed else f"fail {report.failed_gates}",
        )
        return JSONResponse(doc, status_code=200 if report.passed else 422)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "projects": [p.name for p in projects]})

    return Starlette(
        routes=[
            Route(PRE_MERGE_PATH, pre_merge, methods=["POST"]),
            Route("/healthz", health, methods=["GET"]),
        ]
    )


async def _body(request: Request) -> bytes | None:
    """The body, or None when it exceeds MAX_BODY_BYTES (read no further than that)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _bad(field: str, message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"passed": False, "error": message, "field": field}, status_code=status)
