"""Checks the wrapper runs after the load, against the still-running target.
Results go to run.json under "checks"; analysis.checks turns them into
findings (analysis stays pure)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from scenarios.protocol_client import AuralisSession, ClientProfile

from .dynamic.backpressure_check import backpressure
from .dynamic.concurrent_writes_check import concurrent_writes
from .dynamic.crash_restart_check import crash_restart
from .dynamic.path_traversal_check import path_traversal
from .dynamic.shutdown_check import shutdown
from .dynamic.bad_files_check import bad_files_check
from .dynamic.openapi_check import openapi
from .dynamic.origins_check import origins
from .dynamic.isolation_check import isolation
from .dynamic.socket_input_check import socket_input
from .dynamic.stream_slots_check import stream_slots
from .dynamic.truth_check import truth
from .dynamic.ws_contract_check import ws_contract


def recovery(*, base_url: str, run_dir: Path, tracks: list[dict[str, Any]], compression: bool,
             **_: Any) -> dict[str, Any]:
    """After a storm, a fresh client must get a whole stream. Memory and task
    recovery are judged from samples.jsonl and agent/tasks.jsonl by analysis,
    using the time window recorded here."""
    t0 = time.time()
    track = min((t for t in tracks if t.get("track_id") is not None), key=lambda t: t.get("duration_s", 1e9))
    res: dict[str, Any] = {"t_start": t0, "track": track["name"]}
    try:
        s = AuralisSession(base_url, run_dir, user="recovery", scenario="recovery-check",
                           tracks={t["track_id"]: t for t in tracks}, profile=ClientProfile("browser"),
                           compression=compression).connect()
        s.play(track["track_id"], enhanced=False)
        why = s.pump(s.stream_done, deadline=time.time() + 60)
        rec = s.streams[-1].recorder if s.streams else None
        res.update(outcome=why, ended=rec.info.get("ended") if rec else None,
                   ended_state=getattr(rec, "closed", False), delivered_s=(rec.frames / rec.sample_rate) if rec else 0.0,
                   expected_s=track.get("duration_s"), error=s.play_error)
        s.close()
    except Exception as e:
        res.update(outcome="error", error=f"{type(e).__name__}: {e}")
    # let the server settle, then the analysis compares memory at the end with the start
    time.sleep(2.0)
    res["t_end"] = time.time()
    return res


# Every check is called with keyword arguments: base_url, run_dir, tracks (the
# run's track manifest), compression (bool), home (the target's fresh $HOME:
# its library is home/"Music"), target_kind ("reference" or "auralis"),
# target (instrument.target_control.TargetControl: kill, restart, terminate;
# None outside a wrapper run); a check takes what it needs and **_ for the rest.
CHECKS: dict[str, Callable[..., dict[str, Any]]] = {
    "recovery": recovery,
    "openapi": openapi,
    "origins": origins,
    "bad_files": bad_files_check,
    "ws_contract": ws_contract,
    "isolation": isolation,
    "socket_input": socket_input,
    "backpressure": backpressure,
    "truth": truth,
    "path_traversal": path_traversal,
    "concurrent_writes": concurrent_writes,
    "stream_slots": stream_slots,
    "crash_restart": crash_restart,
    "shutdown": shutdown,
}

# checks that end the target run last, whatever order they were asked in
ENDS_TARGET = ("shutdown",)
# checks that kill, restart or end the target on purpose (the liveness probe stops before them)
CONTROLS_TARGET = ("crash_restart", "shutdown")


def run_checks(names: tuple[str, ...], **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    names = tuple(n for n in names if n not in ENDS_TARGET) + tuple(n for n in names if n in ENDS_TARGET)
    for name in names:
        fn = CHECKS.get(name)
        if fn is None:
            out[name] = {"skipped": "not available in this version"}
            continue
        target = kw.get("target")
        if target is not None and not target.alive():
            out[name] = {"skipped": "the target was not running (an earlier check could not restart it)"}
            continue
        t0 = time.monotonic()
        try:
            out[name] = fn(**kw)
        except Exception as e:
            out[name] = {"outcome": "error", "error": f"{type(e).__name__}: {e}"}
        if isinstance(out[name], dict):
            out[name].setdefault("elapsed_s", round(time.monotonic() - t0, 1))  # what each check costs a run
    return out
