"""isolation: two clients at once; what one client does, the other must not see.

Per-client state a client can change over /ws (in Auralis, its WebSocket handlers):
  - the enhancement preset and intensity of its play_enhanced (Auralis writes
    them back into the process-global enhancement_settings, #4601);
  - the mastering_recommendation its play triggers (Auralis broadcasts it to
    every connection, #4542).
Client B plays enhanced with no preset (so it gets the server default) and
records that default; client A plays a different track enhanced with an
explicit preset and intensity and waits for its own recommendation; then B
plays again with no preset, and a fresh client C reads the settings pushed on
connect. Everything B and C saw is recorded. A last play by A with B's
original default puts a leaked default back for the checks after this one."""
from __future__ import annotations

import time
from typing import Any

from .ws_probe import Probe, excerpt, kind_is, try_open

PRESETS = ("warm", "bright", "punchy", "gentle")  # Auralis VALID_PRESETS, less its default "adaptive"
A_INTENSITY = 0.35


def _wait_serving(p: Probe, match, timeout: float, idle: list[Probe]):
    """p.wait_for in one-second slices, reading the idle clients in between
    so they answer the server's heartbeat ping (30 s, pong within 10 s)."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        r = p.wait_for(match, min(1.0, left))
        if r is not None or p.closed:
            return r
        for q in idle:
            q.drain(0.01)
    return None


def _hello_settings(p: Probe, timeout: float) -> dict[str, Any] | None:
    r = p.wait_for(kind_is("enhancement_settings_changed"), timeout)
    return (r.msg or {}).get("data") if r else None


def _enhanced_start(p: Probe, track_id: int, timeout: float, idle: list[Probe] = (), **extra: Any) -> dict[str, Any]:
    """play_enhanced, the stream_start it gets (or the error), then stop."""
    p.send("play_enhanced", {"track_id": track_id, **extra})
    r = _wait_serving(p, kind_is("audio_stream_start", "audio_stream_error", "error"), timeout, list(idle))
    if r is None:
        return {"reply": None, "closed": p.closed}
    data = (r.msg or {}).get("data") or {}
    out = {"reply": r.kind, "preset": data.get("preset"), "intensity": data.get("intensity"),
           "track_id": data.get("track_id"), "excerpt": excerpt(r.msg, 300)}
    if r.kind == "audio_stream_start":
        p.send("stop")
        p.wait_for(kind_is("playback_stopped"), timeout)
    return out


def _recommendations(p: Probe) -> list[dict[str, Any]]:
    return [(r.msg or {}).get("data") or {} for r in p.log if r.kind == "mastering_recommendation"]


def isolation(*, base_url: str, tracks: list[dict[str, Any]], compression: bool, target_kind: str = "reference",
              start_timeout_s: float = 60.0, recommendation_wait_s: float = 30.0, **_: Any) -> dict[str, Any]:
    usable = sorted((t for t in tracks if t.get("track_id") is not None), key=lambda t: t.get("duration_s") or 1e9)
    if len(usable) < 2:
        return {"outcome": "error", "error": "needs two tracks with server ids"}
    track_b, track_a = usable[0], usable[1]
    res: dict[str, Any] = {"outcome": "done", "target_kind": target_kind,
                           "track_b": {"id": track_b["track_id"], "name": track_b.get("name")},
                           "track_a": {"id": track_a["track_id"], "name": track_a.get("name")}}
    probes: list[Probe] = []

    def open_probe(who: str) -> Probe | None:
        p, why = try_open(base_url, compression=compression)
        if p is None:
            res["outcome"] = "error"
            res["error"] = f"client {who} could not connect: {why}"
            return None
        probes.append(p)
        return p

    try:
        b = open_probe("B")
        if b is None:
            return res
        res["b_hello"] = _hello_settings(b, 5.0)
        res["b_before"] = _enhanced_start(b, track_b["track_id"], start_timeout_s)
        a = open_probe("A")
        if a is None:
            return res
        res["a_hello"] = _hello_settings(a, 5.0)
        default = (res["b_before"] or {}).get("preset") or (res["b_hello"] or {}).get("preset")
        preset = next(p for p in PRESETS if p != default)
        res["a_request"] = {"preset": preset, "intensity": A_INTENSITY}
        res["a_play"] = _enhanced_start(a, track_a["track_id"], start_timeout_s, [b], preset=preset,
                                        intensity=A_INTENSITY)
        # A's own recommendation for its track marks when the server has
        # answered A; B's window for a copy of it closes shortly after
        own = any(d.get("track_id") == track_a["track_id"] for d in _recommendations(a)) or _wait_serving(
            a, lambda r: r.kind == "mastering_recommendation" and
            ((r.msg or {}).get("data") or {}).get("track_id") == track_a["track_id"], recommendation_wait_s, [b])
        res["a_got_own_recommendation"] = bool(own)
        b.drain(0.5)
        res["b_after"] = _enhanced_start(b, track_b["track_id"], start_timeout_s, [a])
        b.drain(0.3)
        c = open_probe("C")
        if c is not None:
            res["c_hello"] = _hello_settings(c, 5.0)
        res["b_recommendations"] = [{"track_id": d.get("track_id"), "excerpt": excerpt(d, 300)}
                                    for d in _recommendations(b)]
        res["a_recommendations"] = [{"track_id": d.get("track_id")} for d in _recommendations(a)]
        # undo a leak for whatever runs next: the same path that leaked it
        base = res["b_before"] or {}
        if base.get("preset") and base.get("preset") != (res["b_after"] or {}).get("preset"):
            res["restore"] = _enhanced_start(a, track_a["track_id"], start_timeout_s, [b], preset=base["preset"],
                                             intensity=base.get("intensity"))
    except OSError as e:
        res["outcome"] = "error"
        res["error"] = f"{type(e).__name__}: {e}"
    finally:
        for p in probes:
            p.close()
    return res
