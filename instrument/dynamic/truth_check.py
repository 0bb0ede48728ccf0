"""truth: one stream of each path and each track, alone, to its end.

Under load on a small machine the enhanced path can time out at its first
chunk in every stream, and then the load's audio says nothing about it. After
the load, this check waits for a quiet target (as the backpressure check
does: a target still finishing the load's work is not quiet), then plays each
of the run's tracks on the normal path and on the enhanced path, one stream
at a time, each to its end under a per-stream timeout. The streams are
recorded into streams/ like the load's (scenario "truth-check"), so the audio
analysis covers them; the result says which path got a whole stream and why
one did not. A total budget keeps a release run bounded: streams it leaves
unplayed are listed as skipped, never silently dropped; tracks go shortest
first, so a budget cut leaves each path its whole short streams. (Budget:
`release` on Auralis HEAD with the DSP stand-in must end within 10 minutes
on 2 cores; the enhanced path alone runs ~7x real time there.)
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from scenarios.protocol_client import AuralisSession, ClientProfile

from .backpressure_check import _wait_quiet

PATHS = ("normal", "enhanced")


def _one_stream(base_url: str, run_dir: Path, track: dict[str, Any], stream_type: str, *, compression: bool,
                tracks_by_id: dict[Any, dict[str, Any]], timeout_s: float) -> dict[str, Any]:
    out: dict[str, Any] = {"track": track.get("name"), "track_id": track["track_id"], "stream_type": stream_type,
                           "expected_s": track.get("duration_s")}
    t0 = time.time()
    try:
        s = AuralisSession(base_url, run_dir, user="truth", scenario="truth-check", tracks=tracks_by_id,
                           profile=ClientProfile("browser"), compression=compression).connect()
    except Exception as e:
        return {**out, "outcome": "connect_failed", "error": f"{type(e).__name__}: {e}", "wall_s": 0.0}
    try:
        s.play(track["track_id"], enhanced=stream_type == "enhanced")
        why = s.pump(s.stream_done, deadline=t0 + timeout_s, idle_timeout=timeout_s)
        rec = s.streams[-1].recorder if s.streams else None
        if why == "deadline" and rec is not None and s.current is not None:
            rec.violation("stream_timeout", f"the stream had not ended after the per-stream timeout of "
                                            f"{timeout_s:g} s", timeout_s=timeout_s,
                          delivered_s=rec.frames / max(1, rec.sample_rate))
        s.close(reason="stream_timeout" if why == "deadline" else "client_closed")
        out.update(outcome=why, timed_out=why == "deadline", wall_s=round(time.time() - t0, 2),
                   stream_id=rec.info.get("stream_id") if rec else None,
                   served_type=rec.info.get("stream_type") if rec else None,
                   ended=getattr(rec, "ended", None) if rec else None,
                   delivered_s=round(rec.frames / max(1, rec.sample_rate), 3) if rec else 0.0,
                   ttfa_s=round(rec.first_audio_t - s.play_sent_t, 3) if rec and rec.first_audio_t and s.play_sent_t
                   else None,
                   error=s.play_error or _stream_error(rec))
    except Exception as e:
        s.close(abrupt=True, reason="check_error")
        out.update(outcome="error", error=f"{type(e).__name__}: {e}", wall_s=round(time.time() - t0, 2))
    return out


def _stream_error(rec: Any) -> Any:
    """The audio_stream_error a started stream ended with (in its stream.json)."""
    if rec is None:
        return None
    try:
        return json.loads((rec.dir / "stream.json").read_text()).get("error")
    except (OSError, ValueError):
        return None


def truth(*, base_url: str, run_dir: Path, tracks: list[dict[str, Any]], compression: bool,
          stream_timeout_s: float = 120.0, budget_s: float = 240.0, quiet_cpu_percent: float = 30.0,
          quiet_timeout_s: float = 45.0, between_quiet_timeout_s: float = 10.0, **_: Any) -> dict[str, Any]:
    run_dir = Path(run_dir)
    usable = [t for t in tracks if t.get("track_id") is not None]
    res: dict[str, Any] = {"outcome": "done", "stream_timeout_s": stream_timeout_s, "budget_s": budget_s,
                           "paths": list(PATHS), "tracks": [t.get("name") for t in usable], "streams": [],
                           "skipped": []}
    if not usable:
        return {**res, "outcome": "error", "error": "no track with a server id"}
    t_start = time.time()
    res["quiet"], res["quiet_cpu_percent"] = _wait_quiet(run_dir, quiet_cpu_percent, 2.0, quiet_timeout_s)
    # a quiet target on a busy machine is still starved: say how busy the host was
    res["host_cpus"] = os.cpu_count()
    res["host_load_start"] = os.getloadavg()[0]
    by_id = {t["track_id"]: t for t in usable}
    # the normal path first: it is fast, and its streams are whole even if the
    # enhanced ones then run out of budget
    for stream_type in PATHS:
        # shortest first: if the budget runs out, the path still has whole streams
        for track in sorted(usable, key=lambda t: t.get("duration_s") or 0.0):
            left = budget_s - (time.time() - t_start)
            if left < 5.0:
                res["skipped"].append({"track": track.get("name"), "stream_type": stream_type,
                                       "reason": f"the check's {budget_s:.0f} s budget was spent"})
                continue
            if stream_type == "enhanced":
                # the previous enhanced stream's worker threads may still be running
                _wait_quiet(run_dir, quiet_cpu_percent, 1.5, min(between_quiet_timeout_s, left / 4))
            res["streams"].append(_one_stream(base_url, run_dir, track, stream_type, compression=compression,
                                              tracks_by_id=by_id, timeout_s=min(stream_timeout_s, left)))
    res["wall_s"] = round(time.time() - t_start, 2)
    res["host_load_end"] = os.getloadavg()[0]
    return res
