"""Which client request a captured stream answers, and where it asked to start.

The client records its request in each stream's info (`request`) and every
command it sends as a `dir: "out"` event (in the stream that was current, or
in the connection's log when none was). A client that seeks again before the
previous seek's stream started records the newer request on the older
stream, so a stream is matched against every request of its connection sent
after the one the previous stream answered and before its own
audio_stream_start: the one nearest the audio it carries wins (see
position.detect_position_defects), and the next stream's candidates start
after it. Requests are keyed on their content (`play_*` with
`start_position`, `seek` with `position`), never on a reason the client gives.
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from analysis.rundir import LOAD, Stream, iter_jsonl

STREAM_COMMANDS = ("play_normal", "play_enhanced", "seek")


def requested_position(req: dict[str, Any] | None) -> float | None:
    """Where a play/seek command asked the audio to start (seconds)."""
    if not isinstance(req, dict) or req.get("type") not in STREAM_COMMANDS:
        return None
    data = req.get("data") if isinstance(req.get("data"), dict) else {}
    v = data.get("position") if req["type"] == "seek" else data.get("start_position", 0.0)
    if v is None:
        v = 0.0
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 else None


def _command(e: dict[str, Any]) -> dict[str, Any] | None:
    msg = e.get("msg")
    if isinstance(msg, dict) and msg.get("type") in STREAM_COMMANDS:
        return msg
    return None


class RequestMatcher:
    """Per connection, the stream commands in the order they were sent."""

    def __init__(self, run_dir: Path, streams: list[Stream]):
        self.by_conn: dict[str, list[tuple[float, dict[str, Any]]]] = defaultdict(list)
        self.done: dict[str, int] = {}  # connection -> index of the request the last stream answered
        seen: set[tuple[str, float, str]] = set()

        def add(conn: str, t: Any, msg: dict[str, Any]) -> None:
            if not isinstance(t, (int, float)):
                return
            key = (conn, round(float(t), 6), json.dumps(msg, sort_keys=True))
            if key not in seen:
                seen.add(key)
                self.by_conn[conn].append((float(t), msg))

        for st in streams:
            conn = str(st.summary.get("connection") or "")
            if not conn:
                continue
            for e in st.events:
                if e.get("dir") == "out" and (m := _command(e)) is not None:
                    add(conn, e.get("t"), m)
            req = st.summary.get("request")
            if isinstance(req, dict) and req.get("type") in STREAM_COMMANDS:
                add(conn, st.summary.get("request_t"), req)
        for conn in list(self.by_conn):
            for e in iter_jsonl(Path(run_dir) / LOAD / "connections" / f"{conn}.jsonl"):
                if e.get("kind") == "sent" and (m := _command(e)) is not None:
                    add(conn, e.get("t"), m)
            self.by_conn[conn].sort(key=lambda p: p[0])

    def candidates(self, st: Stream) -> list[tuple[int, dict[str, Any]]]:
        """(index, request) of the requests this stream may answer, oldest
        first; the stream's own recorded request alone when the connection's
        commands are not known."""
        conn = str(st.summary.get("connection") or "")
        start_t = next((e.get("t") for e in st.events if e.get("kind") == "audio_stream_start"), None)
        reqs = self.by_conn.get(conn, [])
        track = st.summary.get("track_id")
        after = self.done.get(conn, -1)
        stype = st.summary.get("stream_type")

        def could_make(m: dict[str, Any]) -> bool:
            # the same track, and a command that starts this path: play_normal
            # streams the normal path, play_enhanced the enhanced one (a seek
            # may continue either: Auralis's always goes enhanced, others not)
            if track is not None and str((m.get("data") or {}).get("track_id")) != str(track):
                return False
            made = {"play_normal": "normal", "play_enhanced": "enhanced"}.get(m.get("type"))
            return stype not in ("normal", "enhanced") or made is None or made == stype

        out = [(i, m) for i, (t, m) in enumerate(reqs)
               if i > after and (start_t is None or t <= start_t) and could_make(m)]
        own = st.summary.get("request")
        if not out and isinstance(own, dict) and could_make(own):
            return [(-1, own)]
        return out

    def answered(self, st: Stream, index: int) -> None:
        conn = str(st.summary.get("connection") or "")
        if conn and index >= 0:
            self.done[conn] = max(index, self.done.get(conn, -1))
