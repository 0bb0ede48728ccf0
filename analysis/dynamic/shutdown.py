"""Judge run.json["checks"]["shutdown"]: after SIGTERM with a stream open,
the target must exit within the grace period and leave nothing running or
half-written: no processes of its own, no listening port, none of its own
code still running in a thread, no files in its TMPDIR, no WAL that was not
checkpointed. Pure."""
from __future__ import annotations

from typing import Any

from ..model import Finding, Location


def _short(path: str, roots: list[str]) -> str:
    for r in roots:
        if path.startswith(r.rstrip("/") + "/"):
            return path[len(r.rstrip("/")) + 1:]
    return path


def busy_threads(doc: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Threads still running the target's own code after its server shut down
    (idle pool workers waiting for work are not)."""
    return [t for t in (doc or {}).get("threads") or [] if t.get("own_frames") and not t.get("idle_pool_worker")]


def analyse(result: dict[str, Any], scenario: str | None) -> tuple[list[Finding], dict[str, float]]:
    if not result or result.get("outcome") != "done":
        return [], {}
    findings: list[Finding] = []
    exit_s = result.get("exit_s")
    metrics: dict[str, float] = {"shutdown_survivors": float(len(result.get("survivors") or []))}
    if exit_s is not None:
        metrics["shutdown_exit_s"] = float(exit_s)
    where = Location(scenario=scenario, function="shutdown (SIGTERM)")
    doc = result.get("threads_at_exit") or {}
    busy = busy_threads(doc)
    if exit_s is None:
        pending = (result.get("pending_tasks") or {})
        # first the connections uvicorn waits for, then tasks in the target's own code
        tasks = sorted(pending.get("tasks") or [], key=lambda t: (not t.get("connection"), not t.get("own_frames")))
        roots = pending.get("code_roots") or []
        own = next((t["own_frames"][-1] for t in tasks if t.get("own_frames")), None)
        loc = (Location(scenario=scenario, file=_short(str(own["file"]), roots), line_start=own["line"],
                        function=str(own["function"])) if own else where)
        if doc and busy:  # the server finished; the process stays for a thread still running the target's code
            roots = doc.get("code_roots") or roots
            first = busy[0]["own_frames"][0]
            loc = Location(scenario=scenario, file=_short(str(first["file"]), roots), line_start=first["line"],
                           function=str(first["function"]))
        findings.append(Finding(
            kind="shutdown_timeout", title="The backend does not exit on SIGTERM",
            severity="HIGH", dimension="Performance",
            description=f"SIGTERM with a stream open: the process was still running after {result.get('grace_s')} s "
                        "and had to be killed.",
            impact="Every stop (an update, a logout, a service restart) waits for the kill timeout and ends with "
                   "SIGKILL: nothing is flushed, the database is left as a crash leaves it.",
            suggested_fix="Cancel streaming tasks and close WebSockets in the lifespan shutdown; bound every wait "
                          "there with a timeout.",
            location=loc,
            evidence=[f"pid {result.get('pid')} still running {result.get('grace_s')} s after SIGTERM"]
                     + [f"target log after SIGTERM: {ln[:160]}" for ln in (result.get("log_after_sigterm") or [])[-3:]]
                     + [f"pending task {t.get('coro')}" + (f" ({t['request']})" if t.get("request") else "") + ": " + (" <- ".join(
                         f"{_short(str(f['file']), roots)}:{f['line']} {f['function']}"
                         for f in reversed(t.get("own_frames") or t.get("frames") or []))[:300])
                        for t in tasks[:4]]
                     + [f"thread '{t['name']}' (daemon {t['daemon']}) still running after the server finished: "
                        + " <- ".join(f"{_short(str(f['file']), doc.get('code_roots') or [])}:{f['line']} {f['function']}"
                                      for f in t["own_frames"][:4]) for t in busy[:3]],
            figures={"grace_s": float(result.get("grace_s") or 0), "pending_tasks": float(len(tasks)),
                     "busy_threads": float(len(busy))},
            key="shutdown:timeout"))
    survivors = result.get("survivors") or []
    if survivors:
        findings.append(Finding(
            kind="shutdown_orphan_children", title="Child processes outlive the backend",
            severity="HIGH", dimension="Performance",
            description=f"{len(survivors)} process(es) the backend started were still running "
                        "after it exited on SIGTERM.",
            impact="Every start and stop leaves processes behind, holding memory, CPU and open files (the "
                   "library, the database) until the machine restarts.",
            suggested_fix="Keep children in the server's process group and terminate and wait for them in the "
                          "lifespan shutdown (or use a pool that does).",
            location=where,
            evidence=[f"pid {c['pid']} ({c.get('name')}): {c.get('cmdline', '')[:160]}" for c in survivors[:5]],
            figures={"processes": float(len(survivors))}, key="shutdown:children"))
    if exit_s is not None and result.get("port_accepts"):
        findings.append(Finding(
            kind="shutdown_port_open", title="The backend's port still accepts connections after it exited",
            severity="HIGH", dimension="Performance",
            description="After the server process exited, its loopback port still accepted TCP connections: a "
                        "process that inherited the listening socket holds it.",
            impact="The next start fails with 'address in use'.",
            suggested_fix="Do not let children inherit the listening socket (close_fds); stop them at shutdown.",
            location=where, evidence=[f"pid {result.get('pid')} exited in {exit_s} s"], key="shutdown:port"))
    if busy and exit_s is not None:  # (when it never exited, the timeout finding names them)
        roots = doc.get("code_roots") or []
        first = busy[0]["own_frames"][0]
        findings.append(Finding(
            kind="shutdown_threads_running", title="Threads still run the backend's code after its shutdown",
            severity="MEDIUM", dimension="Performance",
            description=f"{len(busy)} thread(s) were still running the target's own code after the server's "
                        "lifespan shutdown had finished; the interpreter abandons (daemon) or waits for them.",
            impact="Work cut off mid-way at exit (a half-written file or database row) or an exit that hangs.",
            suggested_fix="Signal background threads to stop and join them (with a timeout) in the lifespan "
                          "shutdown.",
            location=Location(scenario=scenario, file=_short(str(first["file"]), roots), line_start=first["line"],
                              function=str(first["function"])),
            evidence=[f"thread '{t['name']}' (daemon {t['daemon']}): " + " <- ".join(
                f"{_short(str(f['file']), roots)}:{f['line']} {f['function']}" for f in t["own_frames"][:3])
                for t in busy[:5]],
            figures={"threads": float(len(busy))}, key="shutdown:threads"))
    left = result.get("tmp_leftovers") or {}
    if exit_s is not None and left.get("files"):  # a process still running may still clean up
        findings.append(Finding(
            kind="shutdown_temp_files_left", title="Temporary files are left in TMPDIR after shutdown",
            severity="LOW" if (left.get("bytes") or 0) < (10 << 20) else "MEDIUM", dimension="Performance",
            description=f"{left['files']} file(s), {left.get('bytes', 0) / (1 << 20):.1f} MiB, were left in the "
                        "backend's TMPDIR (fresh at start) after a clean SIGTERM shutdown.",
            impact="Chunk caches and temporary files accumulate across runs until the disk or /tmp fills.",
            suggested_fix="Delete the chunk cache and temporary files in the lifespan shutdown (or use "
                          "TemporaryDirectory).",
            location=where, evidence=[f"$TMPDIR/{x['path']} ({x['bytes']} bytes)" for x in left.get("examples", [])[:6]],
            figures={"files": float(left["files"]), "bytes": float(left.get("bytes") or 0)}, key="shutdown:tmp"))
    wal = [w for w in result.get("wal") or [] if w.get("wal_bytes")]
    if exit_s is not None and wal:
        findings.append(Finding(
            kind="shutdown_wal_not_checkpointed", title="SQLite WAL not checkpointed at shutdown",
            severity="MEDIUM", dimension="Performance",
            description="After a clean SIGTERM exit, the database's write-ahead log still held data: its "
                        "connections were not closed (the last close checkpoints and removes the WAL).",
            impact="Connections leaked at exit; the next start must replay the WAL, and a copy or backup of the "
                   "database file alone misses the latest writes.",
            suggested_fix="Dispose of the engine / close every connection in the lifespan shutdown.",
            location=where, evidence=[f"$HOME/{w['db']}-wal: {w['wal_bytes']} bytes" for w in wal],
            figures={"wal_bytes": float(sum(w["wal_bytes"] for w in wal))}, key="shutdown:wal"))
    return findings, metrics
