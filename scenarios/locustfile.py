"""Locust users that behave like the backend's real clients, and like the
clients that hurt it. Run by instrument.run as its own process:

    locust -f scenarios/locustfile.py --headless ... Listener SlowListener ...

Configuration comes from the JSON file named by EARSHOT_CONFIG (written by the
wrapper into the run directory). Raw timings go to the run directory; Locust's
own stats get the same numbers as custom request types so its CSV/HTML show
them too (Locust rounds percentiles; our raw files do not).
"""
from __future__ import annotations

import itertools
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import gevent
from locust import HttpUser, User, events, task
from locust.exception import StopUser

from scenarios.protocol_client import AuralisSession, ClientProfile
from scenarios.recorder import JsonlWriter
from scenarios.ws_transport import WSClosed, WSRejected

CONFIG: dict[str, Any] = json.loads(Path(os.environ["EARSHOT_CONFIG"]).read_text()) if os.environ.get(
    "EARSHOT_CONFIG") else {"run_dir": "/tmp/earshot-locust", "tracks": [], "options": {}, "users": {}}
RUN_DIR = Path(CONFIG["run_dir"])
OPTS: dict[str, Any] = CONFIG.get("options", {})
TRACKS: list[dict[str, Any]] = [t for t in CONFIG.get("tracks", []) if t.get("track_id") is not None]
TRACKS_BY_ID = {t["track_id"]: t for t in TRACKS}
END_T: float = float(CONFIG.get("end_t") or (time.time() + 60))
COMPRESSION = bool(CONFIG.get("compression", True))
SCENARIO = CONFIG.get("scenario", "adhoc")
_user_numbers = itertools.count()


def between(lo: float, hi: float):
    """Locust's `between`, cut short at the load's end: a user thinking past
    it would hold the run open for nothing."""
    def wait(_user: Any) -> float:
        return max(0.0, min(random.uniform(lo, hi), END_T - time.time()))
    return wait


_DONE: set[str] = set()  # users with no more work (finite scenarios end when all are)
STATS = {"active_streams": 0, "bytes": 0, "streams": 0, "errors": 0, "cycles": 0}
_events_log: JsonlWriter | None = None
_requests_log: JsonlWriter | None = None


def load_event(kind: str, **data: Any) -> None:
    global _events_log
    if _events_log is None:
        _events_log = JsonlWriter(RUN_DIR / "load" / "events.jsonl")
    _events_log.write({"t": time.time(), "kind": kind, "pid": os.getpid(), **data})


def _fire(name: str, ms: float, length: int = 0, exc: Exception | None = None, kind: str = "WS") -> None:
    env = _ENV.get("env")
    if env is not None:
        env.events.request.fire(request_type=kind, name=name, response_time=ms, response_length=length,
                                exception=exc, context={})


_ENV: dict[str, Any] = {}


@events.init.add_listener
def _on_init(environment, **_kw):
    _ENV["env"] = environment
    gevent.spawn(_progress_writer)


@events.test_start.add_listener
def _on_test_start(environment, **_kw):
    # the load's seconds count from here, not from when the wrapper wrote the config
    global END_T
    if CONFIG.get("duration_s") is not None:
        END_T = min(END_T, time.time() + float(CONFIG["duration_s"]))


@events.request.add_listener
def _on_request(request_type, name, response_time, response_length, exception=None, **_kw):
    global _requests_log
    if request_type not in ("GET", "POST"):
        return
    if _requests_log is None:
        _requests_log = JsonlWriter(RUN_DIR / "load" / "requests.jsonl")
    _requests_log.write({"t": time.time(), "name": name, "method": request_type, "ms": response_time,
                         "ok": exception is None, "error": str(exception) if exception else None})


_USERS_MAX = [0]


def _progress_writer() -> None:
    path = RUN_DIR / "load" / f"progress-{os.getpid()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        env = _ENV.get("env")
        users = env.runner.user_count if env is not None and env.runner is not None else 0
        _USERS_MAX[0] = max(_USERS_MAX[0], users, len(_DONE))  # the wrapper checks every requested user started
        expected = sum(int(c) for c in (CONFIG.get("users") or {}).values())
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"t": time.time(), "users": users, "users_max": _USERS_MAX[0], **STATS}))
        os.replace(tmp, path)
        if expected and len(_DONE) >= expected and env is not None and env.runner is not None \
                and not CONFIG.get("locust_workers"):
            load_event("all_users_done")
            # a finite scenario has nothing left to do, and past the load's end
            # nobody starts anything: Locust's own --run-time is only the backstop
            env.runner.quit()
            return
        # past the load's end users come back from their last step within moments
        gevent.sleep(0.25 if time.time() >= END_T else 1.0)


@events.spawning_complete.add_listener
def _on_spawned(user_count, **_kw):
    # users that stream for less than the progress writer's second are still counted
    _USERS_MAX[0] = max(_USERS_MAX[0], int(user_count))


def _on_session_event(kind: str, data: dict[str, Any]) -> None:
    if kind == "stream_start":
        STATS["active_streams"] += 1
        STATS["streams"] += 1
    elif kind == "stream_closed":
        STATS["active_streams"] = max(0, STATS["active_streams"] - 1)
    elif kind == "audio":
        STATS["bytes"] += data["bytes"]
    elif kind in ("error", "stream_error"):
        STATS["errors"] += 1


class _AuralisUser(User):
    """Base: one WebSocket session per user, replaced when it drops."""

    abstract = True
    wait_time = between(0.2, 0.8)
    profile = ClientProfile()
    enhanced = False

    def on_start(self) -> None:
        self.number = next(_user_numbers)
        self.name = f"{type(self).__name__.lower()}{self.number}"
        self.session: AuralisSession | None = None
        self.plays = 0

    def on_stop(self) -> None:
        if self.session:
            self.session.close(reason="client_stopped")
            self.session = None

    # -- helpers -------------------------------------------------------------
    def track(self, offset: int = 0, placeable: bool = False) -> dict[str, Any]:
        """placeable: only tracks on which a stream's position can be told
        (analysis.signals.UNPLACEABLE_TRACKS), for users that position streams;
        a user's own tracks carry no mark and all count."""
        pool = [t for t in TRACKS if t.get("placeable", True)] if placeable else TRACKS
        pool = pool or TRACKS
        if not pool:
            raise StopUser()
        return pool[(self.number + offset) % len(pool)]

    def ensure_session(self) -> AuralisSession:
        if self.session is not None and self.session.ws is not None and getattr(self.session.ws, "closed", None):
            # the server closed it (a close frame read with the last messages)
            self.session.close(reason="server_closed")
            self.session = None
        if self.session is None or self.session.ws is None:
            t0 = time.time()
            try:
                self.session = AuralisSession(
                    CONFIG["base_url"], RUN_DIR, user=self.name, scenario=SCENARIO, tracks=TRACKS_BY_ID,
                    profile=self.profile, compression=COMPRESSION, on_event=_on_session_event,
                ).connect()
                _fire("ws connect", (time.time() - t0) * 1000)
            except (OSError, WSRejected, WSClosed, TimeoutError) as e:
                STATS["errors"] += 1
                _fire("ws connect", (time.time() - t0) * 1000, exc=e)
                load_event("connect_failed", user=self.name, error=str(e))
                self.session = None
                gevent.sleep(1.0)
                raise _Retry() from None
        return self.session

    def stream_once(self, track: dict[str, Any], *, enhanced: bool, start_position: float | None = None,
                    until=None) -> str:
        s = self.ensure_session()
        s.play(track["track_id"], enhanced=enhanced, start_position=start_position)
        why = s.pump(until or s.stream_done, deadline=self.stream_deadline())
        self.record_ttfa(s)
        if why == "deadline" and OPTS.get("play_to_end"):
            self.report_stream_timeout(s)
        if why == "closed":
            s.close(reason="server_closed")
            self.session = None
        return why

    def stream_deadline(self) -> float:
        """Until the load ends; a scenario that plays each stream to its end
        (`play_to_end`) gives each stream `stream_timeout_s` instead."""
        if OPTS.get("play_to_end"):
            return time.time() + float(OPTS.get("stream_timeout_s", 300))
        return END_T

    def report_stream_timeout(self, s: AuralisSession) -> None:
        """The per-stream timeout fired: say so in the stream (a violation the
        analysis reports) and in the load's events (run.json counts them)."""
        timeout = float(OPTS.get("stream_timeout_s", 300))
        cur = s.current
        detail = f"the stream had not ended after the per-stream timeout of {timeout:g} s"
        if cur is not None:
            cur.recorder.violation("stream_timeout", detail, timeout_s=timeout,
                                   delivered_s=cur.recorder.frames / max(1, cur.recorder.sample_rate))
            sid = cur.recorder.info.get("stream_id")
            s.close(reason="stream_timeout")
            self.session = None
        else:
            sid = None
        load_event("stream_timeout", user=self.name, stream=sid, timeout_s=timeout)

    def record_ttfa(self, s: AuralisSession) -> None:
        if not s.streams:
            return
        rec = s.streams[-1].recorder
        if rec.first_audio_t and s.play_sent_t and not getattr(rec, "_ttfa_fired", False):
            rec._ttfa_fired = True
            _fire(f"ttfa {s.streams[-1].stream_type}", (rec.first_audio_t - s.play_sent_t) * 1000, rec.data_bytes)

    def idle_until_end(self) -> None:
        if self.name in _DONE:
            # Locust's graceful stop waits out the task in progress: a user with
            # nothing left to do naps briefly, so the quit it made possible is not
            # held up to 5 s (smoke's load stage: 6.5 s for two sub-second streams)
            gevent.sleep(0.1)
            return
        gevent.sleep(max(0.1, min(5.0, END_T - time.time())))

    @task
    def step(self) -> None:
        if time.time() >= END_T:
            _DONE.add(self.name)  # past the load's end (a play_to_end stream ran past it): nothing more to start
            self.idle_until_end()
            return
        try:
            self.scenario_step()
        except _Retry:
            pass
        except WSClosed as e:  # the server closed the connection under a command: a new one next step
            load_event("server_closed", user=self.name, code=e.code, reason=str(e.reason)[:200])
            if self.session is not None:
                self.session.close(reason="server_closed")
                self.session = None

    def scenario_step(self) -> None:
        limit = OPTS.get("plays_per_user")
        if limit is not None and self.plays >= int(limit):
            _DONE.add(self.name)  # nothing more to do: the run may end early
            self.idle_until_end()
            return
        self.plays += 1
        self.stream_once(self.track(self.plays - 1), enhanced=self.enhanced)
        if limit is None or self.plays < int(limit):
            self.listen_out()

    def listen_out(self) -> None:
        """A listener asks for the next track when this one has finished
        playing, not when its bytes have arrived (the stream runs far faster
        than real time); `binge` asks at once, to load the server harder."""
        if OPTS.get("binge") or self.session is None or not self.session.streams:
            return
        rec = self.session.streams[-1].recorder
        if rec.first_audio_t is None:
            return
        ends = rec.first_audio_t + rec.frames / max(1, rec.sample_rate)
        gevent.sleep(max(0.0, min(ends, END_T) - time.time()))


class _Retry(Exception):
    pass


class Listener(_AuralisUser):
    """A browser tab playing a track with the normal path, reading as fast as
    the socket delivers, with the browser's buffer_full/buffer_ready."""


class EnhancedListener(_AuralisUser):
    """A browser tab playing with enhancement (the mastering path)."""

    enhanced = True


class SlowListener(_AuralisUser):
    """A consumer that keeps up with only a fraction of real time."""

    def on_start(self) -> None:
        super().on_start()
        self.profile = ClientProfile("slow", read_rate=float(OPTS.get("slow_read_rate", 0.25)), flow_control=False)


class StalledListener(_AuralisUser):
    """A consumer that stops reading entirely after a second of audio and
    holds the connection open (a frozen tab)."""

    def on_start(self) -> None:
        super().on_start()
        self.profile = ClientProfile("stalled", stop_reading_after_s=float(OPTS.get("stall_after_s", 1.0)),
                                     flow_control=False)

    def scenario_step(self) -> None:
        if self.plays:
            self.idle_until_end()
            return
        self.plays += 1
        self.stream_once(self.track(), enhanced=False)


class FlowControlListener(_AuralisUser):
    """A player with a small buffer that sends buffer_full/buffer_ready often."""

    def on_start(self) -> None:
        super().on_start()
        self.profile = ClientProfile("flow-control", read_rate=1.5, flow_control=True,
                                     buffer_s=float(OPTS.get("flow_buffer_s", 20.0)))


class Disconnector(_AuralisUser):
    """Plays, then drops the TCP connection mid-chunk without a close frame;
    one connect/stream/disconnect cycle per step."""

    wait_time = between(0.0, 0.1)

    def scenario_step(self) -> None:
        s = self.ensure_session()
        track = self.track(self.plays)
        self.plays += 1
        frames_wanted = random.randint(1, 6)
        s.play(track["track_id"], enhanced=bool(self.plays % 2 == 0 and OPTS.get("disconnect_enhanced", True)))
        s.pump(lambda: bool(s.current and s.current.recorder.binary_frames >= frames_wanted) or s.stream_done(),
               deadline=min(END_T, time.time() + 30))
        self.record_ttfa(s)
        s.close(abrupt=True, reason="disconnected")
        self.session = None
        STATS["cycles"] += 1
        load_event("cycle_done", user=self.name, frames=frames_wanted)
        gevent.sleep(float(OPTS.get("cycle_pause_s", 0.05)))


class Seeker(_AuralisUser):
    """Seeks rapidly, including while a chunk is still arriving, the way the
    web client positions each path: on the enhanced path a `seek` with its
    preset and intensity (useEnhancedSeek.ts; a seek always streams the
    enhanced path), on the normal path `play_normal` with `start_position`."""

    def scenario_step(self) -> None:
        s = self.ensure_session()
        track = self.track(self.plays, placeable=True)
        self.plays += 1
        # alternate paths, half the seekers starting on each: a short run still positions both
        enhanced = bool((self.number + self.plays) % 2)
        s.play(track["track_id"], enhanced=enhanced)
        duration = float(track.get("duration_s") or 60)
        rng = random.Random(self.number * 1000 + self.plays)
        for _ in range(int(OPTS.get("seeks_per_play", 6))):
            # wait for a frame or two of the current stream, then seek mid-chunk
            s.pump(lambda: bool(s.current and s.current.recorder.binary_frames >= rng.randint(1, 3)),
                   deadline=min(END_T, time.time() + 10))
            if time.time() >= END_T or s.ws is None:
                return
            position = round(rng.uniform(0, max(1.0, duration - 5)), 2)
            if enhanced:
                s.seek(track["track_id"], position)
            else:
                s.play(track["track_id"], enhanced=False, start_position=position)
        s.pump(s.stream_done, deadline=END_T)
        self.record_ttfa(s)


class Reconnector(_AuralisUser):
    """A browser whose connection drops mid-stream: it reconnects and
    re-issues its last stream command (play_normal or play_enhanced, with its
    preset and intensity) at the position played so far, as the web client's
    replayQueueAndResume does (websocketConnectionCore.ts). Alternates paths;
    drops after a random 1-8 frames, so the resume lands inside a chunk."""

    wait_time = between(0.1, 0.4)

    def scenario_step(self) -> None:
        s = self.ensure_session()
        track = self.track(self.plays, placeable=True)
        self.plays += 1
        enhanced = bool((self.number + self.plays) % 2 == 0)
        rng = random.Random(self.number * 1000 + self.plays)
        frames_wanted = rng.randint(int(OPTS.get("resume_after_frames_min", 1)),
                                    int(OPTS.get("resume_after_frames_max", 8)))
        s.play(track["track_id"], enhanced=enhanced,
               **({"preset": s.enhancement["preset"], "intensity": s.enhancement["intensity"]} if enhanced else {}))
        why = s.pump(lambda: bool(s.current and s.current.recorder.binary_frames >= frames_wanted) or s.stream_done(),
                     deadline=min(END_T, time.time() + float(OPTS.get("first_audio_timeout_s", 60))))
        self.record_ttfa(s)
        point = s.resume_point() if s.current is not None else None
        # the network drops: no close frame, the server finds out on its own
        s.close(abrupt=True, reason="disconnected")
        self.session = None
        # a connect/stream/disconnect cycle like a Disconnector's: the server
        # frees (or leaks) the same per-connection state for it
        load_event("cycle_done", user=self.name, frames=frames_wanted)
        if point is None or why != "done" or time.time() >= END_T:
            return  # no audio yet, or the stream already ended: nothing to resume
        command, position = point
        s = self.ensure_session()
        s.resume(command, position)
        load_event("resume", user=self.name, type=command["type"], position=position, frames=frames_wanted)
        STATS["cycles"] += 1
        # a resumed stream plays to its end (the analysis checks where it starts
        # and that nothing is replayed or lost), bounded like any stream
        s.pump(s.stream_done, deadline=self.stream_deadline())
        self.record_ttfa(s)


class Switcher(_AuralisUser):
    """Starts a track, then plays another on the same connection mid-stream."""

    def scenario_step(self) -> None:
        s = self.ensure_session()
        first, second = self.track(self.plays), self.track(self.plays + 1)
        self.plays += 1
        s.play(first["track_id"], enhanced=bool(self.plays % 2))
        s.pump(lambda: bool(s.current and s.current.recorder.binary_frames >= 3), deadline=min(END_T, time.time() + 15))
        if s.ws is None or time.time() >= END_T:
            return
        s.play(second["track_id"], enhanced=not bool(self.plays % 2))
        s.pump(s.stream_done, deadline=END_T)
        self.record_ttfa(s)


class Browser(HttpUser):
    """Browses the library over REST at a person's pace: pages of tracks, health."""

    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        self.client.headers.pop("Origin", None)

    def _past_end(self) -> bool:
        if time.time() < END_T:
            return False
        _DONE.add(f"browser-{id(self)}")  # nothing more to ask: the run may end
        gevent.sleep(0.1)  # briefly: the graceful stop waits for the task in progress
        return True

    @task(5)
    def page_tracks(self) -> None:
        if self._past_end():
            return
        limit = random.choice([10, 25, 50])
        offset = random.randint(0, 2) * limit
        self.client.get(f"/api/library/tracks?limit={limit}&offset={offset}", name="/api/library/tracks")

    @task(1)
    def health(self) -> None:
        if self._past_end():
            return
        self.client.get("/api/health", name="/api/health")


def _apply_fixed_counts() -> None:
    for cls_name, count in (CONFIG.get("users") or {}).items():
        cls = globals().get(cls_name)
        if cls is not None:
            cls.fixed_count = int(count)


_apply_fixed_counts()
