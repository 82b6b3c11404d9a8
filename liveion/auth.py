"""Who may do what: static bearer tokens and HS256 JWTs with Live777's claims (sans-IO)."""

from __future__ import annotations

from enum import IntFlag


class Mode(IntFlag):
    """Live777's permission bits in a JWT's ``mode`` claim."""

    ADMIN = 1
    PUBLISH = 2
    SUBSCRIBE = 4
