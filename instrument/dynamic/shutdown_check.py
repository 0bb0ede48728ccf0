"""shutdown: what a SIGTERM leaves behind.

At the end of the run (the checks runner puts this check last), with a
stream open: the target's process tree is listed, SIGTERM goes to the target
process (as `kill PID` or a service manager does), and the time to exit is
measured up to a grace period. Then: which of its processes outlived it,
whether its port still accepts connections, which threads the agent saw
still alive after the server's own shutdown (RUN/agent/threads_at_exit.json,
written by instrument/agent/lifecycle.py), what is left in its TMPDIR, and
which of its SQLite databases still has a WAL that was not checkpointed.
Survivors are then killed: a run leaves no process behind. The judge is
analysis.dynamic.shutdown."""
from __future__ import annotations

import json
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import psutil

from .state_probe import find_dbs, playable
from .ws_probe import excerpt, kind_is, try_open

GRACE_S = 15.0  # the wrapper's own grace before it kills the group
SURVIVOR_WAIT_S = 1.0  # children get this long to follow their parent out
MAX_LEFTOVERS = 20


def _tree(pid: int) -> list[dict[str, Any]]:
    try:
        kids = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    out = []
    for k in kids:
        try:
            out.append({"pid": k.pid, "create_time": k.create_time(), "name": k.name(),
                        "cmdline": " ".join(k.cmdline())[:200]})
        except psutil.Error:
            continue
    return out


def _alive(rec: dict[str, Any]) -> bool:
    try:
        p = psutil.Process(rec["pid"])
        return abs(p.create_time() - rec["create_time"]) < 0.01 and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _leftovers(tmp: Path) -> list[dict[str, Any]]:
    out = []
    for p in sorted(tmp.rglob("*")) if tmp.is_dir() else []:
        if p.is_file():
            out.append({"path": str(p.relative_to(tmp)), "bytes": p.stat().st_size})
    return out


def _keep_reading(probe: Any, stop: threading.Event) -> None:
    while not stop.is_set() and not probe.closed:
        try:
            probe.recv(0.2)
        except OSError:
            break


def shutdown(*, base_url: str, run_dir: Path, tracks: list[dict[str, Any]], compression: bool, home: Path,
             target: Any = None, grace_s: float = GRACE_S, **_: Any) -> dict[str, Any]:
    if target is None:
        return {"skipped": "needs the wrapper's target hook (run through instrument.run)"}
    run_dir, home = Path(run_dir), Path(home)
    res: dict[str, Any] = {"outcome": "done", "grace_s": grace_s, "pid": target.pid}
    usable = playable(tracks)
    probe = None
    if usable:
        longest = max(usable, key=lambda t: t.get("duration_s") or 0)
        probe, why = try_open(base_url, compression=compression)
        if probe is not None:
            probe.send("play_normal", {"track_id": longest["track_id"]})
            res["stream_open"] = probe.wait_for(kind_is("binary"), 30.0) is not None
            if not res["stream_open"]:  # what the server said instead of audio
                res["stream_replies"] = [excerpt(r.msg or r.raw, 200) for r in probe.log
                                         if r.kind not in ("ping", "binary", "audio_chunk_meta")][:6]
        else:
            res["stream_open"], res["stream_error"] = False, why
    # the listener keeps reading, as a playing browser tab does (a reader that
    # stopped is the backpressure check's case: a server blocked on its full
    # socket cannot close it either)
    stop = threading.Event()
    reader = None
    if probe is not None:
        reader = threading.Thread(target=_keep_reading, args=(probe, stop), name="shutdown-listener", daemon=True)
        reader.start()
    time.sleep(0.3)
    tree = _tree(target.pid)
    res["children_before"] = tree
    log = run_dir / "target.log"
    log_offset = log.stat().st_size if log.exists() else 0
    exit_s, rc = target.terminate("shutdown", grace_s)
    res["exit_s"] = None if exit_s is None else round(exit_s, 3)
    res["exit_code"] = rc
    if probe is not None and reader is not None:
        stop.set()
        reader.join(timeout=5)
        res["stream_seen"] = {"closed": probe.closed, "ended": any(
            r.kind in ("audio_stream_end", "audio_stream_error") for r in probe.log)}
        probe.close()
    time.sleep(SURVIVOR_WAIT_S)
    survivors = [c for c in tree if _alive(c)]
    res["survivors"] = survivors
    port = urlparse(base_url).port
    res["port_accepts"] = bool(port and _accepts(port))
    threads = run_dir / "agent" / "threads_at_exit.json"
    try:  # written by the agent once the server has finished (even if the process then does not exit)
        doc = json.loads(threads.read_text())
        res["threads_at_exit"] = doc if doc.get("pid") == res["pid"] else None
    except (OSError, ValueError):
        res["threads_at_exit"] = None
    try:  # the agent's list of asyncio tasks still pending 3 s after SIGTERM (instrument/agent/lifecycle.py)
        res["pending_tasks"] = json.loads((run_dir / "agent" / "shutdown_tasks.json").read_text())
    except (OSError, ValueError):
        res["pending_tasks"] = None
    try:
        with open(log, "rb") as fh:
            fh.seek(log_offset)
            res["log_after_sigterm"] = [ln[:300] for ln in fh.read(65536).decode("utf-8", "replace").splitlines()][:12]
    except OSError:
        res["log_after_sigterm"] = []
    left = _leftovers(run_dir / "tmp")
    res["tmp_leftovers"] = {"files": len(left), "bytes": sum(x["bytes"] for x in left), "examples": left[:MAX_LEFTOVERS]}
    res["wal"] = []
    for db in find_dbs(home):
        wal = Path(str(db) + "-wal")
        res["wal"].append({"db": str(db.relative_to(home)),
                           "wal_bytes": wal.stat().st_size if wal.exists() else 0})
    # nothing the target left may outlive the run: kill what survived (and the
    # target itself, if it ignored SIGTERM)
    for c in survivors:
        try:
            psutil.Process(c["pid"]).send_signal(signal.SIGKILL)
        except psutil.Error:
            pass
    if exit_s is None:
        target.proc.stop(grace_s=0.5, sig=signal.SIGKILL)
    res["survivors_killed"] = len(survivors)
    return res
