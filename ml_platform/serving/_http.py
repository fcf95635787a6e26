"""Small HTTP helpers shared by the model server and the router."""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ml_platform.serving.schema import RequestRejected

REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    content = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
    return Response(content, status_code=status, media_type="application/json", headers=headers)


def error_response(err: RequestRejected) -> Response:
    return json_response(err.body(), status=err.status)


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``max_bytes``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(int(declared), max_bytes)
    chunks, size = [], 0
    # counted while streaming too: a chunked body declares no length up front
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(size, max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int, limit: int) -> RequestRejected:
    return RequestRejected(f"request body of {size}+ bytes is over the limit of {limit} bytes",
                           status=413, field=None)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def decode_json(body: bytes) -> Any:
    """Decode a JSON body; NaN/Infinity literals and absurd nesting are client errors (400)."""
    if not body:
        raise RequestRejected("the request body is empty; send a JSON object", status=400)
    try:
        return json.loads(body, parse_constant=_no_constants)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError too
        raise RequestRejected(f"the request body is not valid JSON: {e}", status=400) from e
