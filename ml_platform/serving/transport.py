"""A lean HTTP/1.1 keep-alive transport for the router's httpx.AsyncClient.

httpx's default stack (httpcore + h11 + anyio) costs ~1.5 ms of CPU per proxied request here,
more than the model itself; this transport does the same job for loopback/cluster upstreams in
a fraction of that, behind the same httpx.AsyncClient API. Scope: plain http://, request bodies
already in memory, Content-Length or chunked responses. Anything else is refused loudly.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

import httpx

_Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]
_MAX_HEAD = 64 * 1024


class PooledHTTP11Transport(httpx.AsyncBaseTransport):
    """Keeps up to ``max_idle_per_host`` idle connections per upstream and reuses them."""

    def __init__(self, *, max_idle_per_host: int = 64, connect_timeout: float = 2.0) -> None:
        self._idle: defaultdict[tuple[str, int], list[_Conn]] = defaultdict(list)
        self._max_idle = max_idle_per_host
        self._connect_timeout = connect_timeout

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme != "http":
            raise httpx.UnsupportedProtocol(f"only http:// upstreams, got {request.url}",
                                            request=request)
        timeout = request.extensions.get("timeout", {}).get("read") or 30.0
        key = (request.url.host, request.url.port or 80)
        raw = _serialize(request, await request.aread())
        reused = bool(self._idle[key])
        try:
            return await self._attempt(key, raw, request, timeout)
        except httpx.RemoteProtocolError:
            if not reused:
                raise
            # an idle keep-alive connection the upstream had already closed: one fresh retry,
            # as httpcore and urllib3 do
            self._close_idle(key)
            return await self._attempt(key, raw, request, timeout)

    async def _attempt(self, key: tuple[str, int], raw: bytes, request: httpx.Request,
                       timeout: float) -> httpx.Response:
        try:
            async with asyncio.timeout(timeout):
                return await self._exchange(key, raw, request)
        except (ConnectionError, asyncio.IncompleteReadError, ValueError) as e:
            raise httpx.RemoteProtocolError(f"upstream {key[0]}:{key[1]} broke the exchange: "
                                            f"{e!r}", request=request) from e
        except TimeoutError as e:
            raise httpx.ReadTimeout(f"no answer from {request.url} within {timeout}s",
                                    request=request) from e

    async def _exchange(self, key: tuple[str, int], raw: bytes,
                        request: httpx.Request) -> httpx.Response:
        reader, writer = await self._connection(key, request)
        try:
            writer.write(raw)
            status, headers, body, keep = await _read_response(reader)
        except BaseException:
            writer.close()
            raise
        if keep and len(self._idle[key]) < self._max_idle:
            self._idle[key].append((reader, writer))
        else:
            writer.close()
        return httpx.Response(status, headers=headers, content=body, request=request)

    async def _connection(self, key: tuple[str, int], request: httpx.Request) -> _Conn:
        idle = self._idle[key]
        while idle:
            reader, writer = idle.pop()
            if not reader.at_eof() and not writer.is_closing():
                return reader, writer
            writer.close()
        try:
            async with asyncio.timeout(self._connect_timeout):
                return await asyncio.open_connection(*key)
        except (OSError, TimeoutError) as e:
            raise httpx.ConnectError(f"cannot connect to {key[0]}:{key[1]}: {e!r}",
                                     request=request) from e

    def _close_idle(self, key: tuple[str, int]) -> None:
        for _, writer in self._idle.pop(key, []):
            writer.close()

    async def aclose(self) -> None:
        for key in list(self._idle):
            self._close_idle(key)


def _serialize(request: httpx.Request, body: bytes) -> bytes:
    lines = [f"{request.method} {request.url.raw_path.decode('ascii')} HTTP/1.1"]
    for name, value in request.headers.raw:
        if name.lower() not in (b"content-length", b"transfer-encoding", b"connection"):
            lines.append(f"{name.decode('latin-1')}: {value.decode('latin-1')}")
    lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _read_response(reader: asyncio.StreamReader
                         ) -> tuple[int, list[tuple[str, str]], bytes, bool]:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError as e:
        raise httpx.RemoteProtocolError(f"response head over {_MAX_HEAD} bytes") from e
    status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise httpx.RemoteProtocolError(f"not an HTTP/1.x response: {status_line[:80]!r}")
    headers = [(k.strip(), v.strip()) for k, _, v in (h.partition(":") for h in header_lines)]
    lower = {k.lower(): v.lower() for k, v in headers}
    keep = lower.get("connection") != "close" and parts[0] == "HTTP/1.1"
    if lower.get("transfer-encoding") == "chunked":
        body = await _read_chunked(reader)
    elif "content-length" in lower:
        body = await reader.readexactly(int(lower["content-length"]))
    else:  # no framing: the body ends when the upstream closes
        body, keep = await reader.read(), False
    headers = [(k, v) for k, v in headers
               if k.lower() not in ("transfer-encoding", "content-length")]
    return int(parts[1]), headers, body, keep


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")  # no trailers expected: the final empty line
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)
