"""Dashboard accounts: argon2id password hashes and a limit on failed logins."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .config import Account

logger = logging.getLogger(__name__)

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


class Accounts:
    """Checks username + password; plaintext passwords from the config are hashed here
    and never kept."""

    def __init__(self, accounts: Sequence[Account]) -> None:
        self._hashes: dict[str, str] = {}
        for account in accounts:
            if account.password is not None:
                hashed = hash_password(account.password)
                logger.warning(
                    "[[auth.accounts]] %r has a plaintext password; replace it with\n"
                    "    password_hash = %r", account.username, hashed)
                self._hashes[account.username] = hashed
            else:
                assert account.password_hash is not None
                self._hashes[account.username] = account.password_hash
        # Unknown users are checked against this too, so timing does not tell who exists.
        self._decoy = hash_password("decoy password")

    def __bool__(self) -> bool:
        return bool(self._hashes)

    def verify(self, username: str, password: str) -> bool:
        hashed = self._hashes.get(username)
        try:
            return _hasher.verify(hashed or self._decoy, password) and hashed is not None
        except (VerificationError, InvalidHashError):
            return False


class LoginLimiter:
    """At most `max_failures` failed logins per client address within `window` seconds."""

    def __init__(self, max_failures: int, window: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window = window
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, address: str) -> int | None:
        """Seconds until ``address`` may try again, or None if it may now."""
        failures = self._failures.get(address)
        if not failures:
            return None
        now = self.clock()
        while failures and now - failures[0] >= self.window:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return None
        if len(failures) < self.max_failures:
            return None
        return max(1, int(failures[0] + self.window - now + 0.999))

    def failed(self, address: str) -> None:
        self._failures.setdefault(address, deque()).append(self.clock())
        if len(self._failures) > 100_000:  # bounded memory under a spray of addresses
            self._failures.pop(next(iter(self._failures)))

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)
