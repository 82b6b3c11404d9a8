"""The SFU forwards RTP: no aiortc decoder or encoder may be created in the server."""

from __future__ import annotations

import sys
from pathlib import Path

from aiortc.codecs import h264, opus
from clients import play, publish
from helpers.liveion_codec_spy import instrument

SPY = Path(__file__).parent / "helpers" / "liveion_codec_spy.py"


def test_spy_records_codec_construction(tmp_path: Path, monkeypatch) -> None:
    """The instrument itself works: constructing a codec is recorded."""
    log = tmp_path / "codecs.log"
    for cls in (h264.H264Decoder, opus.OpusEncoder):
        monkeypatch.setattr(cls, "__init__", cls.__init__)  # restored after the test
    instrument(str(log))
    h264.H264Decoder()
    opus.OpusEncoder()
    assert log.read_text().split() == ["H264Decoder", "OpusEncoder"]


async def test_publish_and_subscribe_create_no_codec(start_liveion, tmp_path: Path) -> None:
    log = tmp_path / "server-codecs.log"
    server = start_liveion(argv_prefix=[sys.executable, str(SPY)],
                           env={"LIVEION_CODEC_SPY": str(log),
                                "PYTHONPATH": str(Path(__file__).parent.parent)})
    for codec in ("video/H264", "video/VP8"):
        publisher = await publish(server.url, f"spy-{codec[6:]}", codec)
        players = [await play(server.url, f"spy-{codec[6:]}") for _ in range(2)]
        for player in players:
            assert await player.wait_frames("video", 30) >= 30, server.log()
            assert await player.wait_frames("audio", 30) >= 30
            await player.close()
        await publisher.close()
    assert not log.exists() or log.read_text() == "", f"server created codecs: {log.read_text()}"
