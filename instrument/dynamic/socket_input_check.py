"""socket_input: bad input on the socket, one case per fresh connection.

Each case sends one oversized, malformed, wrongly typed or out-of-range
message and records the first answer (or none within the deadline), then
whether the SAME connection still answers a valid ping and a valid play,
whether the server is still healthy, and whether a fresh connection works.
A burst past the 10 messages/s limit counts what was accepted and refused.
Raw observations only; analysis.dynamic.socket_input judges them."""
from __future__ import annotations

import json
import time
from typing import Any

import requests

from .ws_probe import Probe, Received, excerpt, kind_is, reply, try_open

ONE_MB = 1 << 20
TEXT_KEPT = 2000  # characters of each error message kept, so a traceback in it is seen whole
BURST = 25  # messages sent back to back, 2.5x the documented 10/s
CASE_MIN_S = 0.4  # a case never takes less, so the probes stay under Auralis's 30/s per-IP bucket
EXPECTS_END = frozenset({"seek_past_end"})  # cases whose stream must end (or fail) promptly


def cases(track_id: int, duration_s: float) -> list[tuple[str, str, str]]:
    """(name, message type it targets, raw text sent)."""
    def msg(t: str, data: Any) -> str:
        return json.dumps({"type": t, "data": data})

    return [
        ("oversized_1mb", "play_normal", msg("play_normal", {"track_id": track_id, "pad": "x" * ONE_MB})),
        ("malformed_json", "(parse)", '{"type": "play_normal", "data": {"track_id": ' + str(track_id)),
        ("non_object_json", "(parse)", "[1, 2, 3]"),
        ("missing_type", "(parse)", json.dumps({"data": {"track_id": track_id}})),
        ("missing_data", "play_normal", json.dumps({"type": "play_normal"})),
        ("data_not_object", "play_normal", json.dumps({"type": "play_normal", "data": "abc"})),
        ("track_id_string", "play_normal", msg("play_normal", {"track_id": "abc"})),
        ("start_position_string", "play_normal", msg("play_normal", {"track_id": track_id, "start_position": "x"})),
        ("seek_position_string", "seek", msg("seek", {"track_id": track_id, "position": "x"})),
        ("seek_negative", "seek", msg("seek", {"track_id": track_id, "position": -5})),
        # Python's json (and so Auralis's parser) accepts the NaN literal
        ("seek_nan", "seek", '{"type": "seek", "data": {"track_id": %d, "position": NaN}}' % track_id),
        ("track_id_2_63", "play_normal", msg("play_normal", {"track_id": 2 ** 63})),
        ("seek_past_end", "seek", msg("seek", {"track_id": track_id, "position": round(duration_s + 1000.0, 1)})),
    ]


def _text(r: Received) -> str:
    return r.raw if r.msg is None else json.dumps(r.msg, separators=(",", ":"))


def _answer(r: Received | None, t_sent: float) -> dict[str, Any] | None:
    if r is None:
        return None
    return {"kind": r.kind, "ms": round((time.monotonic() - t_sent) * 1000, 1),
            "error_code": (r.msg or {}).get("error") if r.kind == "error" else
            ((r.msg or {}).get("data") or {}).get("code") if r.kind == "audio_stream_error" else None,
            "excerpt": excerpt(_text(r), TEXT_KEPT)}


def _health(base_url: str) -> dict[str, Any]:
    try:
        resp = requests.get(base_url.rstrip("/") + "/api/health", timeout=5)
        return {"status": resp.status_code}
    except requests.RequestException as e:
        return {"status": None, "error": f"{type(e).__name__}: {str(e)[:200]}"}


def _stop_stream(p: Probe, timeout: float) -> None:
    """End whatever stream the case or probe started, reading past its audio."""
    p.send("stop")
    p.wait_for(kind_is("playback_stopped"), timeout)


def _probe_same(p: Probe, track_id: int, timeout: float) -> dict[str, Any]:
    """Does this connection still answer a valid ping and a valid play?"""
    out: dict[str, Any] = {}
    t = time.monotonic()
    try:
        p.send("ping")
        pong = p.wait_for(kind_is("pong"), timeout)
        out["ping_ok"] = pong is not None
        out["ping_ms"] = round((time.monotonic() - t) * 1000, 1) if pong else None
        if pong is None:  # a connection that ignores ping is not asked to play: it would only cost the deadline
            out.update(play=None, play_ok=False, play_skipped="ping unanswered", closed=p.closed)
            return out
        for attempt in range(2):
            p.send("play_normal", {"track_id": track_id})
            r = p.wait_for(kind_is("audio_stream_start", "audio_stream_error", "error"), timeout)
            if r is not None and r.kind == "error" and (r.msg or {}).get("error") == "rate_limit_exceeded" and attempt == 0:
                time.sleep(1.1)  # our own probes hit the limit: not the case's doing, try once more
                continue
            break
        out["play"] = None if r is None else (r.kind if r.kind != "error" else f"error:{(r.msg or {}).get('error')}")
        out["play_ok"] = r is not None and r.kind == "audio_stream_start"
        if out["play_ok"]:
            _stop_stream(p, timeout)
    except OSError as e:
        out.setdefault("ping_ok", False)
        out.setdefault("play_ok", False)
        out["error"] = f"{type(e).__name__}: {e}"
    out["closed"] = p.closed
    return out


def _fresh(base_url: str, compression: bool, timeout: float) -> dict[str, Any]:
    p, why = try_open(base_url, compression=compression, timeout=timeout)
    if p is None:
        return {"ok": False, "error": why}
    try:
        hello = p.wait_for(kind_is("player_state"), timeout)
        p.send("ping")
        pong = p.wait_for(kind_is("pong"), timeout)
        return {"ok": pong is not None, "hello": hello is not None, "closed": p.closed}
    except OSError as e:
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}
    finally:
        p.close()


def run_case(base_url: str, name: str, msg_type: str, text: str, *, track_id: int, compression: bool,
             reply_timeout_s: float, case_min_s: float = CASE_MIN_S, follow_timeout_s: float | None = None
             ) -> dict[str, Any]:
    # what a command leads to may take DSP set-up time (seconds on Auralis)
    follow_timeout_s = follow_timeout_s or 4 * reply_timeout_s
    t_case = time.monotonic()
    res: dict[str, Any] = {"name": name, "msg_type": msg_type, "sent": excerpt(text, 300), "sent_bytes": len(text.encode())}
    p, why = try_open(base_url, compression=compression)
    if p is None:
        res.update(connect_error=why)
    else:
        try:
            p.wait_for(kind_is("player_state"), reply_timeout_s)  # the connect-time pushes
            n0 = len(p.log)
            t = time.monotonic()
            try:
                p.send_text(text)
            except OSError as e:
                res["send_error"] = f"{type(e).__name__}: {e}"
            first = p.wait_for(reply, reply_timeout_s)
            res["reply"] = _answer(first, t)
            # a seek is acknowledged first; what it leads to (a stream, an error,
            # or nothing) comes later. A seek past the end owes a (short) stream
            # that ends, or an error.
            last = first
            if first is not None and first.kind == "seek_started" and not p.closed:
                last = p.wait_for(kind_is("audio_stream_start", "audio_stream_error", "error"), follow_timeout_s)
                res["followup"] = _answer(last, t)
            if name in EXPECTS_END and last is not None and last.kind == "audio_stream_start" and not p.closed:
                res["stream_end"] = _answer(p.wait_for(kind_is("audio_stream_end", "audio_stream_error", "error"),
                                                       follow_timeout_s), t)
            res["closed_after_send"] = p.closed
            if any(r.kind == "audio_stream_start" for r in p.log[n0:]) and not p.closed:
                _stop_stream(p, reply_timeout_s)
            if not p.closed:
                res["same_connection"] = _probe_same(p, track_id, reply_timeout_s)
            res["texts"] = [excerpt(_text(r), TEXT_KEPT) for r in p.log[n0:]
                            if r.kind not in ("binary", "audio_chunk_meta", "ping", "pong")][:10]
        finally:
            p.close()
    res["health"] = _health(base_url)
    res["fresh_connection"] = _fresh(base_url, compression, reply_timeout_s)
    left = case_min_s - (time.monotonic() - t_case)
    if left > 0:
        time.sleep(left)
    return res


def run_burst(base_url: str, *, track_id: int, compression: bool, reply_timeout_s: float) -> dict[str, Any]:
    """BURST 'resume' messages back to back: each accepted one is answered
    with playback_resumed, each refused one with rate_limit_exceeded."""
    res: dict[str, Any] = {"name": "burst", "msg_type": "resume", "sent_count": BURST}
    p, why = try_open(base_url, compression=compression)
    if p is None:
        return {**res, "connect_error": why, "health": _health(base_url)}
    try:
        p.wait_for(kind_is("player_state"), reply_timeout_s)
        n0 = len(p.log)
        t = time.monotonic()
        for _ in range(BURST):
            p.send("resume")
        res["send_s"] = round(time.monotonic() - t, 4)
        got = p.drain(1.5)
        res["accepted"] = sum(1 for r in got if r.kind == "playback_resumed")
        res["limited"] = sum(1 for r in got if r.kind == "error" and (r.msg or {}).get("error") == "rate_limit_exceeded")
        res["other"] = [excerpt(_text(r), 300) for r in got
                        if r.kind not in ("playback_resumed", "error", "binary", "ping")][:5]
        res["limit_message"] = next((excerpt(_text(r), 300) for r in got if r.kind == "error"), None)
        res["closed_after_send"] = p.closed
        time.sleep(1.1)  # let the window pass before asking for normal service again
        if not p.closed:
            res["same_connection"] = _probe_same(p, track_id, reply_timeout_s)
        res["texts"] = [excerpt(_text(r), TEXT_KEPT) for r in p.log[n0:] if r.kind == "error"][:3]
    finally:
        p.close()
    res["health"] = _health(base_url)
    res["fresh_connection"] = _fresh(base_url, compression, reply_timeout_s)
    return res


def socket_input(*, base_url: str, tracks: list[dict[str, Any]], compression: bool, target_kind: str = "reference",
                 reply_timeout_s: float = 3.0, case_min_s: float = CASE_MIN_S, **_: Any) -> dict[str, Any]:
    usable = [t for t in tracks if t.get("track_id") is not None]
    if not usable:
        return {"outcome": "error", "error": "no track with a server id to play"}
    track = min(usable, key=lambda t: t.get("duration_s") or 1e9)
    t0 = time.time()
    out = []
    for name, mtype, text in cases(track["track_id"], track.get("duration_s") or 60.0):
        out.append(run_case(base_url, name, mtype, text, track_id=track["track_id"], compression=compression,
                            reply_timeout_s=reply_timeout_s, case_min_s=case_min_s))
    out.append(run_burst(base_url, track_id=track["track_id"], compression=compression,
                         reply_timeout_s=reply_timeout_s))
    return {"outcome": "done", "target_kind": target_kind, "track": track.get("name"), "track_id": track["track_id"],
            "reply_timeout_s": reply_timeout_s, "follow_timeout_s": 4 * reply_timeout_s, "rate_limit_documented": 10,
            "cases": out,
            "elapsed_s": round(time.time() - t0, 2)}
