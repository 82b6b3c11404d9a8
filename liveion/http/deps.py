"""Access to the per-application objects from a request, and the auth dependencies.

Routers protect a route with ``dependencies=[Depends(require(Mode.ADMIN))]`` (or take the
:class:`~liveion.auth.Claims` as a parameter). The stream a route is about is its
``{stream}`` path parameter; a route without one needs an all-streams (``*``) credential.
OPTIONS routes carry no dependency: preflights never send credentials (W19).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyQuery, HTTPAuthorizationCredentials, HTTPBearer

from ..auth import Authenticator, AuthError, Claims, MissingToken, Mode
from ..config import Settings
from ..sfu.manager import StreamManager
from ..sfu.stream import Role
from .common import Problem

REALM = 'Bearer realm="liveion"'

Dependency = Callable[..., Awaitable[Claims]]

_BEARER = HTTPBearer(
    scheme_name="bearer", bearerFormat="JWT", auto_error=False,
    description="A token from `[auth] tokens`, or a JWT signed with `[auth] secret` "
                "(liveman's `POST /api/token` mints them). Only checked when auth is on.")
_QUERY_TOKEN = APIKeyQuery(
    name="token", scheme_name="token", auto_error=False,
    description="The same token as `?token=`, for players that cannot set headers.")


async def credentials(
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)],
    token: Annotated[str | None, Security(_QUERY_TOKEN)],
) -> None:
    """Declares, for the OpenAPI document, the credentials a route takes; `authenticated`
    reads and checks them itself (this never refuses anything)."""
    del bearer, token


Credentials = Annotated[None, Depends(credentials)]


def manager_of(request: Request) -> StreamManager:
    manager: StreamManager = request.app.state.manager
    return manager


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def authenticator_of(request: Request) -> Authenticator:
    """The node's authenticator, built from ``[auth]`` on first use."""
    state = request.app.state
    found: Authenticator | None = getattr(state, "authenticator", None)
    if found is None:
        auth = settings_of(request).auth
        found = state.authenticator = Authenticator(auth.secret, auth.tokens)
    return found


def bearer_token(request: Request) -> str | None:
    """``Authorization: Bearer <token>`` (RFC 6750 §2.1), else ``?token=`` (§2.3) for
    players that cannot set headers."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise AuthError("use the Bearer authorization scheme")
        return value.strip()
    return request.query_params.get("token")


async def authenticated(request: Request, _: Credentials = None) -> Claims:
    """Any valid credential (or none when auth is off); 401 otherwise."""
    auth = authenticator_of(request)
    if not auth.enabled:
        return auth.authenticate(None, 0)
    try:
        return auth.authenticate(bearer_token(request), time.time())
    except AuthError as exc:
        description = str(exc).replace('"', "'")
        challenge = REALM if isinstance(exc, MissingToken) else (
            f'{REALM}, error="invalid_token", error_description="{description}"')
        raise Problem(401, str(exc), headers={"WWW-Authenticate": challenge}) from None


def forbidden(detail: str) -> Problem:
    return Problem(403, detail,
                   headers={"WWW-Authenticate": f'{REALM}, error="insufficient_scope"'})


def _describe(mode: Mode) -> str:
    names = [m.name.lower() for m in Mode if m in mode and m.name]
    return " and ".join(names) if names else "access"


def require(mode: Mode) -> Dependency:
    """A route dependency: the request must carry a token allowing ``mode`` on the stream
    named by the route's ``{stream}`` parameter (on every stream when the route has none).
    ``Mode(0)`` asks only that the token covers the stream."""

    async def check(request: Request, _: Credentials = None) -> Claims:
        claims = await authenticated(request)
        stream = request.path_params.get("stream")
        if not claims.allows(mode, stream):
            where = f"stream '{stream}'" if stream is not None else "every stream"
            raise forbidden(f"this token does not grant {_describe(mode)} on {where}")
        return claims

    return check


def require_session() -> Dependency:
    """For ``/session/{stream}/{session_id}``: admin on the stream may act on any of its
    sessions; otherwise a token for the stream may act on a publisher session when it
    grants publish, and on a subscriber session when it grants subscribe (Live777 gives
    stream-scoped tokens no access to their own sessions at all)."""

    async def check(request: Request, _: Credentials = None) -> Claims:
        claims = await authenticated(request)
        stream = request.path_params.get("stream")
        if not claims.scoped_to(stream):
            raise forbidden(f"this token is not for stream '{stream}'")
        if claims.allows(Mode.ADMIN, stream):
            return claims
        session = manager_of(request).session(str(stream),
                                              str(request.path_params.get("session_id")))
        need = Mode.PUBLISH if session.role is Role.PUBLISH else Mode.SUBSCRIBE
        if not claims.allows(need, stream):
            raise forbidden(f"a {session.role.value} session needs a token granting "
                            f"{_describe(need)} or admin")
        return claims

    return check
