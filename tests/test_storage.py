"""Recording storage through opendal: local fs, S3 (moto server, read back with boto3) and
Aliyun OSS (a local OSS server that verifies V1 signatures, read back with oss2)."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import oss2
import pytest
from conftest import ROOT, free_port
from helpers.oss_server import OssServer
from helpers.s3 import MotoS3

from liveion.config import StorageConfig
from liveion.storage import (
    StorageError,
    content_type_for,
    open_storage,
    operator_options,
    safe_path,
)

BAD_PATHS = [
    ("", "empty"),
    ("/etc/passwd", "relative"),
    ("../secret", "'..'"),
    ("room1/../../x", "'..'"),
    ("room1/./x.m4s", "'.'"),
    ("room1\\x.m4s", "backslash"),
    ("room1//x.m4s", "empty segment"),
    ("room1/", "directory"),
    ("room1/x\x00.m4s", "control"),
    ("a" * 1025, "longer"),
]


@pytest.mark.parametrize(("path", "reason"), BAD_PATHS)
def test_safe_path_refuses_with_reason(path: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        safe_path(path)


def test_safe_path_accepts_recording_paths() -> None:
    for path in ("room1/1718200000/manifest.mpd", "a..b/v_seg_0001.m4s", "x"):
        assert safe_path(path) == path


def test_content_types() -> None:
    assert content_type_for("s/1/manifest.mpd") == "application/dash+xml"
    assert content_type_for("s/1/v_seg_0001.m4s") == "video/mp4"
    assert content_type_for("s/1/a_seg_0001.m4s") == "audio/mp4"
    assert content_type_for("s/1/a_init.m4s") == "audio/mp4"
    assert content_type_for("s/1/notes.bin") == "application/octet-stream"


def test_option_names_match_opendal() -> None:
    s3 = StorageConfig(type="s3", bucket="rec", root="/recordings", region="eu-west-1",
                       endpoint="http://minio:9000", access_key_id="AK",
                       secret_access_key="SK", session_token="TOK",
                       disable_config_load=True, enable_virtual_host_style=True)
    assert operator_options(s3) == {
        "bucket": "rec", "root": "/recordings", "region": "eu-west-1",
        "endpoint": "http://minio:9000", "access_key_id": "AK", "secret_access_key": "SK",
        "session_token": "TOK", "disable_config_load": "true",
        "enable_virtual_host_style": "true"}
    oss = StorageConfig(type="oss", bucket="rec", region="oss-cn-hangzhou",
                        endpoint="https://oss-cn-hangzhou.aliyuncs.com", access_key_id="AK",
                        access_key_secret="SK", security_token="STS")
    assert operator_options(oss) == {
        "bucket": "rec", "root": "/", "endpoint": "https://oss-cn-hangzhou.aliyuncs.com",
        "access_key_id": "AK", "access_key_secret": "SK", "security_token": "STS"}


def test_s3_without_region_is_a_clear_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    with pytest.raises(StorageError, match="needs a region"):
        open_storage(StorageConfig(type="s3", bucket="rec"))
    # An S3-compatible endpoint (MinIO) works without one.
    assert open_storage(StorageConfig(type="s3", bucket="rec", endpoint="http://127.0.0.1:9"))


async def test_fs_round_trip(tmp_path: Path) -> None:
    root = tmp_path / "storage"
    storage = open_storage(StorageConfig(type="fs", root=str(root)))
    assert await storage.check() is None
    segment = os.urandom(300_000)
    await storage.write("room1/1718200000/v_seg_0001.m4s", segment)
    await storage.write("room1/1718200000/manifest.mpd", b"<MPD/>")
    await storage.write("room2/1718200001/manifest.mpd", b"<MPD/>")
    # What a user finds on disk is exactly what was written.
    assert (root / "room1/1718200000/v_seg_0001.m4s").read_bytes() == segment
    assert await storage.read("room1/1718200000/v_seg_0001.m4s") == segment
    assert await storage.read_range("room1/1718200000/v_seg_0001.m4s", 1000, 2000) \
        == segment[1000:2000]
    assert await storage.read_range("room1/1718200000/v_seg_0001.m4s", 299_990, 400_000) \
        == segment[299_990:]
    assert await storage.read_range("room1/1718200000/v_seg_0001.m4s", 300_000, 300_001) \
        == b""
    assert await storage.stat("room1/1718200000/v_seg_0001.m4s") == 300_000
    assert await storage.stat("room1/1718200000") is None  # a directory is no object
    assert await storage.stat("room1/missing.m4s") is None
    assert await storage.list("room1/") == ["room1/1718200000/manifest.mpd",
                                            "room1/1718200000/v_seg_0001.m4s"]
    assert len(await storage.list()) == 3
    assert await storage.list("nothing-here") == []
    await storage.delete("room1/1718200000/manifest.mpd")
    await storage.delete("room1/1718200000/manifest.mpd")  # deleting twice is fine
    assert not await storage.exists("room1/1718200000/manifest.mpd")
    with pytest.raises(StorageError) as err:
        await storage.read("room1/missing.m4s")
    assert err.value.not_found and "NotFound" in str(err.value)
    with pytest.raises(ValueError, match=r"'\.\.'"):
        await storage.read("../outside")


async def test_s3_round_trip_read_back_with_boto3(moto_s3: MotoS3) -> None:
    s3 = moto_s3.client()
    s3.create_bucket(Bucket="rec-roundtrip")
    storage = open_storage(StorageConfig(**moto_s3.storage_toml_fields("rec-roundtrip",
                                                                       "/live")))
    assert await storage.check() is None
    objects = {
        "room1/1718200000/v_init.m4s": os.urandom(900),
        "room1/1718200000/v_seg_0001.m4s": os.urandom(3_000_000),
        "room1/1718200000/a_seg_0001.m4s": os.urandom(20_000),
        "room1/1718200000/manifest.mpd": b"<?xml version='1.0'?><MPD/>",
        "room2/1718200500/manifest.mpd": b"<MPD/>",
    }
    for path, data in objects.items():
        await storage.write(path, data)
    for path, data in objects.items():
        got = s3.get_object(Bucket="rec-roundtrip", Key=f"live/{path}")
        assert got["Body"].read() == data, path
        assert got["ContentType"] == content_type_for(path)
    head = s3.head_object(Bucket="rec-roundtrip", Key="live/room1/1718200000/a_seg_0001.m4s")
    assert head["ContentType"] == "audio/mp4"
    seg = objects["room1/1718200000/v_seg_0001.m4s"]
    assert await storage.read("room1/1718200000/v_seg_0001.m4s") == seg
    assert await storage.read_range("room1/1718200000/v_seg_0001.m4s", 5, 70_000) \
        == seg[5:70_000]
    assert await storage.read_range("room1/1718200000/v_seg_0001.m4s", 2_999_000,
                                    9_999_999) == seg[2_999_000:]
    assert await storage.stat("room1/1718200000/v_seg_0001.m4s") == 3_000_000
    assert await storage.stat("room1/nothing") is None
    assert await storage.list("room1") == sorted(p for p in objects if p.startswith("room1/"))
    assert await storage.list() == sorted(objects)
    await storage.delete("room2/1718200500/manifest.mpd")
    listed = s3.list_objects_v2(Bucket="rec-roundtrip", Prefix="live/room2/")
    assert listed["KeyCount"] == 0


async def test_s3_missing_bucket_and_dead_endpoint_give_clear_errors(moto_s3: MotoS3
                                                                     ) -> None:
    missing = open_storage(StorageConfig(**moto_s3.storage_toml_fields("no-such-bucket")))
    message = await missing.check()
    assert message is not None and "NoSuchBucket" in message and "no-such-bucket" in message

    dead = StorageConfig(**{**moto_s3.storage_toml_fields("rec"),
                            "endpoint": f"http://127.0.0.1:{free_port()}"})
    storage = open_storage(dead)
    message = await storage.check()
    assert message is not None and "Connection refused" in message
    with pytest.raises(StorageError) as err:
        await storage.write("a/b.m4s", b"x")
    assert err.value.temporary
    assert "s3 write 'a/b.m4s' failed" in str(err.value)
    assert "\n" not in str(err.value)


# --- OSS --------------------------------------------------------------------------------
# opendal shares one HTTP client per process and reads HTTP_PROXY when it creates it, so
# the OSS side runs in a child process with HTTP_PROXY pointing at the OSS test server.

OSS_CHILD = r"""
import asyncio, base64, json, sys
from liveion.config import StorageConfig
from liveion.storage import StorageError, open_storage

async def main(job):
    out = {}
    good = open_storage(StorageConfig(**job["good"]))
    out["check"] = await good.check()
    for path, b64 in job["objects"].items():
        await good.write(path, base64.b64decode(b64))
    out["read"] = {p: base64.b64encode(await good.read(p)).decode() for p in job["objects"]}
    out["range"] = base64.b64encode(await good.read_range(job["range"][0], job["range"][1],
                                                          job["range"][2])).decode()
    out["stat"] = {p: await good.stat(p) for p in job["objects"]}
    out["list"] = await good.list(job["list_prefix"])
    out["list_all"] = await good.list()
    await good.delete(job["delete"])
    out["deleted_exists"] = await good.exists(job["delete"])
    for name in ("wrong_secret", "sts", "sts_without_token"):
        out[name + "_check"] = await open_storage(StorageConfig(**job[name])).check()
    try:
        await open_storage(StorageConfig(**job["wrong_secret"])).write("x/y.m4s", b"1")
        out["wrong_secret_write"] = None
    except StorageError as e:
        out["wrong_secret_write"] = str(e)
    print(json.dumps(out))

asyncio.run(main(json.loads(sys.stdin.read())))
"""

OSS_ENDPOINT = "http://oss-test.example.invalid"


def oss_config(key_id: str, secret: str, **extra: str) -> dict[str, Any]:
    return {"type": "oss", "bucket": "rec", "root": "/recordings", "region": "oss-test",
            "endpoint": OSS_ENDPOINT, "access_key_id": key_id, "access_key_secret": secret,
            **extra}


def test_oss_signed_round_trip_read_back_with_oss2(tmp_path: Path) -> None:
    server = OssServer(credentials={"AKID": "right-secret", "STSID": "sts-secret"},
                       buckets={"rec"}, security_tokens={"STSID": "sts-token"})
    proxy = server.start()
    try:
        objects = {
            "room1/1718200000/v_init.m4s": os.urandom(700),
            "room1/1718200000/v_seg_0001.m4s": os.urandom(1_500_000),
            "room1/1718200000/manifest.mpd": b"<MPD/>",
            "room 2/1718200001/a_seg_0001.m4s": os.urandom(5000),  # a key that needs escaping
        }
        job = {
            "good": oss_config("AKID", "right-secret"),
            "wrong_secret": oss_config("AKID", "not-the-secret"),
            "sts": oss_config("STSID", "sts-secret", security_token="sts-token"),
            "sts_without_token": oss_config("STSID", "sts-secret"),
            "objects": {p: base64.b64encode(d).decode() for p, d in objects.items()},
            "range": ["room1/1718200000/v_seg_0001.m4s", 100, 200_100],
            "list_prefix": "room1/",
            "delete": "room1/1718200000/manifest.mpd",
        }
        child = subprocess.run(
            [sys.executable, "-c", OSS_CHILD], input=json.dumps(job), capture_output=True,
            text=True, timeout=120, cwd=ROOT,
            env={**os.environ, "HTTP_PROXY": proxy, "http_proxy": proxy, "NO_PROXY": ""})
        assert child.returncode == 0, child.stderr
        out = json.loads(child.stdout)

        assert out["check"] is None
        assert {p: base64.b64decode(b) for p, b in out["read"].items()} == objects
        seg = objects["room1/1718200000/v_seg_0001.m4s"]
        assert base64.b64decode(out["range"]) == seg[100:200_100]
        assert out["stat"] == {p: len(d) for p, d in objects.items()}
        assert out["list"] == sorted(p for p in objects if p.startswith("room1/"))
        assert out["list_all"] == sorted(objects)
        assert out["deleted_exists"] is False
        # Wrong credentials: a clear message from check(), and writes refused.
        assert "SignatureDoesNotMatch" in out["wrong_secret_check"]
        assert "PermissionDenied" in out["wrong_secret_check"]
        assert "SignatureDoesNotMatch" in out["wrong_secret_write"]
        assert ("recordings", "x/y.m4s") not in server.objects
        # STS: the token is sent, and required.
        assert out["sts_check"] is None
        assert "InvalidSecurityToken" in out["sts_without_token_check"]
        # Every request was signed OSS V1 and went to the bucket's virtual host.
        assert server.log and all(r.auth_scheme == "OSS" for r in server.log)
        assert {r.host for r in server.log} == {"rec.oss-test.example.invalid"}
        assert any(r.status == 403 for r in server.log)

        # An independent client reads the same bytes back.
        bucket = oss2.Bucket(oss2.Auth("AKID", "right-secret"), OSS_ENDPOINT, "rec",
                             proxies={"http": proxy})
        for path, data in objects.items():
            if path == job["delete"]:
                assert not bucket.object_exists(f"recordings/{path}")
                continue
            assert bucket.get_object(f"recordings/{path}").read() == data, path
        head = bucket.head_object("recordings/room1/1718200000/v_init.m4s")
        assert head.headers["Content-Type"] == "video/mp4"
        with pytest.raises(oss2.exceptions.ServerError) as denied:
            oss2.Bucket(oss2.Auth("AKID", "nope"), OSS_ENDPOINT, "rec",
                        proxies={"http": proxy}).get_object("recordings/room1/x")
        assert denied.value.status == 403
    finally:
        server.stop()
