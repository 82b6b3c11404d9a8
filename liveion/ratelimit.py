"""Per-client rate limit on requests that change state (POST, PATCH, DELETE).

`TokenBuckets` is the sans-IO core: one token bucket per client key, time passed in.
`RateLimitMiddleware` is the ASGI glue: keyed by the remote address (uvicorn already
replaces it with `X-Forwarded-For` from a trusted local proxy), it answers 429 with
`Retry-After` and an RFC 9457 problem body when a client's bucket is empty. Requests with
one of the static `[auth] tokens` (operators, liveman) are not limited: a liveman in front
of a node sends everyone's requests from one address.
"""

from __future__ import annotations

import hmac
import math
import time
from collections.abc import Callable, Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

from .http.common import problem_response

LIMITED_METHODS = frozenset({"POST", "PATCH", "DELETE"})
MAX_CLIENTS = 10_000


class TokenBuckets:
    """Token buckets keyed by client: ``rate`` tokens per second, at most ``burst`` saved.

    Memory stays bounded: when more than ``max_clients`` keys are held, buckets that have
    refilled completely (indistinguishable from a new client) are dropped, then the least
    recently used ones.
    """

    def __init__(self, rate: float, burst: int, max_clients: int = MAX_CLIENTS) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = float(burst)
        self.max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}
        """key -> (tokens, at); in least-recently-used order."""

    def take(self, key: str, now: float) -> float:
        """Spend one token for ``key``: 0.0 when allowed, else seconds until one is due."""
        tokens, at = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - at) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            wait = 0.0
        else:
            self._buckets[key] = (tokens, now)
            wait = (1.0 - tokens) / self.rate
        if len(self._buckets) > self.max_clients:
            self._evict(now)
        return wait

    def _evict(self, now: float) -> None:
        full_after = self.burst / self.rate
        for key, (_, at) in list(self._buckets.items()):
            if now - at >= full_after:
                del self._buckets[key]
        while len(self._buckets) > self.max_clients:
            del self._buckets[next(iter(self._buckets))]

    def __len__(self) -> int:
        return len(self._buckets)


class RateLimitMiddleware:
    """429 + Retry-After for a client that sends POST/PATCH/DELETE faster than allowed."""

    def __init__(self, app: ASGIApp, rate: float, burst: int,
                 exempt_tokens: Sequence[str] = (),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.buckets = TokenBuckets(rate, burst)
        self.clock = clock
        self._exempt = [b"bearer " + token.encode() for token in exempt_tokens if token]

    def _exempted(self, scope: Scope) -> bool:
        if not self._exempt:
            return False
        for name, value in scope["headers"]:
            if name == b"authorization":
                given = value.strip().lower()[:7] + value.strip()[7:]
                return any(hmac.compare_digest(given, token) for token in self._exempt)
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in LIMITED_METHODS \
                or self._exempted(scope):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        key = client[0] if client else ""
        wait = self.buckets.take(key, self.clock())
        if wait > 0:
            retry = max(1, math.ceil(wait))
            response = problem_response(
                429, f"too many requests from this address; retry in {retry} s",
                {"Retry-After": str(retry)})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
