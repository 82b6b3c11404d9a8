"""liveman's OpenAPI additions (see `liveion.http.openapi` for what they complete).

WHIP, WHEP and session requests are relayed to a node: they answer what the node answers
(liveion's table), plus 502/504 when the node cannot be reached and 503 when no node can
take the request. Any route may answer 503 while the database is away.
"""

from __future__ import annotations

from fastapi import FastAPI

from liveapi.types import (
    LoginRequest,
    MediaControl,
    NodeHeartbeat,
    PresignRequest,
    RecordRequest,
    TokenRequest,
)
from liveion.http.common import JSON, SDP, SDPFRAG
from liveion.http.openapi import (
    DOCS_URL,
    OPENAPI_URL,
    ApiDoc,
    Body,
    created,
    object_responses,
    serve_api_doc,
)

__all__ = ["DOCS_URL", "LIVEMAN", "OPENAPI_URL", "document_api"]

_SESSION = "/session/{stream}/{session_id}"
_LAYER = _SESSION + "/layer"
_RELAYED = (502, 503, 504)
_OFFERS = ("/whip/{stream}", "/whep/{stream}", "/api/whip/{alias}/{stream}",
           "/api/whep/{alias}/{stream}")
_TEXT = {"text/plain": {"schema": {"type": "string"}}}
_HEALTH = {"application/json": {"schema": {"type": "object"}}}

LIVEMAN = ApiDoc(
    bodies={
        **{("POST", path): Body(SDP) for path in _OFFERS},
        ("PATCH", _SESSION): Body(SDPFRAG),
        ("POST", _SESSION): Body(JSON, MediaControl),
        ("POST", _LAYER): Body(JSON, {"type": "object"}, required=False),
        ("POST", "/api/nodes/heartbeat"): Body(JSON, NodeHeartbeat),
        ("POST", "/api/login"): Body(JSON, LoginRequest),
        ("POST", "/api/token"): Body(JSON, TokenRequest),
        ("POST", "/api/record/{stream}"): Body(JSON, RecordRequest, required=False),
        ("POST", "/api/storage/presign"): Body(JSON, PresignRequest),
    },
    errors={
        **{("POST", path): (409, 422, *_RELAYED) for path in _OFFERS},
        ("PATCH", _SESSION): (412, 422, 428, *_RELAYED),
        ("POST", _SESSION): (405, 409, 422, *_RELAYED),
        ("DELETE", _SESSION): _RELAYED,
        ("GET", _LAYER): (405, 409, 422, *_RELAYED),
        ("POST", _LAYER): (405, 409, 415, 422, *_RELAYED),
        ("DELETE", _LAYER): (405, 409, 422, *_RELAYED),
        ("GET", "/api/streams/"): _RELAYED,
        ("GET", "/api/streams/{stream}"): _RELAYED,
        ("POST", "/api/streams/{stream}"): (409, *_RELAYED),
        ("DELETE", "/api/streams/{stream}"): (409, *_RELAYED),
        ("POST", "/api/login"): (401, 429),
        ("POST", "/api/token"): (409,),
        ("POST", "/api/record/{stream}"): (409, *_RELAYED),
        ("GET", "/api/record/{stream}"): _RELAYED,
        ("DELETE", "/api/record/{stream}"): _RELAYED,
        ("GET", "/api/record/object/{path}"): (416,),
        ("POST", "/api/storage/presign"): (501,),
    },
    responses={
        **{("POST", path): {"201": created("The node's SDP answer")} for path in _OFFERS},
        ("PATCH", _SESSION): {"204": {"description": "Candidates added"}},
        ("DELETE", _SESSION): {"200": {"description": "The session ended"}},
        ("POST", _SESSION): {"204": {"description": "Done"}},
        ("GET", "/metrics"): {"200": {"description": "Prometheus metrics", "content": _TEXT}},
        ("GET", "/readyz"): {"200": {"description": "Ready", "content": _HEALTH},
                             "503": {"description": "The database is away",
                                     "content": _HEALTH}},
        ("GET", "/api/record/object/{path}"): {
            **object_responses(),
            "307": {"description": "A presigned storage URL (`[playback] signed_redirect`)"}},
        ("GET", "/api/storage/ping"): {
            "200": {"description": "Storage answers", "content": _TEXT},
            "503": {"description": "Storage does not answer: why", "content": _TEXT}},
    },
    every=(503,),
)


def document_api(app: FastAPI) -> None:
    """Serve liveman's complete OpenAPI document (and Swagger UI) on `app`."""
    serve_api_doc(app, LIVEMAN)
