"""The router's HTTP/1.1 transport against tiny real socket servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import pytest

from ml_platform.serving.transport import PooledHTTP11Transport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(h.split(b":")[1]) for h in head.split(b"\r\n")
                  if h.lower().startswith(b"content-length"))
    return await reader.readexactly(length)


async def _with_server(handler: Handler, body: Callable[[str], Awaitable[None]]) -> None:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        await body(f"http://127.0.0.1:{port}")
    finally:
        server.close()


def test_keep_alive_reuses_one_connection() -> None:
    connections = 0

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while not reader.at_eof():
            try:
                body = await _read_request(reader)
            except asyncio.IncompleteReadError:
                break
            writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\nX-A: b\r\n\r\n%s"
                         % (len(body), body))

    async def body(url: str) -> None:
        async with httpx.AsyncClient(transport=PooledHTTP11Transport()) as c:
            for i in range(5):
                r = await c.post(f"{url}/p?q=1", content=b"hi%d" % i)
                assert (r.status_code, r.content, r.headers["x-a"]) == (201, b"hi%d" % i, "b")

    asyncio.run(_with_server(echo, body))
    assert connections == 1


def test_chunked_and_close_delimited_bodies() -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil-close")
        writer.close()

    async def body(url: str) -> None:
        async with httpx.AsyncClient(transport=PooledHTTP11Transport()) as c:
            assert (await c.post(url, content=b"x")).content == b"abcde"
            assert (await c.post(url, content=b"x")).content == b"until-close"

    asyncio.run(_with_server(chunked, body))


def test_a_stale_idle_connection_is_retried_once_on_a_fresh_one() -> None:
    async def one_shot(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()  # closes the keep-alive connection behind the client's back

    async def body(url: str) -> None:
        async with httpx.AsyncClient(transport=PooledHTTP11Transport()) as c:
            assert (await c.post(url, content=b"1")).content == b"ok"
            await asyncio.sleep(0.05)
            assert (await c.post(url, content=b"2")).content == b"ok"

    asyncio.run(_with_server(one_shot, body))


def test_refused_connection_and_timeout_are_httpx_errors() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    async def body(url: str) -> None:
        async with httpx.AsyncClient(transport=PooledHTTP11Transport(), timeout=0.2) as c:
            with pytest.raises(httpx.ReadTimeout):
                await c.post(url, content=b"x")
            with pytest.raises(httpx.ConnectError):
                await c.post("http://127.0.0.1:1/", content=b"x")
            with pytest.raises(httpx.UnsupportedProtocol):
                await c.post("https://127.0.0.1:1/", content=b"x")

    asyncio.run(_with_server(silent, body))


def test_garbage_response_is_a_protocol_error() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"SMTP ready\r\n\r\n")
        writer.close()

    async def body(url: str) -> None:
        async with httpx.AsyncClient(transport=PooledHTTP11Transport()) as c:
            with pytest.raises(httpx.RemoteProtocolError):
                await c.post(url, content=b"x")

    asyncio.run(_with_server(garbage, body))
