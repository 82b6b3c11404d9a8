"""The baseline: an SFU written "the obvious aiortc way", to measure liveion against.

WHIP and WHEP endpoints like liveion's, but media goes through aiortc's track API: the
publisher's tracks are decoded once (aiortc's receiver) and shared through
`aiortc.contrib.media.MediaRelay`; every subscriber gets `relay.subscribe(track)` added with
`addTrack`, so aiortc encodes the video (libx264) and the audio (Opus) again for each
subscriber. This is what liveion must not be.

Run: python -m bench.baseline_sfu -c config.toml   ([http] listen, like liveion's config)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from fastapi import FastAPI, Request
from fastapi.responses import Response

from .loopback import LOOPBACK, loopback_ice

SDP_TYPE = "application/sdp"


@dataclass
class Room:
    relay: MediaRelay = field(default_factory=MediaRelay)
    publisher: RTCPeerConnection | None = None
    tracks: dict[str, MediaStreamTrack] = field(default_factory=dict)
    sessions: dict[str, RTCPeerConnection] = field(default_factory=dict)


def create_app() -> FastAPI:
    rooms: dict[str, Room] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await asyncio.gather(*(pc.close() for room in rooms.values()
                               for pc in room.sessions.values()), return_exceptions=True)

    app = FastAPI(title="aiortc baseline SFU", lifespan=lifespan)

    async def answer(pc: RTCPeerConnection, offer: str) -> str:
        await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return str(pc.localDescription.sdp)

    def created(stream: str, session_id: str, sdp: str) -> Response:
        response = Response(sdp, status_code=201, media_type=SDP_TYPE)
        response.headers["Location"] = f"/session/{stream}/{session_id}"
        return response

    @app.get("/health")
    async def health() -> dict[str, int]:
        return {"rooms": len(rooms)}

    @app.post("/whip/{stream}")
    async def whip(stream: str, request: Request) -> Response:
        room = rooms.setdefault(stream, Room())
        if room.publisher is not None:
            return Response("stream already has a publisher", status_code=409)
        pc = RTCPeerConnection()
        room.publisher = pc

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            room.tracks[track.kind] = track

        sdp = await answer(pc, (await request.body()).decode())
        session_id = secrets.token_hex(8)
        room.sessions[session_id] = pc
        return created(stream, session_id, sdp)

    @app.post("/whep/{stream}")
    async def whep(stream: str, request: Request) -> Response:
        room = rooms.get(stream)
        if room is None or not room.tracks:
            return Response("no publisher", status_code=404)
        pc = RTCPeerConnection()
        await pc.setRemoteDescription(RTCSessionDescription((await request.body()).decode(),
                                                            "offer"))
        for transceiver in pc.getTransceivers():
            track = room.tracks.get(transceiver.kind)
            if track is not None:
                pc.addTrack(room.relay.subscribe(track))
        await pc.setLocalDescription(await pc.createAnswer())
        session_id = secrets.token_hex(8)
        room.sessions[session_id] = pc
        return created(stream, session_id, str(pc.localDescription.sdp))

    @app.delete("/session/{stream}/{session_id}")
    async def delete(stream: str, session_id: str) -> Response:
        room = rooms.get(stream)
        pc = room.sessions.pop(session_id, None) if room else None
        if pc is None:
            return Response(status_code=404)
        if room is not None and pc is room.publisher:
            room.publisher = None
            room.tracks.clear()
        await pc.close()
        return Response(status_code=204)

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="baseline_sfu", description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", type=Path, required=True)
    args = parser.parse_args(argv)
    config = tomllib.loads(args.config.read_text())
    host, _, port = config.get("http", {}).get("listen", f"{LOOPBACK}:7778").rpartition(":")
    loopback_ice()
    logging.basicConfig(level=logging.WARNING)
    uvicorn.run(create_app(), host=host, port=int(port), loop="uvloop", log_level="warning",
                access_log=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
