"""`[extra_ice]`: the ICE servers liveman adds to WHIP/WHEP answers as `Link` headers."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

from liveion.config import IceServer
from liveion.http.common import ice_server_links

from .config import ExtraIceConfig


def coturn_credentials(secret: str, ttl: int, now: float) -> tuple[str, str]:
    """TURN REST credentials (coturn `use-auth-secret`): username is the expiry time,
    password base64(HMAC-SHA1(secret, username))."""
    username = str(int(now) + ttl)
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def extra_links(config: ExtraIceConfig, now: float) -> list[str]:
    servers: list[IceServer] = list(config.ice_servers)
    coturn = config.coturn
    if coturn is not None and coturn.urls and coturn.secret:
        username, password = coturn_credentials(coturn.secret, coturn.ttl, now)
        servers.append(IceServer(urls=coturn.urls, username=username, credential=password))
    return ice_server_links(servers)


def merge_links(upstream: Sequence[str], config: ExtraIceConfig, now: float) -> list[str]:
    """The node's `Link` values (minus its ICE servers when overridden) plus liveman's."""
    kept = [v for v in upstream
            if not (config.override_upstream_ice_servers and 'rel="ice-server"' in v)]
    return kept + extra_links(config, now)
