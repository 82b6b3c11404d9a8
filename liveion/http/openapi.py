"""The OpenAPI document, complete enough for clients and fuzzers (schemathesis) to use.

FastAPI derives paths, parameters, JSON answers and the bearer security scheme from the
routes (the `credentials` dependency of `deps.py`). What it cannot see is added here from
one table per server (`ApiDoc`): the bodies routes read themselves (SDP, trickle-ICE
fragments, JSON through the bounded reader), answers that are not JSON (SDP, media,
events), and the errors, every one an RFC 9457 `application/problem+json`:

- 400 where a request carries input (parameters or a body), 401 and 403 where it needs a
  credential, 404 where the path names something, 413 where it has a body, 415 where that
  body is not JSON, 429 when the node limits request rates, plus each route's own (`errors`).
- FastAPI's 422 "validation error" is dropped: validation errors are answered 400.

The document is served at `/openapi.json` with Swagger UI at `/docs`, and at the older
`/api/openapi.json` and `/api/docs` as well.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import TypeAdapter

from liveapi.types import CascadeRequest, MediaControl, RecordRefs, RecordRequest

from .common import JSON, PROBLEM, SDP, SDPFRAG

Op = tuple[str, str]
"""(METHOD, path template) of an operation."""

OPENAPI_URL = "/openapi.json"
DOCS_URL = "/docs"
LEGACY_OPENAPI_URL = "/api/openapi.json"
LEGACY_DOCS_URL = "/api/docs"

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; `detail` says what was wrong with the request.",
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "error": {"type": "string", "description": "Live777's field (liveman login/token)"},
    },
    "required": ["status", "detail"],
}

_ERROR_TEXT = {
    400: "Bad request: a malformed name, parameter, SDP or JSON body",
    401: "No credential, or one that is not valid (auth is on)",
    403: "The credential does not grant this on this stream",
    404: "No such stream, session or object",
    413: "The body is larger than this route takes",
    415: "Wrong Content-Type for this route",
    422: "A well-formed request the protocol or the node cannot take (the detail says why)",
    429: "Too many requests from this client",
    503: "Not available now (full, shutting down, storage or database away); see Retry-After",
}
_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"},
                                "description": "Seconds to wait before retrying"}}
_WWW_AUTHENTICATE = {"WWW-Authenticate": {"schema": {"type": "string"},
                                          "description": 'Bearer realm="liveion" ...'}}

_SDP_CONTENT = {SDP: {"schema": {"type": "string"}}}
_BINARY = {"schema": {"type": "string", "format": "binary"}}
_MEDIA_OBJECT = {"application/dash+xml": _BINARY, "video/mp4": _BINARY, "audio/mp4": _BINARY,
                 "video/webm": _BINARY, "application/octet-stream": _BINARY}
_NO_CONTENT = {"description": "Done, no body"}
_HEALTH = {"application/json": {"schema": {
    "type": "object", "properties": {"status": {"type": "string"},
                                     "reason": {"type": "string"}}}}}


@dataclass(frozen=True)
class Body:
    """A request body a route reads itself."""

    media_type: str
    schema: Any = None
    """A TypedDict (its JSON schema is derived), a JSON-schema dict, or None (a string)."""
    required: bool = True


@dataclass(frozen=True)
class ApiDoc:
    """What one server's document adds to FastAPI's."""

    bodies: Mapping[Op, Body] = field(default_factory=dict)
    errors: Mapping[Op, tuple[int, ...]] = field(default_factory=dict)
    """Errors an operation answers beyond the ones derived from its shape."""
    responses: Mapping[Op, dict[str, Any]] = field(default_factory=dict)
    """Responses (by status) that replace FastAPI's, for answers that are not JSON."""
    every: tuple[int, ...] = ()
    """Errors any operation of this server may answer."""


def created(description: str) -> dict[str, Any]:
    """A 201 with the SDP answer and the session's headers (WHIP/WHEP)."""
    return {"description": description, "content": _SDP_CONTENT, "headers": {
        "Location": {"schema": {"type": "string"}, "description": "The session resource"},
        "ETag": {"schema": {"type": "string"}, "description": "The session's strong ETag"},
        "Link": {"schema": {"type": "string"}, "description": "One per ICE server"},
    }}


def object_responses() -> dict[str, Any]:
    return {"200": {"description": "The object", "content": _MEDIA_OBJECT},
            "206": {"description": "The requested byte range", "content": _MEDIA_OBJECT}}


LIVEION = ApiDoc(
    bodies={
        ("POST", "/whip/{stream}"): Body(SDP),
        ("POST", "/whep/{stream}"): Body(SDP),
        ("PATCH", "/session/{stream}/{session_id}"): Body(SDPFRAG),
        ("POST", "/session/{stream}/{session_id}"): Body(JSON, MediaControl),
        ("POST", "/api/record/{stream}"): Body(JSON, RecordRequest, required=False),
        ("PATCH", "/api/recordings"): Body(JSON, RecordRefs),
        ("DELETE", "/api/recordings"): Body(JSON, RecordRefs),
        ("POST", "/api/cascade/{stream}"): Body(JSON, CascadeRequest),
    },
    errors={
        ("POST", "/whip/{stream}"): (409, 422, 503),
        ("POST", "/whep/{stream}"): (422, 503),
        ("PATCH", "/session/{stream}/{session_id}"): (412, 422, 428),
        ("POST", "/session/{stream}/{session_id}"): (405, 409, 422),
        ("GET", "/api/streams/{stream}/snapshot.jpg"): (503,),
        ("POST", "/api/streams/{stream}"): (409,),
        ("DELETE", "/api/streams/{stream}"): (409,),
        ("POST", "/api/record/{stream}"): (409, 503),
        ("GET", "/api/record/{stream}"): (503,),
        ("DELETE", "/api/record/{stream}"): (503,),
        ("GET", "/api/recordings"): (503,),
        ("PATCH", "/api/recordings"): (503,),
        ("DELETE", "/api/recordings"): (503,),
        ("GET", "/api/playback"): (503,),
        ("GET", "/api/playback/{stream}"): (503,),
        ("GET", "/api/record/object/{path}"): (416, 503),
        ("POST", "/api/cascade/{stream}"): (409, 502, 503),
    },
    responses={
        ("POST", "/whip/{stream}"): {"201": created("Publishing: the SDP answer")},
        ("POST", "/whep/{stream}"): {"201": created("Playing: the SDP answer")},
        ("HEAD", "/whep/{stream}"): {"200": {"description": "A WHEP endpoint"}},
        ("OPTIONS", "/whip/{stream}"): {"200": {"description": "Accept-Post and ICE servers"}},
        ("OPTIONS", "/whep/{stream}"): {"200": {"description": "Accept-Post and ICE servers"}},
        ("OPTIONS", "/session/{stream}/{session_id}"): {"200": {"description": "Allow"}},
        ("DELETE", "/session/{stream}/{session_id}"): {"200": _NO_CONTENT},
        ("DELETE", "/api/record/{stream}"): {"200": _NO_CONTENT},
        ("GET", "/api/record/object/{path}"): object_responses(),
        ("GET", "/api/sse/streams"): {"200": {"description": "Server-sent events", "content": {
            "text/event-stream": {"schema": {"type": "string"}}}}},
        ("GET", "/api/sse/events"): {"200": {"description": "Server-sent events", "content": {
            "text/event-stream": {"schema": {"type": "string"}}}}},
        ("GET", "/readyz"): {"200": {"description": "Ready", "content": _HEALTH},
                             "503": {"description": "Not ready, with the reason",
                                     "content": _HEALTH, "headers": _RETRY_AFTER}},
    },
)


def _schema_of(schema: Any, components: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema for `schema` (a TypedDict or a dict), its definitions moved into the
    document's components, and named types referenced from there."""
    if schema is None:
        return {"type": "string"}
    if isinstance(schema, dict):
        return schema
    found = TypeAdapter(schema).json_schema(ref_template="#/components/schemas/{model}")
    components.update(found.pop("$defs", {}))
    name = str(found.get("title") or getattr(schema, "__name__", "Body"))
    components.setdefault(name, found)
    return {"$ref": f"#/components/schemas/{name}"}


def _problem(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": _ERROR_TEXT.get(status, HTTPStatus(status).phrase),
        "content": {PROBLEM: {"schema": PROBLEM_REF}},
    }
    if status == 401:
        response["headers"] = _WWW_AUTHENTICATE
    elif status in (429, 503):
        response["headers"] = _RETRY_AFTER
    return response


def _is_validation_error(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref", "").endswith("/HTTPValidationError"))


def complete(schema: dict[str, Any], doc: ApiDoc, *, rate_limited: bool = False
             ) -> dict[str, Any]:
    """Add bodies, non-JSON answers, security-derived and documented errors (in place)."""
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            op = (method.upper(), path)
            body = doc.bodies.get(op)
            if body is not None:
                operation["requestBody"] = {
                    "required": body.required,
                    "content": {body.media_type: {"schema": _schema_of(body.schema, schemas)}},
                }
            responses: dict[str, Any] = operation.setdefault("responses", {})
            for status in [s for s, r in responses.items() if _is_validation_error(r)]:
                del responses[status]
            replaced = doc.responses.get(op, {})
            if replaced:
                for status in [s for s in responses if s.startswith("2") and s not in replaced]:
                    del responses[status]
                responses.update(replaced)
            codes = set(doc.every) | set(doc.errors.get(op, ()))
            if operation.get("parameters") or body is not None:
                codes.add(400)
            if operation.get("security"):
                codes |= {401, 403}
            if "{" in path:
                codes.add(404)
            if body is not None:
                codes.add(413)
                if body.media_type != JSON:
                    codes.add(415)
            if rate_limited:
                codes.add(429)
            for code in sorted(codes):
                declared = responses.get(str(code))
                # A route's own `responses={404: {}}` says that it happens, not its shape.
                responses[str(code)] = ({**_problem(code), **declared}
                                        if declared and "content" not in declared
                                        else declared or _problem(code))
    if "HTTPValidationError" not in str(schema.get("paths")):
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
    return schema


def serve_api_doc(app: FastAPI, doc: ApiDoc, *, rate_limited: bool = False) -> None:
    """Make `app.openapi()` the completed document, and serve it at the old paths too.

    Call right after creating the app (with `openapi_url=OPENAPI_URL`, `docs_url=DOCS_URL`),
    before any catch-all mount.
    """

    generate = app.openapi  # FastAPI's: builds the document once and keeps it

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(generate(), doc, rate_limited=rate_limited)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    async def legacy_openapi(request: Request) -> JSONResponse:
        return JSONResponse(app.openapi())

    async def legacy_docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(openapi_url=root + OPENAPI_URL, title=f"{app.title} API")

    endpoints: list[tuple[str, Callable[..., Any]]] = [
        (LEGACY_OPENAPI_URL, legacy_openapi), (LEGACY_DOCS_URL, legacy_docs)]
    for path, endpoint in endpoints:
        app.add_api_route(path, endpoint, methods=["GET"], include_in_schema=False)
