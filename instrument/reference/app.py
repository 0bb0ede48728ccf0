"""The reference backend's FastAPI app: REST library endpoints and the /ws
protocol of Auralis (see AURALIS.md), with injections from EARSHOT_REF_INJECT."""
from __future__ import annotations

import asyncio
import json
import os
import time
from collections import deque
from typing import Any

from fastapi import FastAPI, HTTPException, Query, WebSocket, WebSocketDisconnect
from pydantic import BaseModel

from . import streaming
from .injections import parse_injections
from .library import Library, ScanError

EXEMPT = {"ping", "pong", "heartbeat"}
MAX_STREAMS = 10
RATE_PER_S = 10
_LEAKED: list[bytearray] = []  # the leak-on-disconnect injection keeps its state here


class ScanRequest(BaseModel):
    directories: list[str]


def _allowed_origins(port: int | None) -> set[str]:
    out = {"http://localhost:8765", "http://127.0.0.1:8765"}
    if port:
        out |= {f"http://localhost:{port}", f"http://127.0.0.1:{port}"}
    return out


def create_app(injections: frozenset[str] = frozenset(), options: dict[str, Any] | None = None) -> FastAPI:
    opts = {"ping_interval": float(os.environ.get("EARSHOT_REF_PING_INTERVAL", 30)),
            "pong_timeout": float(os.environ.get("EARSHOT_REF_PONG_TIMEOUT", 10)), **(options or {})}
    app = FastAPI(title="earshot reference backend", version="1")
    lib = Library()
    state = {"active_streams": 0, "settings": {"enabled": True, "preset": "adaptive", "intensity": 1.0}}

    @app.get("/api/health")
    async def health() -> dict[str, Any]:
        return {"status": "healthy", "backend": "earshot-reference", "injections": sorted(injections)}

    @app.post("/api/library/scan")
    async def scan(req: ScanRequest) -> dict[str, Any]:
        try:
            return await asyncio.to_thread(lib.scan, req.directories)
        except ScanError as e:
            raise HTTPException(status_code=e.status, detail=str(e)) from None

    @app.get("/api/library/tracks")
    async def tracks(limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0)) -> dict[str, Any]:
        return lib.page(limit, offset)

    @app.websocket("/ws")
    async def ws_endpoint(ws: WebSocket) -> None:
        origin = ws.headers.get("origin")
        port = ws.scope.get("server", (None, None))[1]
        if origin is not None and origin not in _allowed_origins(port):
            await ws.close(code=1008)
            return
        await ws.accept()
        send_lock = asyncio.Lock()
        last_pong = [time.monotonic()]
        recent: deque[float] = deque()
        flow = streaming.Flow()
        current: dict[str, Any] = {"task": None, "type": "normal", "track": None}

        async def send_json(msg: dict) -> None:
            async with send_lock:
                await ws.send_text(json.dumps(msg))

        async def send_pair(meta: dict, frame: bytes) -> None:
            async with send_lock:  # a meta and its frame are never split by another message
                await ws.send_text(json.dumps(meta))
                await ws.send_bytes(frame)

        async def error(code: str, message: str) -> None:
            await send_json({"type": "error", "error": code, "message": message})

        async def heartbeat() -> None:
            while True:
                await asyncio.sleep(opts["ping_interval"])
                sent = time.monotonic()
                await send_json({"type": "ping"})
                await asyncio.sleep(opts["pong_timeout"])
                if last_pong[0] < sent:
                    await ws.close(code=1001)
                    return

        async def stream(track: dict, enhanced: bool, position: float, preset: str) -> None:
            state["active_streams"] += 1
            try:
                await streaming.run_stream(send_json=send_json, send_pair=send_pair, track=track,
                                           audio=await asyncio.to_thread(lib.audio, track), enhanced=enhanced,
                                           start_position=position, flow=flow, inj=injections, preset=preset)
            except (WebSocketDisconnect, RuntimeError, ConnectionError):
                pass
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a clean error to the client, never a silent end
                await send_json({"type": "audio_stream_error", "data": {"error": str(e)[:200], "code": "STREAM_FAILED"}})
            finally:
                state["active_streams"] -= 1

        async def start(track_id: Any, enhanced: bool, position: float, preset: str = "adaptive") -> None:
            track = lib.get(track_id)
            if track is None:
                await error("track_not_found", f"Track {track_id!r} not found")
                return
            await cancel()
            if state["active_streams"] >= MAX_STREAMS:
                await error("server_busy", "Server busy - too many active streams")
                return
            flow.resume()
            current.update(type="enhanced" if enhanced else "normal", track=track)
            current["task"] = asyncio.create_task(stream(track, enhanced, position, preset))

        async def cancel() -> None:
            t = current.get("task")
            if t is not None and not t.done():
                t.cancel()
                try:
                    await t
                except (asyncio.CancelledError, Exception):
                    pass
            current["task"] = None

        hb = asyncio.create_task(heartbeat())
        if "loop-saturation" in injections:
            streaming.ensure_saturator(lambda: state["active_streams"] > 0)
        await send_json({"type": "enhancement_settings_changed", "data": dict(state["settings"])})
        await send_json({"type": "player_state", "data": {"state": "idle", "track_id": None, "position": 0.0}})
        try:
            while True:
                raw = await ws.receive_text()
                try:
                    msg = json.loads(raw)
                    kind = msg.get("type")
                    data = msg.get("data") or {}
                    if not isinstance(data, dict):
                        raise ValueError("data must be an object")
                except (json.JSONDecodeError, AttributeError, ValueError):
                    await error("invalid_message", "Message must be a JSON object with type and data")
                    continue
                if kind not in EXEMPT:
                    now = time.monotonic()
                    while recent and now - recent[0] > 1.0:
                        recent.popleft()
                    if len(recent) >= RATE_PER_S:
                        await error("rate_limit_exceeded", f"More than {RATE_PER_S} messages per second")
                        continue
                    recent.append(now)
                if kind == "ping":
                    await send_json({"type": "pong"})
                elif kind == "pong":
                    last_pong[0] = time.monotonic()
                elif kind == "heartbeat":
                    pass
                elif kind in ("play_normal", "play_enhanced"):
                    pos = data.get("start_position") or 0.0
                    if not isinstance(pos, (int, float)) or pos < 0:
                        await error("invalid_position", "start_position must be a non-negative number")
                        continue
                    await start(data.get("track_id"), kind == "play_enhanced", float(pos),
                                str(data.get("preset") or state["settings"]["preset"]))
                elif kind == "seek":
                    pos = data.get("position")
                    if not isinstance(pos, (int, float)) or pos < 0:
                        await error("invalid_position", "position must be a non-negative number")
                        continue
                    await start(data.get("track_id", (current.get("track") or {}).get("id")),
                                current["type"] == "enhanced", float(pos))
                elif kind in ("pause", "buffer_full"):
                    flow.pause()
                elif kind in ("resume", "buffer_ready"):
                    flow.resume()
                elif kind == "stop":
                    await cancel()
                else:
                    await error("unknown_message_type", f"Unknown message type {kind!r}")
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            hb.cancel()
            await cancel()
            if "leak-on-disconnect" in injections:
                _LEAKED.append(bytearray(b"\x01") * (1 << 20))  # touched pages, so RSS grows

    return app


app = create_app(parse_injections(os.environ.get("EARSHOT_REF_INJECT", "")))
