"""A moto S3 server on a loopback port, stoppable and restartable on the same port.

moto's ThreadedMotoServer does not close its listening socket on stop(), so a "stopped"
server still accepts connections (they hang) and the port cannot be reused. This runs the
same moto WSGI app under werkzeug, closes the socket on stop, and records the order in
which object writes arrive, so tests can check upload order from the server's side.

moto keeps its buckets and objects per process, not per server: a server restarted on
the same port (or any other) still has them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote

import boto3
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server

REGION = "us-east-1"
KEY_ID = "test"
SECRET = "test"

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class MotoS3:
    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.puts: list[str] = []
        """Paths (``/bucket/key``) of PUT requests, in arrival order (kept across restarts)."""
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._app: WsgiApp = DomainDispatcherApplication(create_backend_app)

    def _recording_app(self, environ: dict[str, Any], start_response: Callable[..., Any]
                       ) -> Iterable[bytes]:
        if environ["REQUEST_METHOD"] == "PUT":
            self.puts.append(unquote(environ.get("RAW_URI") or environ["PATH_INFO"]))
        return self._app(environ, start_response)

    def start(self) -> MotoS3:
        self._server = make_server("127.0.0.1", self.port, self._recording_app, threaded=True,
                                   request_handler=MotoRequestHandler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> Any:
        """A boto3 S3 client for this server: the independent reader in tests."""
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)

    def storage_toml_fields(self, bucket: str, root: str = "/") -> dict[str, Any]:
        """``[recorder.storage]`` fields that point at this server."""
        return {"type": "s3", "bucket": bucket, "root": root, "region": REGION,
                "endpoint": self.endpoint, "access_key_id": KEY_ID,
                "secret_access_key": SECRET, "disable_config_load": True}
