"""crash_restart: does the target come back from kill -9 with its state?

Procedure: write every settings/preset route the OpenAPI spec declares, each
with a marker string; read the library's tracks and those settings back (the
"before" snapshot); start a stream and a library scan; kill -9 the target
process while both run; look for lock/pid/owner files left in its HOME; start
it again through the wrapper's hook (same argv, environment, HOME, and
instrumentation) and time it to healthy; take the "after" snapshot; check the
databases under HOME on a copy; play one track to its end. The judge
(analysis.dynamic.crash_restart) compares the snapshots."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from . import rest_writes as rw
from .state_probe import find_dbs, integrity, play_through, playable, scan, scan_route
from .ws_probe import kind_is, try_open

STATE_WORDS = ("setting", "preset")
LOCK_NAMES = (".lock", ".pid", "lockfile", ".owner")


def _lock_files(home: Path, tmp: Path) -> list[str]:
    """Lock, pid and owner files in the target's HOME (not its library) and TMPDIR."""
    music = home / "Music"
    out = []
    for root, label in ((home, "$HOME"), (tmp, "$TMPDIR")):
        out += [f"{label}/{p.relative_to(root)}" for p in sorted(root.rglob("*")) if p.is_file()
                and music not in p.parents and any(n in p.name.lower() for n in LOCK_NAMES)]
    return out


def _snapshot(base_url: str, paths: list[str], ids: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for p in paths:
        status, text = rw.read(base_url, p, ids, spec)
        out[p] = {"status": status, "body": rw.canonical(text) if status == 200 else text[:300]}
    return out


def crash_restart(*, base_url: str, run_dir: Path, tracks: list[dict[str, Any]], compression: bool, home: Path,
                  target: Any = None, settle_s: float = 1.0, **_: Any) -> dict[str, Any]:
    if target is None:
        return {"skipped": "needs the wrapper's restart hook (run through instrument.run)"}
    run_dir, home = Path(run_dir), Path(home)
    usable = playable(tracks)
    if not usable:
        return {"outcome": "error", "error": "no track with a server id"}
    spec = rw.spec_of(base_url) or {}
    ids = {"track": usable[0]["track_id"], "path": str(home / "Music")}
    res: dict[str, Any] = {"outcome": "done", "spec": bool(spec)}
    # -- state worth keeping, written through the API ------------------------------
    ops, _ = rw.operations(spec)
    writes = [rw.write(base_url, spec, op, ids, rw.new_marker("c"))
              for op in ops if any(w in op["path"].lower() for w in STATE_WORDS)]
    res["writes"] = writes
    paths = ["/api/library/tracks"] if rw.has_get(spec, "/api/library/tracks") or not spec else []
    for op in ops:
        if any(w in op["path"].lower() for w in STATE_WORDS):
            p = rw.read_back_path(spec, op["path"])
            if p and "{" not in p and p not in paths:
                paths.append(p)
    for p, item in sorted((spec.get("paths") or {}).items()):
        if "get" in item and "{" not in p and any(w in p.lower() for w in STATE_WORDS) and p not in paths:
            paths.append(p)
    res["snapshot_routes"] = [rw.route("GET", p) for p in paths]
    res["before"] = _snapshot(base_url, paths, ids, spec)
    res["locks_before"] = _lock_files(home, run_dir / "tmp")
    # -- the crash: a stream playing and a scan running ------------------------------
    longest = max(usable, key=lambda t: t.get("duration_s") or 0)
    probe, why = try_open(base_url, compression=compression)
    streaming = False
    if probe is not None:
        probe.send("play_normal", {"track_id": longest["track_id"]})
        streaming = probe.wait_for(kind_is("binary"), 30.0) is not None
    res["stream_playing_at_kill"] = streaming
    sroute = scan_route(spec) if spec else "/api/library/scan"
    scans: list[dict[str, Any]] = []
    scanner = None
    if sroute:
        scanner = threading.Thread(target=lambda: scans.append(scan(base_url, sroute, home / "Music", 30.0)),
                                   daemon=True)
        scanner.start()
        time.sleep(0.2)  # the scan request is in the server
    res["scan_running_at_kill"] = bool(scanner and scanner.is_alive())
    res["killed_pid"] = target.pid
    res["kill_exit_code"] = target.kill9()
    if probe is not None:
        probe.close()
    if scanner is not None:
        scanner.join(timeout=10)
    res["scan_at_kill"] = scans[0] if scans else None
    res["locks_after_kill"] = _lock_files(home, run_dir / "tmp")
    res["orphans_after_kill"] = target.orphans(kill=True)  # what the crash left running, then killed
    # -- the restart ---------------------------------------------------------------
    try:
        res["restart_healthy_s"] = round(target.restart(), 3)
    except RuntimeError as e:
        # the target cannot come back: that is this check's finding, not an invalid run
        target.ended_by_check = "crash_restart"
        res.update(outcome="restart_failed", error=str(e)[:800])
        return res
    res["restarted_pid"] = target.pid
    time.sleep(settle_s)
    res["after"] = _snapshot(base_url, paths, ids, spec)
    res["integrity"] = [integrity(db, run_dir / "checks" / "crash_restart" / "db-copy", home) for db in find_dbs(home)]
    shortest = min(usable, key=lambda t: t.get("duration_s") or 1e9)
    res["stream_after"] = play_through(base_url, shortest, compression=compression, timeout_s=90.0)
    return res
