"""The Auralis WebSocket protocol, as a client that records what it receives.

It behaves like the real web client where that matters to the server: no
Origin header from loopback, permessage-deflate offered as browsers do, JSON
pings answered, commands kept under the 10 messages/s limit, stale epochs
dropped after a seek, flow control with buffer_full/buffer_ready at the
browser's fill levels. Everything it sees goes into the run directory as it
arrives; protocol violations are recorded, never raised.
"""
from __future__ import annotations

import collections
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .recorder import JsonlWriter, StreamRecorder
from .ws_transport import Binary, Text, WSClient, WSClosed

EXEMPT_FROM_RATE_LIMIT = {"ping", "pong", "heartbeat"}
# A browser's PCMStreamBuffer holds ~300 s; it sends buffer_full above 75% and
# buffer_ready below 50% (useAudioStreamingCore.ts). Seconds of audio ahead.
BROWSER_BUFFER_S = 300.0
BROWSER_FULL_AT = 0.75
BROWSER_READY_AT = 0.50
# the web client's enhancement defaults, used until the server announces its own
DEFAULT_PRESET = "adaptive"
DEFAULT_INTENSITY = 1.0

_ids = itertools.count(1)
_ids_lock = threading.Lock()


def next_id() -> int:
    with _ids_lock:
        return next(_ids)


class RateLimiter:
    """Sliding window kept below the server's 10 messages/s (ping/pong exempt):
    at most ``per_window`` sends in any ``window_s``. A token bucket with a
    burst lets burst + rate messages into one second (4 + 8 = 12 once made a
    clean Seeker trip the limit). The margin is wide because the server
    stamps arrival: a server busy sending reads several queued messages at once."""

    def __init__(self, per_window: int = 6, window_s: float = 1.2):
        self.per_window = per_window
        self.window_s = window_s
        self.sent: collections.deque[float] = collections.deque()

    def delay(self) -> float:
        """Seconds until a send may go (0: now)."""
        now = time.monotonic()
        while self.sent and now - self.sent[0] >= self.window_s:
            self.sent.popleft()
        if len(self.sent) < self.per_window:
            return 0.0
        return self.window_s - (now - self.sent[0]) + 0.001

    def take(self) -> None:
        self.sent.append(time.monotonic())

    def wait(self) -> None:
        while (d := self.delay()) > 0:
            time.sleep(d)
        self.take()


def _position(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 else 0.0


def _positive_int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and 0 < v < 10_000_000 else None


@dataclass
class ClientProfile:
    """How a listener consumes audio.

    read_rate: None reads as fast as the socket delivers (a browser filling its
    buffer); a number reads at that multiple of real time (0.25 = a consumer
    that keeps up with only a quarter of playback speed); 0 stops reading.
    flow_control: send buffer_full/buffer_ready at the browser's fill levels.
    """

    name: str = "browser"
    read_rate: float | None = None
    flow_control: bool = True
    buffer_s: float = BROWSER_BUFFER_S
    stop_reading_after_s: float | None = None


@dataclass
class StreamState:
    recorder: StreamRecorder
    epoch: int
    track_id: Any
    stream_type: str
    start: dict[str, Any]
    expected_seq: int = 0
    pending_meta: dict[str, Any] | None = None
    chunks_seen: set[int] = field(default_factory=set)


class AuralisSession:
    """One WebSocket connection to the backend, recording every stream on it."""

    def __init__(
        self,
        base_url: str,
        run_dir: Path,
        *,
        user: str,
        scenario: str,
        tracks: dict[Any, dict[str, Any]],
        profile: ClientProfile | None = None,
        compression: bool = True,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
    ):
        self.ws_url = base_url.replace("http://", "ws://").rstrip("/") + "/ws"
        self.run_dir = Path(run_dir)
        self.user = user
        self.scenario = scenario
        self.tracks = tracks
        self.profile = profile or ClientProfile()
        self.compression = compression
        self.on_event = on_event or (lambda kind, data: None)
        self.ws: WSClient | None = None
        self.limiter = RateLimiter()
        self._pumping = False  # inside pump: a held-back send sleeps instead of pumping again
        self.conn_log: JsonlWriter | None = None
        self.current: StreamState | None = None
        self.current_epoch: int | None = None
        self.streams: list[StreamState] = []
        self.flow_paused = False
        self.play_sent_t: float | None = None
        self.play_request: dict[str, Any] | None = None
        self.play_reason: str | None = None
        # the last play_normal/play_enhanced, which a browser re-issues when its
        # socket reconnects (websocketConnectionCore.ts replayQueueAndResume)
        self.last_stream_command: dict[str, Any] | None = None
        # what the server announced on connect (enhancement_settings_changed);
        # the web client sends its preset and intensity with every seek
        self.enhancement: dict[str, Any] = {"preset": DEFAULT_PRESET, "intensity": DEFAULT_INTENSITY}
        self.closed_reason: str | None = None
        self.play_error: dict[str, Any] | None = None
        self._stale_meta = False
        self.conn_id = f"{user}-c{next_id():04d}"

    # -- connection -----------------------------------------------------------
    def connect(self) -> "AuralisSession":
        t0 = time.time()
        self.ws = WSClient(self.ws_url, compression=self.compression).connect()
        self.conn_log = JsonlWriter(self.run_dir / "load" / "connections" / f"{self.conn_id}.jsonl")
        self.conn_log.write({"t": time.time(), "kind": "connected", "connect_ms": (time.time() - t0) * 1000,
                             "extensions": self.ws.extensions, "user": self.user, "compression": self.compression})
        self.on_event("connected", {"extensions": self.ws.extensions})
        return self

    def send(self, type_: str, data: dict[str, Any] | None = None, *, held: bool = False) -> None:
        """held: the caller has already waited for the rate limiter."""
        assert self.ws is not None
        if type_ not in EXEMPT_FROM_RATE_LIMIT and not held:
            self._hold_for_rate_limit()
        msg = {"type": type_, "data": data or {}}
        t = time.time()
        try:
            self.ws.send_text(json.dumps(msg))
        except WSClosed:
            if type_ in EXEMPT_FROM_RATE_LIMIT:
                return  # a pong for a connection the server has closed: the next read says so
            raise
        if self.current and type_ not in EXEMPT_FROM_RATE_LIMIT:
            self.current.recorder.event(type_, msg, t, direction="out")
        elif self.conn_log:
            self.conn_log.write({"t": t, "kind": "sent", "msg": msg})

    def _hold_for_rate_limit(self) -> None:
        """A browser that holds a command back keeps receiving meanwhile. A
        client that slept here instead left the audio in its socket and
        stamped it late when it read again: a seek storm's held-back seek
        read as a 1.7 s gap and a playback underrun of the server's. Inside
        a handler of pump (flow control answering a frame) it sleeps, so no
        handler runs inside another."""
        receiving = True
        while (d := self.limiter.delay()) > 0:
            if not receiving or self.ws is None or self._pumping:
                time.sleep(d)
            elif self.pump(lambda: self.limiter.delay() <= 0, deadline=time.time() + d) == "closed":
                receiving = False  # nothing more to read: wait out the window; the send reports the close
        self.limiter.take()

    def play(self, track_id: Any, *, enhanced: bool, start_position: float | None = None,
             preset: str | None = None, intensity: float | None = None, reason: str | None = None) -> None:
        data: dict[str, Any] = {"track_id": track_id}
        if start_position:
            data["start_position"] = start_position
        if enhanced:
            if preset:
                data["preset"] = preset
            if intensity is not None:
                data["intensity"] = intensity
        self._send_request({"type": "play_enhanced" if enhanced else "play_normal", "data": data}, reason)
        self.flow_paused = False

    def seek(self, track_id: Any, position: float, *, preset: str | None = None,
             intensity: float | None = None) -> None:
        """A seek as the web client sends it (useEnhancedSeek.ts): always with
        the preset and intensity of the current enhancement settings."""
        data = {"track_id": track_id, "position": position,
                "preset": preset or self.enhancement.get("preset") or DEFAULT_PRESET,
                "intensity": intensity if intensity is not None else self.enhancement.get("intensity", DEFAULT_INTENSITY)}
        self._send_request({"type": "seek", "data": data}, None)

    def resume(self, command: dict[str, Any], position: float) -> None:
        """Re-issue a stream command at a position, as the web client does
        after its socket reconnects: the same command and data, with
        start_position set to the position played so far."""
        data = {**(command.get("data") or {}), "start_position": float(position)}
        self._send_request({"type": command["type"], "data": data}, "resume")
        self.flow_paused = False

    def resume_point(self) -> tuple[dict[str, Any], float] | None:
        """(last stream command, position played so far) of the newest stream:
        the audio received over the sample rate, plus where that stream started
        in the track. None before any stream command or any audio."""
        if self.last_stream_command is None or not self.streams:
            return None
        rec = self.streams[-1].recorder
        if rec.frames == 0:
            return None
        start = rec.info.get("start_position") or 0.0
        if not start and rec.info.get("request"):
            start = _position(((rec.info["request"] or {}).get("data") or {}).get("start_position"))
        return self.last_stream_command, float(start) + rec.frames / max(1, rec.sample_rate)

    def _send_request(self, request: dict[str, Any], reason: str | None) -> None:
        # held back before it becomes the pending request: a stream that
        # starts while it waits answers an earlier request, not this one
        self._hold_for_rate_limit()
        self.play_request = request
        self.play_reason = reason
        self.play_sent_t = time.time()
        self.play_error = None
        if request["type"] in ("play_normal", "play_enhanced"):
            self.last_stream_command = request
        self.send(request["type"], request["data"], held=True)

    def close(self, *, abrupt: bool = False, reason: str = "client_closed") -> None:
        if self.current:
            self._finish_current("disconnected" if abrupt else reason)
        if self.ws:
            self.ws.close(abrupt=abrupt)
            self.ws = None
        if self.conn_log:
            self.conn_log.write({"t": time.time(), "kind": "closed", "abrupt": abrupt, "reason": reason})
            self.conn_log.close()
            self.conn_log = None

    # -- receiving ---------------------------------------------------------------
    def pump(self, until: Callable[[], bool], *, deadline: float, idle_timeout: float = 60.0) -> str:
        """Receive and handle messages until `until()` is true, the deadline
        passes, or the connection ends. Returns why it stopped."""
        assert self.ws is not None
        self._pumping, outer = True, self._pumping
        try:
            return self._pump(until, deadline=deadline, idle_timeout=idle_timeout)
        finally:
            self._pumping = outer

    def _pump(self, until: Callable[[], bool], *, deadline: float, idle_timeout: float) -> str:
        last_msg = time.monotonic()
        while True:
            if until():
                return "done"
            if time.time() >= deadline:
                return "deadline"
            if self._should_throttle():
                time.sleep(0.02)
                continue
            try:
                msg = self.ws.recv(timeout=min(1.0, max(0.05, deadline - time.time())))
            except TimeoutError:
                if time.monotonic() - last_msg > idle_timeout:
                    if self.current:
                        self.current.recorder.violation(
                            "stream_never_ended", f"no message for {idle_timeout:.0f} s while a stream was open")
                        self._finish_current("never_ended")
                    return "idle"
                continue
            except WSClosed as e:
                self.closed_reason = f"closed {e.code} {e.reason}".strip()
                if self.current:
                    self.current.recorder.violation(
                        "stream_never_ended", f"connection closed ({e.code}) before audio_stream_end")
                    self._finish_current("connection_closed", close_code=e.code)
                return "closed"
            last_msg = time.monotonic()
            if isinstance(msg, Binary):
                self._on_binary(msg)
            else:
                self._on_text(msg)

    def _should_throttle(self) -> bool:
        """A slow consumer stops calling recv; TCP backpressure does the rest."""
        p = self.profile
        cur = self.current
        if cur is None or cur.recorder.first_audio_t is None:
            return False
        elapsed = time.time() - cur.recorder.first_audio_t
        if p.stop_reading_after_s is not None and elapsed >= p.stop_reading_after_s:
            return True
        if p.read_rate is None:
            return False
        if p.read_rate <= 0:
            return True
        received_s = cur.recorder.frames / max(1, cur.recorder.sample_rate)
        return received_s > p.read_rate * elapsed + 0.5

    def _on_text(self, msg: Text) -> None:
        try:
            obj = json.loads(msg.data)
        except json.JSONDecodeError:
            self._violation("malformed_json", f"unparseable text frame: {msg.data[:80]!r}", msg.t)
            return
        if not isinstance(obj, dict):
            self._violation("malformed_message", "text frame is not a JSON object", msg.t)
            return
        kind = str(obj.get("type"))
        data = obj.get("data") if isinstance(obj.get("data"), dict) else {}
        if kind == "ping":
            self.send("pong")
            self._log_conn(kind, obj, msg.t)
            return
        if kind == "audio_stream_start":
            self._on_start(obj, data, msg.t)
        elif kind == "audio_chunk_meta":
            self._on_meta(obj, data, msg.t)
        elif kind == "audio_stream_end":
            self._on_end(obj, data, msg.t)
        elif kind == "audio_stream_error":
            if self.current:
                self.current.recorder.event(kind, obj, msg.t)
                self._finish_current("errored", error=data)
            else:
                self._log_conn(kind, obj, msg.t)
                self.play_error = obj
            self.on_event("stream_error", data)
        elif kind == "error":
            if self.current:
                self.current.recorder.event(kind, obj, msg.t)
            else:
                self._log_conn(kind, obj, msg.t)
                self.play_error = obj
            self.on_event("error", obj)
        else:
            if kind == "enhancement_settings_changed":
                self._on_settings(data)
            # broadcasts (player_state, mastering_recommendation, ...) may arrive
            # between a meta and its frame; they belong to the connection
            self._log_conn(kind, obj, msg.t)

    def _on_settings(self, data: dict) -> None:
        if isinstance(data.get("preset"), str) and data["preset"]:
            self.enhancement["preset"] = data["preset"]
        v = data.get("intensity")
        if isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1:
            self.enhancement["intensity"] = float(v)

    def _on_start(self, obj: dict, data: dict, t: float) -> None:
        epoch = data.get("stream_epoch")
        if self.current:
            # a new start ends the previous stream; after a seek that is by design
            self._finish_current("superseded")
        sid = f"{self.user}-s{next_id():04d}"
        track = self.tracks.get(data.get("track_id")) or {}
        is_seek = bool(data.get("is_seek"))
        info = {
            "stream_id": sid, "user": self.user, "scenario": self.scenario, "client_profile": self.profile.name,
            "connection": self.conn_id, "track_id": data.get("track_id"), "track_name": track.get("name"),
            "source": track.get("file"), "stream_type": data.get("stream_type"), "stream_epoch": epoch,
            "is_seek": is_seek, "request": self.play_request, "request_t": self.play_sent_t,
            **({"request_reason": self.play_reason} if self.play_reason else {}),
            # where the audio starts is what the server says it streams, not what
            # this client last asked for: during rapid seeks they differ
            "start_position": _position(data.get("seek_position")) if is_seek else 0.0,
            "compression": self.compression, "extensions": self.ws.extensions if self.ws else [],
        }
        rate, channels = _positive_int(data.get("sample_rate")), _positive_int(data.get("channels"))
        rec = StreamRecorder(self.run_dir / "streams" / sid, sample_rate=rate or 44100, channels=channels or 2,
                             info=info)
        if not rate or not channels:
            rec.violation("bad_stream_start", f"audio_stream_start has sample_rate={data.get('sample_rate')!r} "
                          f"channels={data.get('channels')!r}; recording as 44100 Hz stereo", t)
        if self.play_request and self.play_sent_t:
            rec.event(self.play_request["type"], self.play_request, self.play_sent_t, direction="out")
        rec.event("audio_stream_start", obj, t)
        self.current = StreamState(rec, epoch, data.get("track_id"), data.get("stream_type"), data)
        self.current_epoch = epoch
        self.streams.append(self.current)
        self.on_event("stream_start", info)

    def _on_meta(self, obj: dict, data: dict, t: float) -> None:
        epoch = data.get("stream_epoch")
        cur = self.current
        if cur is None or (epoch is not None and epoch != self.current_epoch):
            # stale epoch after a seek (or audio before any start): drop it and its frame
            self._stale_meta = True
            self._log_conn("stale_chunk_meta", obj, t)
            return
        self._stale_meta = False
        rec = cur.recorder
        if cur.pending_meta is not None:
            rec.violation("meta_without_frame", f"audio_chunk_meta seq {cur.pending_meta.get('seq')} had no binary frame", t)
        seq = data.get("seq")
        if isinstance(seq, int):
            if seq != cur.expected_seq:
                rec.violation("seq_gap", f"seq {seq} after expecting {cur.expected_seq} in epoch {epoch}", t,
                              expected=cur.expected_seq, got=seq)
            cur.expected_seq = seq + 1
        cur.pending_meta = data
        rec.event("audio_chunk_meta", obj, t)

    def _on_binary(self, msg: Binary) -> None:
        cur = self.current
        if self._stale_meta:
            self._stale_meta = False
            self._log_conn("stale_binary", {"bytes": len(msg.data)}, msg.t)
            return
        if cur is None:
            self._log_conn("binary_without_stream", {"bytes": len(msg.data)}, msg.t)
            self._violation("binary_without_meta", f"binary frame of {len(msg.data)} bytes outside any stream", msg.t)
            return
        rec = cur.recorder
        meta = cur.pending_meta
        cur.pending_meta = None
        if meta is None:
            rec.violation("binary_without_meta", f"binary frame of {len(msg.data)} bytes without audio_chunk_meta", msg.t)
        else:
            expect = meta.get("sample_count")
            if isinstance(expect, int) and expect * 4 != len(msg.data):
                rec.violation("sample_count_mismatch",
                              f"meta says {expect} floats, frame carries {len(msg.data) // 4}", msg.t,
                              expected=expect, got=len(msg.data) // 4)
            ci = meta.get("chunk_index")
            if isinstance(ci, int):
                cur.chunks_seen.add(ci)
        if len(msg.data) % (4 * rec.channels):
            rec.violation("partial_sample_frame", f"{len(msg.data)} bytes is not whole stereo float32 frames", msg.t)
        rec.audio(msg.data, msg.t)
        self.on_event("audio", {"bytes": len(msg.data)})
        self._flow_control()

    def _flow_control(self) -> None:
        p = self.profile
        cur = self.current
        if not p.flow_control or cur is None or cur.recorder.first_audio_t is None:
            return
        played = time.time() - cur.recorder.first_audio_t
        ahead = cur.recorder.frames / cur.recorder.sample_rate - played
        if not self.flow_paused and ahead > p.buffer_s * BROWSER_FULL_AT:
            self.flow_paused = True
            self.send("buffer_full")
        elif self.flow_paused and ahead < p.buffer_s * BROWSER_READY_AT:
            self.flow_paused = False
            self.send("buffer_ready")

    def _on_end(self, obj: dict, data: dict, t: float) -> None:
        cur = self.current
        if cur is None:
            self._log_conn("audio_stream_end", obj, t)
            return
        rec = cur.recorder
        rec.event("audio_stream_end", obj, t)
        if cur.pending_meta is not None:
            rec.violation("meta_without_frame", "stream ended with a meta whose frame never came", t)
        total = data.get("total_samples")
        if isinstance(total, (int, float)) and int(total) != rec.frames and int(total) != rec.frames * rec.channels:
            rec.violation("end_totals_mismatch",
                          f"audio_stream_end total_samples={int(total)} but {rec.frames} frames were delivered", t,
                          declared=int(total), delivered=rec.frames)
        reason = data.get("reason") or "completed"
        self._finish_current(str(reason), end=data)
        self.on_event("stream_end", data)

    def _finish_current(self, ended: str, **summary: Any) -> None:
        cur = self.current
        if cur is None:
            return
        self.current = None
        cur.recorder.close(ended, chunks_seen=sorted(cur.chunks_seen), **summary)
        self.on_event("stream_closed", {"ended": ended})

    def _violation(self, kind: str, detail: str, t: float) -> None:
        if self.current:
            self.current.recorder.violation(kind, detail, t)
        else:
            self._log_conn("violation", {"kind": kind, "detail": detail}, t)

    def _log_conn(self, kind: str, obj: Any, t: float) -> None:
        if self.conn_log:
            self.conn_log.write({"t": t, "kind": kind, "msg": obj})

    # -- helpers for scenarios ---------------------------------------------------
    def stream_done(self) -> bool:
        """True once the stream started by the last play/seek has closed."""
        if self.current is None and self.play_error is not None:
            return True
        return bool(self.streams) and self.current is None and (
            self.play_sent_t is None or self.streams[-1].recorder.info.get("request_t") == self.play_sent_t)
