"""Pieces every router shares: problem responses, bounded SDP bodies, Link headers."""

from __future__ import annotations

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse, Response

from ..config import STREAM_NAME_RE, IceServer
from ..sfu.sdp import MAX_SDP_BYTES

SDP = "application/sdp"
SDPFRAG = "application/trickle-ice-sdpfrag"


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
    if not STREAM_NAME_RE.match(stream):
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
