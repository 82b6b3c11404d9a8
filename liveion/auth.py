"""Who may do what: static bearer tokens and HS256 JWTs with Live777's claims (sans-IO).

A token is either one of the configured static tokens (a superuser) or a JWT signed with
the configured secret, carrying Live777's claims::

    {"id": "<stream>" | "*", "exp": <unix seconds>, "mode": <bits>}

where ``mode`` is a Unix-style bitmask: 4 = subscribe (WHEP), 2 = publish (WHIP),
1 = admin. Only HS256 is accepted (never ``none``), ``exp`` is required and given 60 s of
leeway like Live777, and every secret comparison is constant-time.

Authentication is on whenever a secret or at least one static token is configured (Live777
turns it on only for static tokens, so a lone secret silently leaves the API open).

Nothing here does I/O or reads the clock: callers pass ``now``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntFlag
from typing import Any

__all__ = ["ALL_STREAMS", "AuthError", "Authenticator", "Claims", "MissingToken", "Mode", "decode",
           "fingerprint", "mint"]

ALL_STREAMS = "*"
LEEWAY_SECONDS = 60
MAX_TOKEN_LENGTH = 8192
"""Longer credentials are refused before any decoding work."""

_B64URL = re.compile(r"[A-Za-z0-9_-]*")


class Mode(IntFlag):
    """Live777's permission bits in a JWT's ``mode`` claim."""

    ADMIN = 1
    PUBLISH = 2
    SUBSCRIBE = 4


FULL = Mode.ADMIN | Mode.PUBLISH | Mode.SUBSCRIBE


class AuthError(Exception):
    """The credential is missing, malformed, forged or expired; ``str(err)`` says which."""


class MissingToken(AuthError):
    """No credential was given at all."""


@dataclass(frozen=True, slots=True)
class Claims:
    """What one request's credential allows."""

    id: str
    """The stream the credential is for, or ``*`` for every stream."""
    mode: Mode
    exp: int | None = None
    superuser: bool = False
    """A static token, or authentication switched off."""
    credential: str = ""
    """A fingerprint of the credential (not the credential): tells whether two requests
    came with the same token. Empty when authentication is off."""

    def scoped_to(self, stream: str | None) -> bool:
        """The credential covers ``stream`` (``None``: a request about no one stream, which
        needs an all-streams credential)."""
        if self.superuser or self.id == ALL_STREAMS:
            return True
        return stream is not None and hmac.compare_digest(self.id.encode(), stream.encode())

    def allows(self, mode: Mode, stream: str | None) -> bool:
        """Every bit of ``mode`` on ``stream``; ``Mode(0)`` asks only for the scope."""
        if self.superuser:
            return True
        return self.scoped_to(stream) and (self.mode & mode) == mode


SUPERUSER = Claims(ALL_STREAMS, FULL, superuser=True)


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise AuthError("token is not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise AuthError("token is not base64url") from None


def _json_object(part: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(_b64decode(part))
    except (UnicodeDecodeError, ValueError):
        raise AuthError(f"token {what} is not JSON") from None
    if not isinstance(value, dict):
        raise AuthError(f"token {what} is not a JSON object")
    return value


def _sign(secret: bytes, signing_input: bytes) -> bytes:
    return hmac.new(secret, signing_input, hashlib.sha256).digest()


def mint(secret: str, stream: str, mode: Mode | int, *, exp: int) -> str:
    """An HS256 JWT for ``stream`` (or ``*``) with ``mode`` bits, valid until ``exp``."""
    if not secret:
        raise ValueError("an empty secret cannot sign tokens")
    header = _b64encode(json.dumps({"typ": "JWT", "alg": "HS256"},
                                   separators=(",", ":")).encode())
    payload = _b64encode(json.dumps({"id": stream, "exp": int(exp), "mode": int(mode)},
                                    separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}"
    signature = _b64encode(_sign(secret.encode(), signing_input.encode()))
    return f"{signing_input}.{signature}"


def decode(token: str, secret: str, now: float, leeway: int = LEEWAY_SECONDS) -> Claims:
    """Verify an HS256 JWT and return its claims; :class:`AuthError` says what is wrong."""
    if not secret:
        raise AuthError("signed tokens are not accepted: no secret is configured")
    parts = token.split(".")
    if len(parts) != 3:
        raise AuthError("token is neither a configured token nor a JWT")
    header = _json_object(parts[0], "header")
    # The algorithm is fixed by us, never chosen by the token: "none", RS256 with the
    # secret as a public key, and the like are all refused.
    if header.get("alg") != "HS256":
        raise AuthError(f"token algorithm {str(header.get('alg'))[:20]!r} is not HS256")
    expected = _sign(secret.encode(), f"{parts[0]}.{parts[1]}".encode())
    if not hmac.compare_digest(expected, _b64decode(parts[2])):
        raise AuthError("token signature is invalid")
    payload = _json_object(parts[1], "payload")
    exp, stream, mode = payload.get("exp"), payload.get("id"), payload.get("mode")
    if not isinstance(exp, int | float) or isinstance(exp, bool) or not math.isfinite(exp):
        raise AuthError("token has no numeric exp claim")
    if now > exp + leeway:
        raise AuthError("token has expired")
    if not isinstance(stream, str) or not stream:
        raise AuthError("token has no id claim (a stream name or \"*\")")
    if not isinstance(mode, int) or isinstance(mode, bool) or not 0 <= mode <= 255:
        raise AuthError("token mode claim is not a number from 0 to 255")
    return Claims(stream, Mode(mode & int(FULL)), int(exp), False, fingerprint(token))


def fingerprint(token: str) -> str:
    """A short, non-reversible name for a credential (which session a token opened)."""
    return hashlib.sha256(token.encode()).hexdigest()[:32]


class Authenticator:
    """The node's credentials: static tokens and the JWT secret from ``[auth]``."""

    def __init__(self, secret: str = "", tokens: Sequence[str] = (),
                 leeway: int = LEEWAY_SECONDS) -> None:
        self._secret = secret
        self._tokens = [t.encode() for t in tokens if t]
        self._leeway = leeway

    @property
    def enabled(self) -> bool:
        return bool(self._secret or self._tokens)

    def authenticate(self, token: str | None, now: float) -> Claims:
        """The claims of ``token``; :class:`AuthError` when it is missing or not valid."""
        if not self.enabled:
            return SUPERUSER
        if not token:
            raise MissingToken("a bearer token is required")
        if len(token) > MAX_TOKEN_LENGTH:
            raise AuthError("token is too long")
        given = token.encode()
        matched = False
        for static in self._tokens:  # no early exit: timing does not tell which one matched
            matched |= hmac.compare_digest(static, given)
        if matched:
            return Claims(ALL_STREAMS, FULL, None, True, fingerprint(token))
        if not self._secret:
            raise AuthError("token is not one of the configured tokens")
        return decode(token, self._secret, now, self._leeway)
