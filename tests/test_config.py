"""liveion.config: TOML + LIVE777_* environment loading, validation and error messages."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from liveion.config import (
    AuthConfig,
    ConfigError,
    HooksConfig,
    HttpConfig,
    IceServer,
    LimitsConfig,
    LivemanConfig,
    LogConfig,
    RecorderConfig,
    SdpConfig,
    Settings,
    StorageConfig,
    StrategyConfig,
    WebhookConfig,
    WebRtcConfig,
    default_config_path,
    load_settings,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "live777.toml.example"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No LIVE777_* variable from the outer environment leaks into a test."""
    for name in list(os.environ):
        if name.upper().startswith("LIVE777_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str, name: str = "live777.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, text: str) -> Settings:
    return load_settings(write(tmp_path, text))


def get(settings: Any, dotted: str) -> Any:
    value = settings
    for part in dotted.split("."):
        value = value[part] if isinstance(value, dict) else getattr(value, part)
    return value


def load_error(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    return info.value


# --- defaults ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dotted", "expected"),
    [
        ("http.listen", "0.0.0.0:7777"),
        ("http.host", "0.0.0.0"),
        ("http.port", 7777),
        ("http.cors", False),
        ("ice_servers", []),
        ("auth.secret", ""),
        ("auth.tokens", []),
        ("log.level", "info"),
        ("strategy.each_stream_max_sub", 65535),
        ("strategy.cascade_push_close_sub", False),
        ("strategy.auto_create_whip", True),
        ("strategy.auto_create_whep", True),
        ("strategy.auto_delete_whip", -1),
        ("strategy.auto_delete_whep", -1),
        ("webrtc.ice_udp_addrs", ["auto"]),
        ("webrtc.ice_lite", True),
        ("webrtc.consent_interval_ms", 5000),
        ("webrtc.peer_timeout_ms", None),
        ("sdp.video_codecs", []),
        ("sdp.audio_codecs", []),
        ("stream", {}),
    ],
)
def test_defaults_without_file(dotted: str, expected: Any) -> None:
    assert get(load_settings(None), dotted) == expected


def test_defaults_equal_plain_settings() -> None:
    assert load_settings(None) == Settings()


def test_empty_file_is_defaults(tmp_path: Path) -> None:
    assert load(tmp_path, "") == Settings()


# --- TOML values ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "dotted", "expected"),
    [
        ('[http]\nlisten = "127.0.0.1:9000"', "http.listen", "127.0.0.1:9000"),
        ("[http]\ncors = true", "http.cors", True),
        ('[auth]\nsecret = "s3"', "auth.secret", "s3"),
        ('[auth]\ntokens = ["a", "b"]', "auth.tokens", ["a", "b"]),
        ('[log]\nlevel = "debug"', "log.level", "debug"),
        ("[strategy]\neach_stream_max_sub = 3", "strategy.each_stream_max_sub", 3),
        ("[strategy]\ncascade_push_close_sub = true", "strategy.cascade_push_close_sub", True),
        ("[strategy]\nauto_create_whip = false", "strategy.auto_create_whip", False),
        ("[strategy]\nauto_create_whep = false", "strategy.auto_create_whep", False),
        ("[strategy]\nauto_delete_whip = 0", "strategy.auto_delete_whip", 0),
        ("[strategy]\nauto_delete_whep = 60000", "strategy.auto_delete_whep", 60000),
        ('[webrtc]\nice_udp_addrs = ["127.0.0.1"]', "webrtc.ice_udp_addrs", ["127.0.0.1"]),
        ("[webrtc]\nice_lite = false", "webrtc.ice_lite", False),
        ("[webrtc]\nconsent_interval_ms = 250", "webrtc.consent_interval_ms", 250),
        ("[webrtc]\npeer_timeout_ms = 10000", "webrtc.peer_timeout_ms", 10000),
        ('[sdp]\nvideo_codecs = ["VP8"]', "sdp.video_codecs", ["VP8"]),
        ('[sdp]\naudio_codecs = ["OPUS"]', "sdp.audio_codecs", ["OPUS"]),
        ("[stream.room1]", "stream.room1.strategy", None),
    ],
)
def test_toml_values(tmp_path: Path, toml: str, dotted: str, expected: Any) -> None:
    assert get(load(tmp_path, toml), dotted) == expected


def test_toml_ice_servers(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        '[[ice_servers]]\nurls = ["stun:stun.example.com:3478"]\n'
        '[[ice_servers]]\nurls = "turn:turn.example.com"\nusername = "u"\ncredential = "p"\n',
    )
    assert settings.ice_servers == [
        IceServer(urls=["stun:stun.example.com:3478"]),
        IceServer(urls=["turn:turn.example.com"], username="u", credential="p"),
    ]


# --- environment --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "env", "dotted", "expected"),
    [
        ('[http]\nlisten = "1.2.3.4:1"', {"LIVE777_HTTP__LISTEN": "127.0.0.1:9000"},
         "http.listen", "127.0.0.1:9000"),
        ("[strategy]\neach_stream_max_sub = 10", {"LIVE777_STRATEGY__EACH_STREAM_MAX_SUB": "3"},
         "strategy.each_stream_max_sub", 3),
        ('[auth]\ntokens = ["file"]', {"LIVE777_AUTH__TOKENS": '["a"]'}, "auth.tokens", ["a"]),
        ('[log]\nlevel = "error"', {"LIVE777_LOG__LEVEL": "DEBUG"}, "log.level", "debug"),
        ("[http]\ncors = false", {"LIVE777_HTTP__CORS": "true"}, "http.cors", True),
        ('[sdp]\nvideo_codecs = ["VP8"]', {"LIVE777_SDP__VIDEO_CODECS": '["h264"]'},
         "sdp.video_codecs", ["H264"]),
        ("", {"live777_http__listen": "127.0.0.2:1"}, "http.listen", "127.0.0.2:1"),
        # An env value for one key leaves the file's other keys in that table alone.
        ('[http]\ncors = true\nlisten = "1.2.3.4:1"', {"LIVE777_HTTP__LISTEN": "[::1]:5"},
         "http.cors", True),
        ("[strategy]\nauto_delete_whip = 5", {"LIVE777_STRATEGY__AUTO_DELETE_WHEP": "7"},
         "strategy.auto_delete_whip", 5),
    ],
)
def test_env_beats_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, toml: str, env: dict[str, str],
    dotted: str, expected: Any,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert get(load(tmp_path, toml), dotted) == expected


def test_nested_env_without_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVE777_HTTP__LISTEN", "127.0.0.1:9000")
    monkeypatch.setenv("LIVE777_WEBRTC__ICE_UDP_ADDRS", '["127.0.0.1"]')
    settings = load_settings(None)
    assert (settings.http.host, settings.http.port) == ("127.0.0.1", 9000)
    assert settings.webrtc.ice_udp_addrs == ["127.0.0.1"]


def test_init_kwargs_beat_env_and_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVE777_LOG__LEVEL", "warn")
    path = write(tmp_path, '[log]\nlevel = "error"\n')
    assert load_settings(path, log={"level": "trace"}).log.level == "trace"


def test_unrelated_env_vars_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVE777_SOMETHING_ELSE", "x")
    monkeypatch.setenv("HTTP__LISTEN", "bad")
    assert load_settings(None) == Settings()


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"LIVE777_STRATEGY__EACH_STREAM_MAX_SUB": "lots"},
         "LIVE777_STRATEGY__EACH_STREAM_MAX_SUB: strategy.each_stream_max_sub:"),
        ({"LIVE777_HTTP__LISTEN": "nope"}, "LIVE777_HTTP__LISTEN: http.listen:"),
        ({"LIVE777_HTTP__LISEN": "1.2.3.4:5"}, "unknown key 'http.lisen'"),
        ({"LIVE777_AUTH__TOKENS": "a"}, "JSON"),
    ],
)
def test_bad_env_rejected(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], needle: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings(None)
    assert needle in str(info.value)


# --- unknown keys and bad values --------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("foo = 1", "foo"),
        ("[htp]\nlisten = '1.2.3.4:5'", "htp"),
        ('[http]\nlisen = "127.0.0.1:1"', "http.lisen"),
        ("[auth]\ntoken = []", "auth.token"),
        ("[log]\nlvl = 'info'", "log.lvl"),
        ("[strategy]\neach_stream_max_subs = 1", "strategy.each_stream_max_subs"),
        ("[webrtc]\nice_lit = true", "webrtc.ice_lit"),
        ("[sdp]\ncodecs = []", "sdp.codecs"),
        ("[[ice_servers]]\nurls = ['stun:x']\npassword = 'p'", "ice_servers[0].password"),
        ("[stream.room1]\nmax = 1", "stream.room1.max"),
        ("[stream.room1.strategy]\nbogus = 1", "stream.room1.strategy.bogus"),
    ],
)
def test_unknown_keys_rejected(tmp_path: Path, toml: str, key: str) -> None:
    err = load_error(tmp_path, toml)
    assert f"unknown key {key!r}" in str(err)


def test_unknown_key_suggests_spelling(tmp_path: Path) -> None:
    err = load_error(tmp_path, '[http]\nlisen = "127.0.0.1:1"')
    assert str(err) == "{}: unknown key 'http.lisen' (did you mean 'listen'?)".format(
        tmp_path / "live777.toml"
    )


@pytest.mark.parametrize(
    ("toml", "key", "detail"),
    [
        ("[strategy]\neach_stream_max_sub = 'lots'", "strategy.each_stream_max_sub",
         "Input should be a valid integer"),
        ("[strategy]\neach_stream_max_sub = -1", "strategy.each_stream_max_sub",
         "greater than or equal to 0"),
        ("[strategy]\nauto_delete_whip = -2", "strategy.auto_delete_whip",
         "greater than or equal to -1"),
        ("[strategy]\nauto_create_whep = 'maybe'", "strategy.auto_create_whep",
         "valid boolean"),
        ("[http]\ncors = [1]", "http.cors", "valid boolean"),
        ("[http]\nlisten = 7777", "http.listen", "valid string"),
        ("[auth]\ntokens = 'abc'", "auth.tokens", "valid list"),
        ("[log]\nlevel = 'loud'", "log.level", "'trace', 'debug', 'info'"),
        ("[webrtc]\npeer_timeout_ms = 99", "webrtc.peer_timeout_ms", "greater than"),
        ("[webrtc]\nconsent_interval_ms = 99", "webrtc.consent_interval_ms",
         "greater than or equal to 100"),
        ("[webrtc]\nice_udp_addrs = ['10.0.0.300']", "webrtc.ice_udp_addrs",
         "neither 'auto' nor a valid IPv4/IPv6 address"),
        ("[webrtc]\nice_udp_addrs = []", "webrtc.ice_udp_addrs", "at least one address"),
        ("http = 5", "http", "valid dictionary"),
        ("[stream.room1.strategy]\neach_stream_max_sub = 'x'",
         "stream.room1.strategy.each_stream_max_sub", "valid integer"),
    ],
)
def test_bad_values_name_dotted_key(tmp_path: Path, toml: str, key: str, detail: str) -> None:
    message = str(load_error(tmp_path, toml))
    assert f"live777.toml: {key}: " in message
    assert detail in message


def test_bad_type_message_shape(tmp_path: Path) -> None:
    message = str(load_error(tmp_path, "[strategy]\neach_stream_max_sub = 'lots'"))
    assert re.fullmatch(
        r".*live777\.toml: strategy\.each_stream_max_sub: Input should be a valid integer.*"
        r"\(got 'lots'\)",
        message,
    )


def test_every_bad_key_listed(tmp_path: Path) -> None:
    err = load_error(
        tmp_path,
        "[http]\nlisen = 1\n[strategy]\neach_stream_max_sub = 'x'\n"
        "[log]\nlevel = 'loud'\n[stream.'bad name']\n",
    )
    assert len(err.problems) == 4
    message = str(err)
    assert message.startswith("4 configuration errors:")
    for needle in ("'http.lisen'", "strategy.each_stream_max_sub", "log.level", "'bad name'"):
        assert needle in message


# --- file-level errors --------------------------------------------------------------------


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "absent.toml")


def test_directory_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a regular file"):
        load_settings(tmp_path)


@pytest.mark.parametrize(
    ("toml", "line"),
    [
        ('[http]\nlisten = "0.0.0.0:7777\n', 2),
        ("[http]\ncors = true\n\nlisten ==\n", 4),
        ("[http]\n[http]\n", 2),
    ],
)
def test_toml_syntax_error_has_line(tmp_path: Path, toml: str, line: int) -> None:
    err = load_error(tmp_path, toml)
    assert "invalid TOML" in str(err)
    assert f"line {line}" in str(err)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "live777.toml"
    path.write_bytes(b'[http]\nlisten = "\xff"\n')
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_settings(path)


def test_default_config_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert default_config_path() is None
    (tmp_path / "live777.toml").write_text("")
    assert default_config_path() == Path("live777.toml")


# --- http.listen ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [
        ("0.0.0.0:7777", "0.0.0.0", 7777),
        ("127.0.0.1:0", "127.0.0.1", 0),
        ("localhost:8080", "localhost", 8080),
        ("live.example.com:443", "live.example.com", 443),
        ("[::]:7777", "::", 7777),
        ("[::1]:65535", "::1", 65535),
        ("[2001:db8::1]:80", "2001:db8::1", 80),
    ],
)
def test_listen_parsing(listen: str, host: str, port: int) -> None:
    http = HttpConfig(listen=listen)
    assert (http.host, http.port) == (host, port)


@pytest.mark.parametrize(
    "listen",
    ["7777", ":7777", "0.0.0.0", "0.0.0.0:", "0.0.0.0:65536", "0.0.0.0:-1", "0.0.0.0:http",
     "::1:7777", "[::1]7777", "[::1:7777", "[nothost]:1", "bad host:1", ""],
)
def test_listen_rejected(tmp_path: Path, listen: str) -> None:
    message = str(load_error(tmp_path, f'[http]\nlisten = "{listen}"'))
    assert "http.listen" in message


# --- ice servers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "urls"),
    [
        ({"urls": "stun:stun.example.com"}, ["stun:stun.example.com"]),
        ({"urls": ["stun:a", "stuns:b:5349"]}, ["stun:a", "stuns:b:5349"]),
        ({"urls": "turn:t:3478?transport=tcp", "username": "u", "credential": "c"},
         ["turn:t:3478?transport=tcp"]),
        ({"urls": ["turns:t"], "username": "u", "credential": "tok", "credential_type": "oauth"},
         ["turns:t"]),
    ],
)
def test_ice_server_accepted(entry: dict[str, Any], urls: list[str]) -> None:
    assert IceServer.model_validate(entry).urls == urls


@pytest.mark.parametrize(
    ("toml", "detail"),
    [
        ('urls = "turn:t"', "needs both username and credential"),
        ('urls = "turns:t"\nusername = "u"', "needs both username and credential"),
        ('urls = ["stun:s", "turn:t"]\ncredential = "c"', "needs both username and credential"),
        ('urls = "http://x"', "must start with stun:, stuns:, turn: or turns:"),
        ('urls = "stun:"', "must start with"),
        ("urls = []", "at least one URL"),
        ("username = 'u'", "Field required"),
        ('urls = "stun:s"\ncredential_type = "token"', "'password' or 'oauth'"),
    ],
)
def test_ice_server_rejected(tmp_path: Path, toml: str, detail: str) -> None:
    message = str(load_error(tmp_path, f"[[ice_servers]]\n{toml}\n"))
    assert "ice_servers[0]" in message
    assert detail in message


# --- log, webrtc, sdp ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "level", "number"),
    [("INFO", "info", logging.INFO), ("Debug", "debug", logging.DEBUG), ("trace", "trace", 5),
     ("WARN", "warn", logging.WARNING), ("warning", "warning", logging.WARNING),
     ("Error", "error", logging.ERROR)],
)
def test_log_level_case_insensitive(given: str, level: str, number: int) -> None:
    log = LogConfig.model_validate({"level": given})
    assert (log.level, log.python_level) == (level, number)


@pytest.mark.parametrize(
    ("given", "expected"),
    [(["auto"], ["auto"]), (["AUTO"], ["auto"]), (["127.0.0.1", "::1"], ["127.0.0.1", "::1"]),
     (["2001:DB8:0::1"], ["2001:db8::1"]), (["10.0.0.1", "10.0.0.1"], ["10.0.0.1"])],
)
def test_ice_udp_addrs(given: list[str], expected: list[str]) -> None:
    assert WebRtcConfig(ice_udp_addrs=given).ice_udp_addrs == expected


@pytest.mark.parametrize(
    ("field", "given", "expected"),
    [
        ("video_codecs", ["vp8", "H264", "av1"], ["VP8", "H264", "AV1"]),
        ("video_codecs", ["Vp9", "h265", "VP9"], ["VP9", "H265"]),
        ("audio_codecs", ["opus", "g722", "pcmu", "PCMA"], ["OPUS", "G722", "PCMU", "PCMA"]),
        ("audio_codecs", [], []),
    ],
)
def test_codec_normalisation(field: str, given: list[str], expected: list[str]) -> None:
    assert getattr(SdpConfig.model_validate({field: given}), field) == expected


@pytest.mark.parametrize(
    ("toml", "key", "codec"),
    [
        ('video_codecs = ["VP8", "H263"]', "sdp.video_codecs", "'H263'"),
        ('video_codecs = ["opus"]', "sdp.video_codecs", "'opus'"),
        ('audio_codecs = ["AAC"]', "sdp.audio_codecs", "'AAC'"),
        ('audio_codecs = ["vp8"]', "sdp.audio_codecs", "'vp8'"),
    ],
)
def test_codec_rejected(tmp_path: Path, toml: str, key: str, codec: str) -> None:
    message = str(load_error(tmp_path, f"[sdp]\n{toml}\n"))
    assert f"{key}: unknown" in message
    assert codec in message


# --- streams --------------------------------------------------------------------------------


STREAMS_TOML = """
[strategy]
each_stream_max_sub = 100
auto_delete_whep = 1000

[stream.room1]

[stream.room2.strategy]
each_stream_max_sub = 2
auto_create_whip = false

[stream."cam-1.main~x_y"]
strategy = { auto_delete_whep = -1, cascade_push_close_sub = true }
"""


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        ("room1", {"each_stream_max_sub": 100, "auto_delete_whep": 1000}),
        ("undeclared", {"each_stream_max_sub": 100, "auto_delete_whep": 1000}),
        ("room2", {"each_stream_max_sub": 2, "auto_create_whip": False,
                   "auto_delete_whep": 1000}),
        ("cam-1.main~x_y", {"each_stream_max_sub": 100, "auto_delete_whep": -1,
                            "cascade_push_close_sub": True}),
    ],
)
def test_strategy_for_merges_overrides(
    tmp_path: Path, stream: str, expected: dict[str, Any]
) -> None:
    settings = load(tmp_path, STREAMS_TOML)
    want = StrategyConfig().model_copy(update=expected)
    assert settings.strategy_for(stream) == want
    assert settings.strategy == StrategyConfig(each_stream_max_sub=100, auto_delete_whep=1000)


def test_declared_streams(tmp_path: Path) -> None:
    assert list(load(tmp_path, STREAMS_TOML).stream) == ["room1", "room2", "cam-1.main~x_y"]


@pytest.mark.parametrize(
    "name", ["bad name", "a/b", "caf\u00e9", "x" * 129, "", "room#1", "a?b"],
)
def test_bad_stream_name_rejected(tmp_path: Path, name: str) -> None:
    message = str(load_error(tmp_path, f'[stream."{name}"]\n'))
    assert f"invalid stream name {name!r}" in message


def test_longest_stream_name_ok(tmp_path: Path) -> None:
    assert "y" * 128 in load(tmp_path, f"[stream.{'y' * 128}]\n").stream


# --- the example file -------------------------------------------------------------------------


def test_example_loads_as_defaults() -> None:
    assert load_settings(EXAMPLE) == Settings()


_COMMENTED_TOML = re.compile(r"^# (\[\[?[\w.\"<>-]+\]\]?$|[a-z_]+ = .*)$")


def test_example_with_comments_enabled_loads(tmp_path: Path) -> None:
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    enabled = [line[2:] if _COMMENTED_TOML.match(line) else line for line in lines]
    assert enabled != lines
    settings = load(tmp_path, "\n".join(enabled) + "\n")
    assert [s.urls[0].split(":")[0] for s in settings.ice_servers] == ["stun", "turn"]
    assert settings.ice_servers[1].username and settings.ice_servers[1].credential
    assert "room1" in settings.stream
    assert settings.strategy_for("room1") != settings.strategy


def test_example_documents_every_key() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    tables: dict[str, type[BaseModel]] = {
        "http": HttpConfig, "auth": AuthConfig, "log": LogConfig, "strategy": StrategyConfig,
        "webrtc": WebRtcConfig, "sdp": SdpConfig, "ice_servers": IceServer,
        "hooks": HooksConfig, "webhook": WebhookConfig, "limits": LimitsConfig,
        "recorder": RecorderConfig, "recorder.storage": StorageConfig,
        "liveman": LivemanConfig,
    }
    for table, model in tables.items():
        header = f"[[{table}]]" if table == "ice_servers" else f"[{table}]"
        assert header in text
        for key in model.model_fields:
            if key == "storage":
                continue  # [recorder.storage] is checked as its own table
            assert re.search(rf"^#?\s*{key} = ", text, re.M), f"{table}.{key} undocumented"
    assert "[stream.room1]" in text and "[stream.room1.strategy]" in text
