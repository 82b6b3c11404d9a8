"""Recording storage: an opendal operator built from ``[recorder.storage]``, behind a small
async wrapper whose every failure is one readable ``StorageError``.

Object paths are relative to the configured root, use forward slashes, and are checked by
``safe_path`` (which the HTTP layer uses too) so no request can step outside the root.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

import opendal

from .config import StorageConfig

# Generous enough for a slow link and a multi-megabyte segment; a hung connection must
# still fail in bounded time so the uploader can retry it.
CONTROL_TIMEOUT_S = 30.0
IO_TIMEOUT_S = 30.0

MAX_PATH_BYTES = 1024  # the S3 and OSS object-key limit


class StorageError(Exception):
    """A storage operation failed. ``str(error)`` says what, where and why, in one line.

    ``temporary`` is true when retrying may succeed (network error, timeout, 5xx);
    ``not_found`` is true when the object does not exist.
    """

    def __init__(self, message: str, *, temporary: bool = False, not_found: bool = False
                 ) -> None:
        super().__init__(message)
        self.temporary = temporary
        self.not_found = not_found


def safe_path(path: str) -> str:
    """Return ``path`` if it is a safe relative object path, else raise ValueError(reason).

    Refused: empty paths, a leading ``/``, a trailing ``/`` (that names a directory),
    backslashes, ``.`` or ``..`` segments, empty segments (``a//b``), control characters,
    and paths longer than 1024 bytes.
    """
    if not path:
        raise ValueError("path is empty")
    if path.startswith("/"):
        raise ValueError("path must be relative (no leading '/')")
    if path.endswith("/"):
        raise ValueError("path names a directory (trailing '/')")
    if "\\" in path:
        raise ValueError("path must use '/' separators (no backslashes)")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        raise ValueError("path contains control characters")
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise ValueError(f"path is longer than {MAX_PATH_BYTES} bytes")
    for segment in path.split("/"):
        if segment in (".", ".."):
            raise ValueError(f"path contains a {segment!r} segment")
        if not segment:
            raise ValueError("path contains an empty segment ('//')")
    return path


def content_type_for(path: str) -> str:
    """The Content-Type to store and serve an object with, from its name.

    Unlike Live777, audio segments (``a_seg_*``, ``a_init*``) are served as audio.
    """
    name = path.rsplit("/", 1)[-1].lower()
    if name.endswith(".mpd"):
        return "application/dash+xml"
    if name.endswith((".m4s", ".mp4")):
        return "audio/mp4" if name.startswith("a_") or "audio" in name else "video/mp4"
    if name.endswith(".json"):
        return "application/json"
    return "application/octet-stream"


_HEAD_RE = re.compile(r"^(\w+) \((\w+)\) at ([\w:]+)(?: => (.*))?$")
_SERVICE_ERROR_RE = re.compile(r'code: "([^"]*)", message: "([^"]*)"')


def describe_error(exc: BaseException) -> tuple[str, bool, bool]:
    """(one-line reason, temporary, not_found) from an opendal exception.

    opendal's messages are multi-line (kind, context, source, backtrace); logs and API
    answers need the kind, the service's own error code/message and the root cause.
    """
    text = str(exc).strip()
    lines = [line.strip() for line in text.splitlines()]
    kind = type(exc).__name__
    head = _HEAD_RE.match(lines[0]) if lines else None
    temporary = False
    parts: list[str] = []
    if head:
        kind, persistence, _op, detail = head.groups()
        temporary = persistence == "temporary"
        if detail:
            service = _SERVICE_ERROR_RE.search(detail)
            parts.append(f"{service.group(1)}: {service.group(2)}" if service else detail)
    elif lines:
        parts.append(lines[0])
    if "Source:" in lines:
        source = [line for line in lines[lines.index("Source:") + 1:] if line]
        if source:
            parts.append(source[0])
    hint = _HINTS.get(kind)
    reason = f"{kind}: " + ("; ".join(parts) if parts else "no detail")
    if hint:
        reason += f" ({hint})"
    return reason, temporary, kind == "NotFound"


_HINTS = {
    "PermissionDenied": "check the access key id, secret and token, and the bucket policy",
    "ConfigInvalid": "check [recorder.storage]",
}


def _error(action: str, exc: BaseException) -> StorageError:
    reason, temporary, not_found = describe_error(exc)
    return StorageError(f"{action} failed: {reason}", temporary=temporary, not_found=not_found)


def _flag(value: bool) -> str:
    return "true" if value else "false"  # opendal takes every option as a string


def operator_options(config: StorageConfig) -> dict[str, str]:
    """The opendal service options for a ``[recorder.storage]`` table.

    The keys match opendal's option names one to one except OSS ``region``: opendal signs
    OSS requests with V1 signatures, which carry no region (the endpoint names it), so
    ``region`` is accepted for Live777 compatibility and not passed on.
    """
    root = config.effective_root
    if config.type == "fs":
        return {"root": os.path.abspath(root)}  # immune to later chdir
    assert config.bucket is not None  # the config model requires it
    opts: dict[str, str] = {"bucket": config.bucket, "root": root}
    if config.endpoint:
        opts["endpoint"] = config.endpoint
    if config.type == "s3":
        region = config.region
        if region is None and not config.disable_config_load:
            region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if region is None and config.endpoint:
            region = "us-east-1"  # S3-compatible servers (MinIO...) accept any region
        if region is None:
            raise StorageError("s3 storage needs a region: set region in [recorder.storage] "
                               "(or AWS_REGION), or an endpoint")
        opts["region"] = region
        for key in ("access_key_id", "secret_access_key", "session_token"):
            value = getattr(config, key)
            if value is not None:
                opts[key] = value
        opts["disable_config_load"] = _flag(config.disable_config_load)
        opts["enable_virtual_host_style"] = _flag(config.enable_virtual_host_style)
    else:
        for key in ("access_key_id", "access_key_secret", "security_token"):
            value = getattr(config, key)
            if value is not None:
                opts[key] = value
    return opts


def describe_target(config: StorageConfig) -> str:
    """Where the storage points, for logs (no secrets)."""
    if config.type == "fs":
        return f"fs {os.path.abspath(config.effective_root)}"
    where = f" at {config.endpoint}" if config.endpoint else ""
    return f"{config.type} bucket {config.bucket!r} root {config.effective_root!r}{where}"


def open_storage(config: StorageConfig) -> Storage:
    """Build the storage for ``[recorder.storage]``. Raises StorageError for a bad config.

    Nothing is contacted here; call ``Storage.check()`` for that.
    """
    options = operator_options(config)
    try:
        op = opendal.AsyncOperator(config.type, **options)
        op = op.layer(opendal.layers.TimeoutLayer(timeout=CONTROL_TIMEOUT_S,
                                                   io_timeout=IO_TIMEOUT_S))
    except Exception as e:  # opendal raises its own exception classes, all plain Exception
        raise _error(f"opening {describe_target(config)}", e) from e
    if config.type == "fs":
        try:
            os.makedirs(options["root"], exist_ok=True)
        except OSError as e:
            raise StorageError(f"cannot create fs root {options['root']!r}: {e.strerror}") from e
    return Storage(op, config)


@dataclass(frozen=True, slots=True)
class Storage:
    """Async access to the recording storage. Every failure raises StorageError."""

    op: Any  # opendal.AsyncOperator (untyped for mypy)
    config: StorageConfig

    @property
    def target(self) -> str:
        return describe_target(self.config)

    async def write(self, path: str, data: bytes, content_type: str | None = None) -> None:
        """Create or replace the object at ``path``."""
        safe_path(path)
        kwargs: dict[str, str] = {}
        if self.config.type != "fs":  # fs keeps no content type
            kwargs["content_type"] = content_type or content_type_for(path)
        try:
            await self.op.write(path, data, **kwargs)
        except Exception as e:
            raise _error(f"{self.config.type} write {path!r}", e) from e

    async def read(self, path: str) -> bytes:
        safe_path(path)
        try:
            return bytes(await self.op.read(path))
        except Exception as e:
            raise _error(f"{self.config.type} read {path!r}", e) from e

    async def read_range(self, path: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of the object (end exclusive, clamped to its size).

        Empty when ``start`` is at or past the end. Raises StorageError (not_found) when
        the object does not exist.
        """
        if start < 0 or end < start:
            raise ValueError(f"bad range [{start}, {end})")
        size = await self.stat(path)
        if size is None:
            raise StorageError(f"{self.config.type} read {path!r} failed: NotFound",
                               not_found=True)
        end = min(end, size)
        if start >= end:
            return b""
        try:
            return bytes(await self.op.read(path, offset=start, size=end - start))
        except Exception as e:
            raise _error(f"{self.config.type} read {path!r} [{start}, {end})", e) from e

    async def stat(self, path: str) -> int | None:
        """The object's size in bytes, or None if there is no object at ``path``."""
        safe_path(path)
        try:
            meta = await self.op.stat(path)
        except Exception as e:
            err = _error(f"{self.config.type} stat {path!r}", e)
            if err.not_found:
                return None
            raise err from e
        if not meta.is_file:
            return None  # a directory (fs) is not an object
        return int(meta.content_length)

    async def exists(self, path: str) -> bool:
        return await self.stat(path) is not None

    async def list(self, prefix: str = "") -> list[str]:
        """Paths of all objects under ``prefix`` (a directory such as ``room1/`` or ``""``
        for everything), recursively, sorted."""
        if prefix:
            safe_path(prefix.rstrip("/"))
            if not prefix.endswith("/"):
                prefix += "/"
        paths: list[str] = []
        try:
            async for entry in await self.op.list(prefix, recursive=True):
                if not entry.path.endswith("/"):
                    paths.append(entry.path)
        except Exception as e:
            err = _error(f"{self.config.type} list {prefix!r}", e)
            if err.not_found:
                return []
            raise err from e
        return sorted(paths)

    async def delete(self, path: str) -> None:
        """Remove the object; removing a missing object is not an error."""
        safe_path(path)
        try:
            await self.op.delete(path)
        except Exception as e:
            err = _error(f"{self.config.type} delete {path!r}", e)
            if not err.not_found:
                raise err from e

    async def check(self) -> str | None:
        """Probe connectivity and credentials: None when storage works, else a message
        fit for a log line (the caller keeps serving WHIP/WHEP either way)."""
        try:
            await self.op.check()
        except Exception as e:
            reason, _, _ = describe_error(e)
            return f"storage {self.target} is not usable: {reason}"
        if self.config.type == "fs":
            root = operator_options(self.config)["root"]
            if not os.access(root, os.W_OK | os.X_OK):
                return f"storage {self.target} is not usable: directory is not writable"
        return None
