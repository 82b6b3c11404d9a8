"""The OpenAPI documents of liveion and liveman: complete enough for clients and fuzzers
(request bodies, the bearer scheme, problem+json errors), served where FastAPI users look
(`/openapi.json`, `/docs`) and where they used to be (`/api/openapi.json`, `/api/docs`),
and true to what the servers do: every operation documented as needing a credential
refuses a request without one, the others do not, and each answer is documented."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import free_port

from liveion.app import create_app as create_liveion
from liveion.config import load_settings as liveion_settings
from liveman.app import create_app as create_liveman
from liveman.config import load_settings as liveman_settings

PROBLEM = "application/problem+json"
JSON_ROUTES = {
    "liveion": [("post", "/session/{stream}/{session_id}"), ("post", "/api/record/{stream}"),
                ("patch", "/api/recordings"), ("delete", "/api/recordings"),
                ("post", "/api/cascade/{stream}")],
    "liveman": [("post", "/session/{stream}/{session_id}"), ("post", "/api/record/{stream}"),
                ("post", "/api/login"), ("post", "/api/token"),
                ("post", "/api/nodes/heartbeat"), ("post", "/api/storage/presign")],
}
SDP_ROUTES = {
    "liveion": ["/whip/{stream}", "/whep/{stream}"],
    "liveman": ["/whip/{stream}", "/whep/{stream}", "/api/whip/{alias}/{stream}",
                "/api/whep/{alias}/{stream}"],
}


@contextlib.asynccontextmanager
async def server(kind: str, tmp_path: Path, auth: bool = False
                 ) -> AsyncIterator[httpx.AsyncClient]:
    storage = {"storage": {"type": "fs", "root": str(tmp_path / "st")}}
    if kind == "liveion":
        settings = liveion_settings(
            None, http={"listen": f"127.0.0.1:{free_port()}"},
            webrtc={"ice_udp_addrs": ["127.0.0.1"]},
            auth={"tokens": ["t0ken"]} if auth else {},
            recorder={**storage, "index_path": str(tmp_path / "index.json"),
                      "spool_dir": str(tmp_path / "spool")})
        app = create_liveion(settings)
    else:
        app = create_liveman(liveman_settings(
            None, database={"url": f"sqlite://{tmp_path}/lm.db"}, recorder=storage,
            auth={"secret": "s3cret", "tokens": ["t0ken"]} if auth else {}))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test", timeout=30) as http:
        yield http


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, ops in spec["paths"].items()
            for method, op in ops.items()]


@pytest.mark.parametrize("kind", ["liveion", "liveman"])
async def test_openapi_is_complete_and_served_where_users_look(kind: str,
                                                               tmp_path: Path) -> None:
    async with server(kind, tmp_path) as http:
        response = await http.get("/openapi.json")
        assert response.status_code == 200
        spec = response.json()
        assert (await http.get("/api/openapi.json")).json() == spec
        for docs in ("/docs", "/api/docs"):
            page = await http.get(docs)
            assert page.status_code == 200 and "swagger" in page.text.lower()
            assert "/openapi.json" in page.text
    with contextlib.suppress(ImportError):
        from openapi_spec_validator import validate

        validate(spec)

    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"]["type"] == "http" and schemes["bearer"]["scheme"] == "bearer"
    assert schemes["token"] == {**schemes["token"], "type": "apiKey", "in": "query",
                                "name": "token"}

    paths = spec["paths"]
    for path in SDP_ROUTES[kind]:
        body = paths[path]["post"]["requestBody"]
        assert body["required"] and list(body["content"]) == ["application/sdp"], path
        assert "application/sdp" in paths[path]["post"]["responses"]["201"]["content"]
    patch = paths["/session/{stream}/{session_id}"]["patch"]["requestBody"]
    assert list(patch["content"]) == ["application/trickle-ice-sdpfrag"]
    for method, path in JSON_ROUTES[kind]:
        content = paths[path][method]["requestBody"]["content"]
        assert list(content) == ["application/json"], (method, path)
        ref = content["application/json"]["schema"]["$ref"]
        assert ref.rsplit("/", 1)[-1] in spec["components"]["schemas"], ref

    secured = 0
    for method, path, op in operations(spec):
        where = f"{method.upper()} {path}"
        errors = {s: r for s, r in op["responses"].items() if s[0] in "45"}
        assert "HTTPValidationError" not in str(op), where
        for status, response in errors.items():
            if (method, path, status) in (("get", "/readyz", "503"),
                                          ("get", "/api/storage/ping", "503")):
                continue  # a probe's answer, not an error of the client
            assert PROBLEM in response["content"], (where, status)
        if op.get("security"):
            secured += 1
            assert op["security"] == [{"bearer": []}, {"token": []}], where
            assert {"401", "403"} <= set(errors), where
        if "requestBody" in op:
            assert "413" in errors, where
    assert secured >= 20


def _fill(path: str) -> str:
    return path.replace("{path}", "a/b.m4s").replace("{stream}", "s").replace(
        "{session_id}", "0" * 32).replace("{alias}", "n1")


@pytest.mark.parametrize("kind", ["liveion", "liveman"])
async def test_documented_security_and_answers_match_the_server(kind: str,
                                                                tmp_path: Path) -> None:
    """With auth on and no credential: each operation the document secures answers 401,
    each other one does not, and every answer's status is one the document lists."""
    async with server(kind, tmp_path, auth=True) as http:
        spec = (await http.get("/openapi.json")).json()
        for method, path, op in operations(spec):
            where = f"{method.upper()} {path}"
            response = await http.request(method.upper(), _fill(path))
            assert str(response.status_code) in op["responses"], (where, response.text)
            if op.get("security"):
                assert response.status_code == 401, (where, response.text)
                assert response.headers["content-type"] == PROBLEM
            else:
                assert response.status_code != 401, where
        allowed = await http.get("/api/streams/", headers={"Authorization": "Bearer t0ken"})
        assert allowed.status_code == 200
        allowed = await http.get("/api/streams/", params={"token": "t0ken"})
        assert allowed.status_code == 200
