"""liveman's kept-alive HTTP/1.1 client against real sockets: raw asyncio servers that
answer the ways a node (uvicorn) or a broken peer can."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from liveman import httpclient

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:]
                                                    if line)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return head[0], headers, body


async def _serve(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


def test_keeps_one_connection_alive_and_passes_headers_and_body() -> None:
    async def run() -> None:
        connections = 0
        seen: list[tuple[str, dict[str, str], bytes]] = []

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            while True:
                try:
                    seen.append(await _read_request(reader))
                except asyncio.IncompleteReadError:
                    break
                writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\n"
                             b"Link: <stun:a>; rel=\"ice-server\"\r\n"
                             b"Link: <turn:b>; rel=\"ice-server\"\r\nETag: \"x\"\r\n\r\nv=0\r\n")
                await writer.drain()
            writer.close()

        server, url = await _serve(handler)
        client = httpclient.Client()
        for _ in range(3):
            answer = await client.request(url, "POST", "/whip/s?x=1", body=b"offer",
                                          headers=[("Content-Type", "application/sdp")],
                                          connect_timeout=1, timeout=2)
            assert answer.status == 201
            assert answer.body == b"v=0\r\n"
            assert answer.headers.get_list("LINK") == ['<stun:a>; rel="ice-server"',
                                                       '<turn:b>; rel="ice-server"']
            assert answer.headers.get("etag") == '"x"'
        assert connections == 1
        line, headers, body = seen[0]
        assert line == "POST /whip/s?x=1 HTTP/1.1"
        assert headers["content-type"] == "application/sdp"
        assert headers["host"] == url.removeprefix("http://")
        assert body == b"offer"
        await client.close()
        server.close()

    asyncio.run(run())


def test_chunked_and_close_delimited_bodies() -> None:
    async def run() -> None:
        async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await _read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
            await writer.drain()

        async def until_close(reader: asyncio.StreamReader,
                              writer: asyncio.StreamWriter) -> None:
            await _read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n[1,2]")
            await writer.drain()
            writer.close()

        client = httpclient.Client()
        server1, url1 = await _serve(chunked)
        server2, url2 = await _serve(until_close)
        assert (await client.request(url1, "GET", "/", connect_timeout=1,
                                     timeout=2)).body == b"abcde"
        assert (await client.request(url2, "GET", "/", connect_timeout=1,
                                     timeout=2)).body == b"[1,2]"
        await client.close()
        server1.close()
        server2.close()

    asyncio.run(run())


def test_a_kept_alive_connection_the_server_closed_is_replaced_silently() -> None:
    """uvicorn closes idle connections after 5 s: the next request must not fail."""
    async def run() -> None:
        connections = 0

        async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            await _read_request(reader)
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            await writer.drain()
            writer.close()  # without saying Connection: close

        server, url = await _serve(once)
        client = httpclient.Client()
        for _ in range(3):
            answer = await client.request(url, "DELETE", "/session/a/b", connect_timeout=1,
                                          timeout=2)
            assert answer.status == 204
            await asyncio.sleep(0.05)
        assert connections == 3
        await client.close()
        server.close()

    asyncio.run(run())


def test_failures_are_told_apart() -> None:
    async def run() -> None:
        async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await _read_request(reader)
            await asyncio.sleep(5)

        async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await _read_request(reader)
            writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
            await writer.drain()

        async def half(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await _read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
            await writer.drain()
            writer.close()

        client = httpclient.Client()
        hanging, hang_url = await _serve(hang)
        with pytest.raises(httpclient.AnswerTimeout):
            await client.request(hang_url, "GET", "/", connect_timeout=1, timeout=0.3)
        bad, bad_url = await _serve(garbage)
        with pytest.raises(httpclient.ProtocolFailure):
            await client.request(bad_url, "GET", "/", connect_timeout=1, timeout=2)
        cut, cut_url = await _serve(half)
        with pytest.raises(httpclient.ProtocolFailure):
            await client.request(cut_url, "GET", "/", connect_timeout=1, timeout=2)
        closed, closed_url = await _serve(hang)
        closed.close()
        await closed.wait_closed()
        with pytest.raises(httpclient.ConnectFailed):
            await client.request(closed_url, "GET", "/", connect_timeout=1, timeout=2)
        with pytest.raises(ValueError):
            await client.request(hang_url, "GET", "/x\r\nInjected: 1", connect_timeout=1,
                                 timeout=2)
        with pytest.raises(ValueError):
            await client.request(hang_url, "GET", "/", headers=[("X", "a\r\nb: c")],
                                 connect_timeout=1, timeout=2)
        await client.close()
        for server in (hanging, bad, cut):
            server.close()

    asyncio.run(run())


def test_url_prefix_and_default_ports() -> None:
    origin = httpclient.Origin.parse("https://node.example/base/")
    assert (origin.port, origin.prefix, origin.host_header) == (443, "/base", "node.example")
    assert httpclient.Origin.parse("http://[::1]:7777").host_header == "[::1]:7777"
    with pytest.raises(ValueError):
        httpclient.Origin.parse("ftp://x")
