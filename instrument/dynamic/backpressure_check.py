"""backpressure: what the server holds for clients that stop reading.

A server that respects backpressure stops producing for a connection whose
socket is full: it holds a chunk or two and a short send queue per reader,
whatever the track's length. One that ignores it renders ahead and queues
the rest of the track in memory for as long as the client does not read.

Procedure (normal path; the enhanced path's first chunk can take longer than
the whole check on a loaded machine): one warm-up play of the longest track
to its first frame, so caches any play fills (the decoded source) are in the
baseline; then a wait until the target is quiet (a target still finishing
the load's work - Auralis's orphaned DSP threads - moves its RSS by tens of
MiB on its own); then ``cycles`` times: a baseline of the target's RSS,
``readers`` connections that play that track, read its first frame and then
read nothing (a small receive buffer, so the kernel does not read for them),
RSS while they are held, and RSS after they are closed. Memory that rises
with the stalled readers and falls when they close, in every cycle, is
theirs; drift does not do that twice. RSS and CPU come from the wrapper's
out-of-process sampler (samples.jsonl), copied into the result for the pure
analysis."""
from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

from analysis.rundir import SAMPLES, iter_jsonl

from .ws_probe import Probe, kind_is, try_open

MIB = 1024 * 1024


def _samples_between(run_dir: Path, t0: float, t1: float) -> list[dict[str, Any]]:
    return [r for r in iter_jsonl(run_dir / SAMPLES) if t0 <= r.get("t", 0) <= t1 and r.get("rss")]


def _rss_between(run_dir: Path, t0: float, t1: float) -> list[float]:
    return [rec["rss"] / MIB for rec in _samples_between(run_dir, t0, t1)]


SENDBUFFERS = "agent/sendbuffers.jsonl"


def _held_between(run_dir: Path, t0: float, t1: float) -> list[dict[str, Any]]:
    """The agent's readings of what the server holds for its WebSocket
    clients (transport write buffers + its own send queues) in [t0, t1]."""
    return [r for r in iter_jsonl(run_dir / SENDBUFFERS) if t0 <= r.get("t", 0) <= t1 and "held_bytes" in r]


def _held_summary(readings: list[dict[str, Any]]) -> dict[str, Any]:
    """The largest reading, with where its bytes sat."""
    if not readings:
        return {"held_mib": 0.0, "readings": 0}
    top = max(readings, key=lambda r: r["held_bytes"])
    return {"held_mib": top["held_bytes"] / MIB, "transport_mib": top.get("transport_bytes", 0) / MIB,
            "queue_mib": top.get("queue_bytes", 0) / MIB, "readings": len(readings),
            "ws_connections": top.get("ws_connections"), "transport_protocol": top.get("transport_protocol"),
            "queue_sites": (top.get("queue_sites") or [])[:3],
            "per_connection_mib": sorted((c.get("buffer_bytes", 0) / MIB for c in top.get("connections") or []),
                                         reverse=True)[:8]}


def _wait_quiet(run_dir: Path, cpu_percent: float, window_s: float, timeout_s: float) -> tuple[bool, float | None]:
    """Wait until the target's mean CPU over the last window_s is under
    cpu_percent: (quiet, the last mean seen)."""
    deadline = time.time() + timeout_s
    mean = None
    while True:
        now = time.time()
        recent = [r.get("cpu_percent", 0.0) for r in _samples_between(run_dir, now - window_s, now)]
        if len(recent) >= 3:
            mean = sum(recent) / len(recent)
            if mean < cpu_percent:
                return True, mean
        if now >= deadline:
            return False, mean
        time.sleep(0.5)


def _first_audio(p: Probe, track_id: Any, timeout: float) -> dict[str, Any]:
    """play_normal, then read up to the first binary frame: (start data, error)."""
    p.send("play_normal", {"track_id": track_id})
    start: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        r = p.wait_for(kind_is("audio_stream_start", "binary", "audio_stream_error", "error"), left)
        if r is None:
            return {"start": start, "error": p.closed or "no audio in time"}
        if r.kind == "audio_stream_start":
            start = (r.msg or {}).get("data") or {}
        elif r.kind == "binary":
            return {"start": start, "error": None}
        else:
            return {"start": start, "error": json.dumps(r.msg)[:300]}
    return {"start": start, "error": "no audio in time"}


def backpressure(*, base_url: str, run_dir: Path, tracks: list[dict[str, Any]], compression: bool,
                 target_kind: str = "reference", readers: int = 2, cycles: int = 2, hold_s: float = 6.0,
                 settle_s: float = 1.5, start_timeout_s: float = 60.0, rcvbuf: int = 64 * 1024,
                 quiet_cpu_percent: float = 30.0, quiet_timeout_s: float = 30.0, **_: Any) -> dict[str, Any]:
    run_dir = Path(run_dir)
    usable = [t for t in tracks if t.get("track_id") is not None]
    if not usable:
        return {"outcome": "error", "error": "no track with a server id"}
    track = max(usable, key=lambda t: t.get("duration_s") or 0.0)
    res: dict[str, Any] = {"outcome": "done", "target_kind": target_kind, "readers": readers, "hold_s": hold_s,
                           "track": {"id": track["track_id"], "name": track.get("name"),
                                     "duration_s": track.get("duration_s")}, "cycles": []}
    # the load's own streams may still be finishing (or being torn down): let them, before the warm-up
    res["quiet_before_warmup"] = _wait_quiet(run_dir, quiet_cpu_percent, 2.0, quiet_timeout_s)[0]
    warm, why = try_open(base_url, compression=compression)
    if warm is None:
        return {**res, "outcome": "error", "error": f"could not connect: {why}"}
    try:
        first = _first_audio(warm, track["track_id"], start_timeout_s)
        warm.send("stop")
        warm.drain(0.3)
    finally:
        warm.close()
    if first["error"]:
        return {**res, "outcome": "error", "error": f"warm-up play failed: {first['error']}"}
    start = first["start"]
    res["track"].update(sample_rate=start.get("sample_rate"), channels=start.get("channels"))
    time.sleep(settle_s)
    res["quiet"], res["quiet_cpu_percent"] = _wait_quiet(run_dir, quiet_cpu_percent, 2.0, quiet_timeout_s)
    # the agent measures queued bytes directly (RSS is corroboration): is it there?
    res["sendbuffers"] = (run_dir / SENDBUFFERS).exists() or (run_dir / "agent" / "agent.json").exists()
    t_base = time.time()
    time.sleep(settle_s)
    base = _rss_between(run_dir, t_base, time.time())
    held_base = _held_summary(_held_between(run_dir, t_base, time.time()))
    for c in range(cycles):
        cycle: dict[str, Any] = {"rss_base_mib": base, "stalled": [], "held_base": held_base}
        res["cycles"].append(cycle)
        held: list[Probe] = []
        try:
            for i in range(readers):
                p, why = try_open(base_url, compression=compression)
                if p is None:
                    return {**res, "outcome": "error", "error": f"cycle {c} reader {i} could not connect: {why}"}
                held.append(p)
                if p.ws is not None and p.ws.sock is not None:
                    # a small receive window: the kernel must not read the track for us
                    p.ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
                got = _first_audio(p, track["track_id"], start_timeout_s)
                if got["error"]:
                    return {**res, "outcome": "error", "error": f"cycle {c} reader {i}: {got['error']}"}
            t_hold = time.time()
            time.sleep(hold_s)  # nobody reads: a bounded server blocks on its full sockets
            # the second half of the hold: whatever the server renders ahead has been rendered
            cycle["rss_hold_mib"] = _rss_between(run_dir, t_hold + hold_s / 2, time.time())
            cycle["held_hold"] = _held_summary(_held_between(run_dir, t_hold + hold_s / 2, time.time()))
            # the whole hold, compact: does what is held climb or sit at a bound?
            cycle["held_series"] = [
                [round(r["t"] - t_hold, 2), round(r.get("held_bytes", 0) / MIB, 3),
                 round(max([c.get("buffer_bytes", 0) for c in r.get("connections") or []] or [0]) / MIB, 3)]
                for r in _held_between(run_dir, t_hold, time.time())]
            cycle["stalled"] = [{"binary_bytes": sum(r.binary_bytes for r in p.log), "closed": p.closed}
                                for p in held]
        finally:
            for p in held:
                p.close()
        time.sleep(2 * settle_s)
        t_rel = time.time()
        time.sleep(settle_s)
        cycle["rss_released_mib"] = _rss_between(run_dir, t_rel, time.time())
        cycle["held_released"] = _held_summary(_held_between(run_dir, t_rel, time.time()))
        base = cycle["rss_released_mib"]  # the next cycle starts from here
        held_base = cycle["held_released"]
    return res
