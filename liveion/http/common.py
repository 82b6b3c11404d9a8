"""Pieces every router shares: problem responses, bounded SDP and JSON bodies, Link headers."""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse, Response

from ..config import IceServer, is_stream_name
from ..sfu.sdp import MAX_SDP_BYTES

SDP = "application/sdp"
SDPFRAG = "application/trickle-ice-sdpfrag"
JSON = "application/json"
PROBLEM = "application/problem+json"

MAX_JSON_BYTES = 64 * 1024
"""What a JSON route reads unless it says otherwise (413 beyond)."""
MAX_JSON_DEPTH = 32
"""How deeply a JSON body may nest arrays and objects (400 beyond): `json.loads` recurses,
and 2000 levels raised RecursionError, a 500."""


class Problem(HTTPException):
    """A client error answered as RFC 9457 problem+json (W2)."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status, detail=detail, headers=headers)


def problem_response(status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(
        {"type": "about:blank", "status": status, "detail": detail},
        status_code=status,
        media_type="application/problem+json",
        headers=headers,
    )


def check_stream_name(stream: str) -> None:
    if not is_stream_name(stream):
        raise Problem(400, "stream names are 1-128 characters from A-Z a-z 0-9 _ . ~ -")


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_bounded_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes (413) without holding them:
    checked before reading when Content-Length is given, and while reading otherwise."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise Problem(413, f"body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Problem(413, f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_text_body(request: Request, media_type: str, limit: int = MAX_SDP_BYTES) -> str:
    """The request body as text, refusing a wrong type (415) or an oversized body (413).

    The size is checked before reading when Content-Length is given, and while reading
    otherwise, so a huge body is never held in memory.
    """
    if _media_type(request) != media_type:
        raise Problem(415, f"Content-Type must be {media_type}",
                      headers={"Accept-Post": media_type} if media_type == SDP else None)
    body = await read_bounded_body(request, limit)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise Problem(400, "body is not UTF-8 text") from None


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKETS_ONLY = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth_within(body: bytes, limit: int) -> bool:
    """Whether the arrays and objects of `body` nest at most `limit` deep, found without
    parsing (so without recursion): strings removed, then innermost bracket pairs peeled
    off once per level. In unbalanced text the brackets still open count as well: the
    parser would go that deep before it found the text is not JSON."""
    brackets = _JSON_STRING.sub(b"", body).translate(_BRACKETS_ONLY, _NOT_BRACKETS)
    peeled = 0
    while brackets and peeled < limit:
        inner = brackets.replace(b"[]", b"")
        if len(inner) == len(brackets):
            return peeled + brackets.count(b"[") <= limit
        brackets = inner
        peeled += 1
    return not brackets


def parse_json(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """A JSON document, or Problem(400) saying why it is not one we take."""
    if not json_depth_within(body, max_depth):
        raise Problem(400, f"the body is JSON nested more than {max_depth} levels deep")
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        raise Problem(400, "the body is not UTF-8 JSON") from None
    except ValueError as exc:
        raise Problem(400, f"the body is not JSON: {exc}") from None
    except RecursionError:  # not reached within MAX_JSON_DEPTH; kept as the last guard
        raise Problem(400, "the body is JSON nested too deeply") from None


async def read_json(request: Request, limit: int = MAX_JSON_BYTES) -> Any:
    """The one reader for JSON request bodies: at most `limit` bytes (413 beyond, never
    held), nested at most MAX_JSON_DEPTH deep, valid JSON (400 otherwise)."""
    return parse_json(await read_bounded_body(request, limit))


async def read_json_object(request: Request, limit: int = MAX_JSON_BYTES, *,
                           optional: bool = False) -> dict[str, Any]:
    """A JSON object body (`read_json`'s bounds); with `optional`, an empty body and
    `null` are an empty object."""
    body = await read_bounded_body(request, limit)
    if optional and not body.strip():
        return {}
    data = parse_json(body)
    if optional and data is None:
        return {}
    if not isinstance(data, dict):
        raise Problem(400, "the body must be a JSON object")
    return data


def ice_server_links(servers: list[IceServer]) -> list[str]:
    """One `Link: <url>; rel="ice-server"` value per configured ICE URL (W14)."""
    links = []
    for server in servers:
        for url in server.urls:
            link = f'<{url}>; rel="ice-server"'
            if server.username:
                link += (f'; username="{server.username}"; credential="{server.credential}"'
                         f'; credential-type="{server.credential_type}"')
            links.append(link)
    return links
