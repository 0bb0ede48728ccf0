"""One /ws connection of the reference backend, speaking Auralis's protocol
(observed on f33a22e5; AURALIS.md, and the shapes its WebSocket handlers and
streaming modules send): origin check, initial sync pushes, heartbeat, rate limit,
play/seek/pause/flow/stop, one streaming task per connection."""
from __future__ import annotations

import asyncio
import datetime
import json
import math
import os
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from . import mastering, streaming
from .library import Library

RATE_LIMIT_EXEMPT = frozenset({"ping", "pong", "heartbeat"})
MAX_MESSAGE_BYTES = 64 * 1024
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
LEAK_BYTES = 1 << 20  # leak-on-disconnect: exactly 1048576 bytes per connection
_LEAKED: list[bytearray] = []  # what leak-on-disconnect keeps, module-level so it is never freed


@dataclass
class Options:
    ping_interval: float = 30.0
    pong_timeout: float = 10.0
    rate_per_s: int = 10
    max_streams: int = 10
    acquire_timeout: float = 5.0  # Auralis's STREAM_ACQUIRE_TIMEOUT_SECONDS
    send_queue_frames: int = streaming.SEND_QUEUE_FRAMES


_ENV = {"ping_interval": ("EARSHOT_REF_PING_INTERVAL", float), "pong_timeout": ("EARSHOT_REF_PONG_TIMEOUT", float),
        "max_streams": ("EARSHOT_REF_MAX_STREAMS", int), "acquire_timeout": ("EARSHOT_REF_ACQUIRE_TIMEOUT", float)}


def options_from_env(env: dict[str, str] | None = None) -> dict[str, Any]:
    env = os.environ if env is None else env
    out: dict[str, Any] = {}
    for key, (name, kind) in _ENV.items():
        if env.get(name):
            try:
                out[key] = kind(env[name])
            except ValueError:
                raise ValueError(f"{name} must be a number, got {env[name]!r}") from None
    return out


@dataclass
class Shared:
    """App-wide state shared by every connection."""

    lib: Library
    opts: Options
    injections: frozenset[str]
    slots: asyncio.Semaphore
    active_streams: int = 0
    sessions: set["Session"] = field(default_factory=set)
    background: set[asyncio.Task] = field(default_factory=set)
    settings: dict[str, Any] = field(default_factory=lambda: {"enabled": True, "preset": "adaptive",
                                                              "intensity": 1.0})


def allowed_origins(port: int | None) -> frozenset[str]:
    """Auralis's allowlist is built around its backend port 8765; the reference
    also allows its own port, so a browser page it serves could connect."""
    ports = {8765} | ({port} if port else set())
    return frozenset(f"{scheme}://{host}:{p}" for scheme in ("http", "https", "ws", "wss")
                     for host in ("localhost", "127.0.0.1") for p in ports) | {"file://"}


def recommendation(lib: Library, track: dict[str, Any]) -> dict[str, Any]:
    """A mastering_recommendation payload shaped like Auralis's
    MasteringRecommendation.to_response, from the track's first 15 s."""
    x, sr = lib.audio(track)
    gain_db, tilt = mastering.chunk_params(x[: int(15 * sr)], sr)
    return {"primary_profile_id": "reference-adaptive", "primary_profile_name": "Reference adaptive",
            "confidence_score": 0.8, "predicted_loudness_change": round(gain_db, 2), "predicted_crest_change": 0.0,
            "predicted_centroid_change": round(tilt * 1000.0, 1), "reasoning": "per-chunk gain and tilt",
            "created": datetime.datetime.now().isoformat(), "alternative_profiles": [], "track_id": track["id"],
            "is_hybrid": False, "weighted_profiles": []}


def seek_offset_s(env: dict[str, str] | None = None) -> float:
    """How late the seek-offset injection lands a seek (EARSHOT_REF_SEEK_OFFSET_S, default 5 s)."""
    env = os.environ if env is None else env
    try:
        return float(env.get("EARSHOT_REF_SEEK_OFFSET_S") or 5.0)
    except ValueError:
        raise ValueError(f"EARSHOT_REF_SEEK_OFFSET_S must be a number, got {env['EARSHOT_REF_SEEK_OFFSET_S']!r}") \
            from None


async def drain_reraising(task: asyncio.Task) -> None:
    """Cancel a look-ahead task and wait for it, swallowing its cancellation
    but re-raising the caller's own (Auralis's drain_cancelled_task since
    #5083): a stream that is being cancelled raises here, in its finally."""
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling() > 0:
            raise


def _error(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": code, "message": message,
            "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat()}


def _wrong_typed(kind: str, data: dict[str, Any]) -> bool:
    """A play/seek field of the wrong JSON type (what crash-on-bad-message dies on)."""
    if kind not in ("play_normal", "play_enhanced", "seek"):
        return False
    t = data.get("track_id")
    if t is not None and (isinstance(t, bool) or not isinstance(t, int)):
        return True
    return any(data.get(k) is not None and (isinstance(data[k], bool) or not isinstance(data[k], (int, float)))
               for k in ("position", "start_position"))


def _player_state(shared: Shared) -> dict[str, Any]:
    s = shared.settings
    return {"seq": 0, "state": "stopped", "is_playing": False, "is_paused": False, "current_track": None,
            "current_time": 0.0, "duration": 0.0, "volume": 80, "is_muted": False, "queue": [], "queue_index": 0,
            "queue_size": 0, "shuffle_enabled": False, "repeat_mode": "off", "mastering_enabled": s["enabled"],
            "current_preset": s["preset"], "analysis": None}


class Session:
    def __init__(self, ws: WebSocket, shared: Shared):
        self.ws = ws
        self.shared = shared
        self.inj = shared.injections
        self.send = streaming.Sender(ws)
        self.task: asyncio.Task | None = None
        self.gates = streaming.Gates()
        self.stream_type = "normal"
        self.stream_settings: dict[str, Any] = {}
        self.pending_ping: float | None = None
        self.progress: dict[str, Any] = {}  # the running stream's chunk (stale-after-seek reads it)
        self.recent: deque[float] = deque()

    async def admit(self) -> bool:
        """Origin policy before accept, as Auralis's ConnectionManager.connect."""
        origin = (self.ws.headers.get("origin") or "").lower()
        port = (self.ws.scope.get("server") or (None, None))[1]
        host = (self.ws.client.host if self.ws.client else "").lower()
        if (origin and origin not in allowed_origins(port)) or (not origin and host not in LOOPBACK_HOSTS):
            await self.ws.close(code=1008)
            return False
        await self.ws.accept()
        return True

    async def run(self) -> None:
        self.shared.sessions.add(self)
        hb = asyncio.get_running_loop().create_task(self.heartbeat())
        if "loop-saturation" in self.inj:
            # while anyone is connected, not only while a stream is sending:
            # a short track fits in the socket buffers and its stream ends in
            # a second, so a busy-while-streaming loop was busy for 2 s of a
            # 12 s slow-client load and the known answer came and went
            streaming.ensure_saturator(lambda: bool(self.shared.sessions))
        try:
            await self.send.json({"type": "enhancement_settings_changed", "data": dict(self.shared.settings)})
            await self.send.json({"type": "player_state", "data": _player_state(self.shared)})
            while True:
                frame = await self.ws.receive()
                if frame["type"] == "websocket.disconnect":
                    return
                if frame.get("text") is None:
                    await self.send.json(_error("unsupported_frame_type",
                                                "Binary WebSocket frames are not supported; send JSON text frames"))
                    continue
                msg = await self.parse(frame["text"])
                if msg is None:
                    continue
                kind = msg["type"]
                if kind not in RATE_LIMIT_EXEMPT and not self.within_rate():
                    await self.send.json(_error("rate_limit_exceeded", f"Rate limit exceeded: maximum "
                                                f"{self.shared.opts.rate_per_s} messages per 1.0s"))
                    continue
                if "crash-on-bad-message" in self.inj and _wrong_typed(kind, msg["data"]):
                    await self.swallow_until_disconnect()
                    return
                await self.dispatch(kind, msg["data"])
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass
        finally:
            self.shared.sessions.discard(self)
            hb.cancel()
            await self.cancel()
            if "leak-on-disconnect" in self.inj:
                _LEAKED.append(bytearray(b"\x01") * LEAK_BYTES)  # pages touched, so RSS grows by it

    async def parse(self, raw: str) -> dict[str, Any] | None:
        if len(raw.encode()) > MAX_MESSAGE_BYTES:
            await self.send.json(_error("message_too_large", f"Message exceeds maximum {MAX_MESSAGE_BYTES} bytes"))
            return None
        try:
            msg = json.loads(raw)
        except json.JSONDecodeError:
            await self.send.json(_error("invalid_json", "Message must be valid JSON"))
            return None
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str) or \
                not isinstance(msg.get("data", {}) or {}, dict):
            await self.send.json(_error("validation_error", "Invalid message format or unknown message type"))
            return None
        return {"type": msg["type"], "data": msg.get("data") or {}}

    def within_rate(self) -> bool:
        now = time.monotonic()
        while self.recent and now - self.recent[0] > 1.0:
            self.recent.popleft()
        if len(self.recent) >= self.shared.opts.rate_per_s:
            return False
        self.recent.append(now)
        return True

    async def heartbeat(self) -> None:
        """JSON ping every interval; close 1001 when its pong is later than the timeout."""
        o = self.shared.opts
        try:
            while True:
                await asyncio.sleep(o.ping_interval)
                await self.send.json({"type": "ping"})
                self.pending_ping = time.monotonic()
                await asyncio.sleep(o.pong_timeout + 0.01)
                if self.pending_ping is not None:
                    await self.ws.close(code=1001, reason="Heartbeat timeout")
                    return
        except (WebSocketDisconnect, RuntimeError, OSError):
            return

    async def dispatch(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "ping":
            await self.send.json({"type": "pong"})
        elif kind == "pong":
            self.pending_ping = None
        elif kind == "heartbeat":
            pass  # proves liveness; deliberately does not answer a pending ping (as Auralis)
        elif kind in ("play_normal", "play_enhanced"):
            await self.play(kind == "play_enhanced", data)
        elif kind == "seek":
            await self.seek(data)
        elif kind == "pause":
            self.gates.play.clear()
            await self.send.json({"type": "playback_paused", "data": {"state": "paused"}})
        elif kind == "resume":
            self.gates.play.set()
            await self.send.json({"type": "playback_resumed", "data": {"state": "playing"}})
        elif kind == "buffer_full":
            self.gates.flow.clear()
        elif kind == "buffer_ready":
            self.gates.flow.set()
        elif kind == "stop":
            await self.cancel()
            await self.send.json({"type": "playback_stopped", "data": {"state": "stopped"}})
        else:
            code = "unknown_command" if "contract-drift" in self.inj else "unknown_message_type"
            await self.send.json(_error(code, "Unrecognised message type"))

    async def swallow_until_disconnect(self) -> None:
        """crash-on-bad-message: the handler died on a bad field; the socket
        stays open (heartbeat still runs) but nothing is answered any more."""
        while (await self.ws.receive())["type"] != "websocket.disconnect":
            pass

    @staticmethod
    def _track_id(data: dict[str, Any]) -> int | None:
        t = data.get("track_id")
        return t if isinstance(t, int) and not isinstance(t, bool) and t > 0 else None

    async def play(self, enhanced: bool, data: dict[str, Any]) -> None:
        track_id = self._track_id(data)
        if track_id is None:
            await self.send.json(_error("invalid_track_id", "track_id must be a positive integer"))
            return
        pos = data.get("start_position", 0.0) or 0.0
        pos = float(pos) if isinstance(pos, (int, float)) and math.isfinite(pos) and pos > 0 else 0.0
        intensity = data.get("intensity")
        if isinstance(intensity, bool) or not isinstance(intensity, (int, float)) or not 0 <= intensity <= 1:
            intensity = self.shared.settings["intensity"]
        settings = {"preset": str(data.get("preset") or self.shared.settings["preset"]), "intensity": float(intensity)}
        self.stream_settings = settings if enhanced else {}
        if enhanced and "shared-state" in self.inj:  # as Auralis #4601: the stream's choice becomes the default
            self.shared.settings.update(settings)
        # resume-replay: a positioned play restarts at its chunk's start
        await self.start(track_id, enhanced, pos, is_seek=pos > 0, **settings,
                         from_chunk_start="resume-replay" in self.inj and pos > 0)
        # every play sends a recommendation, computed off the loop, so it lands
        # between meta/frame pairs (to every client under shared-state, as Auralis)
        t = asyncio.get_running_loop().create_task(self.broadcast_recommendation(track_id))
        self.shared.background.add(t)
        t.add_done_callback(self.shared.background.discard)

    async def broadcast_recommendation(self, track_id: int) -> None:
        track = self.shared.lib.get(track_id)
        if track is None:
            return
        try:
            data = await asyncio.to_thread(recommendation, self.shared.lib, track)
        except Exception:
            return  # optional, as in Auralis: never fails playback
        msg = {"type": "mastering_recommendation", "data": data}
        # one task per recipient: a reader stalled under backpressure delays
        # only its own copy (a send is never cancelled halfway through a frame)
        # only to the client that played; shared-state sends it to every
        # client, as Auralis does (#4542 broadcast())
        for other in list(self.shared.sessions) if "shared-state" in self.inj else [self]:
            t = asyncio.get_running_loop().create_task(other.send_quietly(msg))
            self.shared.background.add(t)
            t.add_done_callback(self.shared.background.discard)

    async def send_quietly(self, msg: dict[str, Any]) -> None:
        try:
            await self.send.json(msg)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass

    async def seek(self, data: dict[str, Any]) -> None:
        track_id = self._track_id(data)
        if track_id is None:
            await self.send.json(_error("invalid_track_id", "track_id must be a positive integer"))
            return
        pos = data.get("position", 0)
        if isinstance(pos, bool) or not isinstance(pos, (int, float)) or not math.isfinite(pos) or pos < 0:
            await self.send.json(_error("invalid_seek_position", "position must be a non-negative number"))
            return
        # stale-after-seek: the interrupted stream's next chunk, if it was this track's and still running
        running = self.task is not None and not self.task.done()
        prev = dict(self.progress) if running else {}
        await self.cancel()
        await self.send.json({"type": "seek_started", "data": {"track_id": track_id, "position": pos}})
        # Auralis picks the seek's path from the global enhancement switch; the
        # reference keeps the path of the stream being sought, so a normal-path
        # listener stays bit-exact. The enhanced seek path always flags is_seek,
        # the normal one only past 0 (stream_normal.py).
        enhanced = self.stream_type == "enhanced"
        s = self.stream_settings or {"preset": self.shared.settings["preset"],
                                     "intensity": self.shared.settings["intensity"]}
        stale = None
        if "stale-after-seek" in self.inj and prev.get("track_id") == track_id and "chunk" in prev:
            stale = (bool(prev["enhanced"]), int(prev["chunk"]) + 1)
        await self.start(track_id, enhanced, float(pos), is_seek=enhanced or pos > 0, **s,
                         audio_shift_s=seek_offset_s() if "seek-offset" in self.inj else 0.0, stale_chunk=stale)

    async def start(self, track_id: int, enhanced: bool, pos: float, *, is_seek: bool, preset: str,
                    intensity: float, **position_injections: Any) -> None:
        await self.cancel()
        self.gates = streaming.Gates()  # fresh events per stream, both open (as Auralis)
        self.stream_type = "enhanced" if enhanced else "normal"
        self.progress = {}
        self.task = asyncio.get_running_loop().create_task(
            self.stream(track_id, enhanced, pos, is_seek, preset, intensity, self.gates, **position_injections))

    async def stream(self, track_id: int, enhanced: bool, pos: float, is_seek: bool, preset: str,
                     intensity: float, gates: streaming.Gates, **position_injections: Any) -> None:
        stype = "enhanced" if enhanced else "normal"

        async def stream_error(message: str, code: str = "STREAMING_ERROR") -> None:
            await self.send.json({"type": "audio_stream_error", "data": {
                "track_id": track_id, "error": message, "code": code, "stream_type": stype}})

        try:
            # in this task, as Auralis's wait_for(acquire) is on its Python
            # (3.12+): on 3.11 wait_for acquires in a task of its own
            async with asyncio.timeout(self.shared.opts.acquire_timeout):
                await self.shared.slots.acquire()
        except (TimeoutError, asyncio.TimeoutError):
            await stream_error("Server busy - too many active streams")
            return
        self.shared.active_streams += 1
        try:
            track = self.shared.lib.get(track_id)
            if track is None:
                await stream_error("Track not found")
                return
            try:
                audio = await asyncio.to_thread(self.shared.lib.audio, track)
            except Exception as e:
                # an unreadable or vanished file raises OSError/RuntimeError like a
                # dropped client does below; answered here, it gets its clean error
                if "bad-file-hang" in self.inj:
                    await asyncio.Event().wait()  # never set: no error, no end; only a cancel frees the slot
                await stream_error(traceback.format_exc() if "bad-file-traceback" in self.inj
                                   else f"Audio file could not be read: {type(e).__name__}")
                return
            await streaming.run_stream(self.send, track=track, audio=audio, enhanced=enhanced, position=pos,
                                       is_seek=is_seek, gates=gates, inj=self.inj, preset=preset,
                                       intensity=intensity, queue_frames=self.shared.opts.send_queue_frames,
                                       progress=self.progress, **position_injections)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass  # the client went away mid-stream: nothing left to tell it
        except Exception as e:  # a clean error to the client, never a silent end
            try:
                await stream_error(f"Audio streaming failed: {type(e).__name__}")
            except Exception:
                pass
        finally:
            self.shared.active_streams -= 1
            if "slot-leak-on-cancel" in self.inj:
                await drain_reraising(asyncio.get_running_loop().create_task(asyncio.sleep(3600)))
            self.shared.slots.release()

    async def cancel(self) -> None:
        t, self.task = self.task, None
        if t is not None and not t.done():
            t.cancel()
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
