"""Drives a scenario with Locust, headless, in processes the wrapper owns.

Locust runs as its own process (or a master and N local workers), so its
gevent loop and CPU are separate from both the wrapper and the target; the
wrapper samples its CPU to decide whether the load generator saturated, in
which case the run's latencies say nothing about the backend.
"""
from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from scenarios.catalogue import Scenario

from .procs import OwnedProcess, free_port

LOCUSTFILE = Path(__file__).resolve().parent.parent / "scenarios" / "locustfile.py"


@dataclass
class LoadRun:
    run_dir: Path
    procs: list[OwnedProcess] = field(default_factory=list)
    started: float = 0.0
    duration_s: float = 0.0

    def stop(self, grace_s: float = 2.0) -> None:
        # Locust writes its CSV/HTML summaries on SIGTERM within a second or
        # two; waiting longer only delays the report (the wrapper's own
        # capture does not depend on it), so the group is then killed.
        for p in reversed(self.procs):
            p.stop(grace_s=grace_s)


def write_config(run_dir: Path, *, base_url: str, scenario: Scenario, users: dict[str, int], options: dict[str, Any],
                 tracks: list[dict[str, Any]], duration_s: float, compression: bool, workers: int = 0) -> Path:
    cfg = {
        "base_url": base_url, "run_dir": str(run_dir), "scenario": scenario.name, "users": users,
        "options": options, "tracks": [{k: v for k, v in t.items() if k != "abs_path"} for t in tracks],
        # users get duration_s of load from Locust's own start (its import and
        # spawn are not load); end_t is the latest that can be, if the start is
        # never seen. Past it users start nothing, and Locust quits once all of
        # them are back (its --run-time is only the backstop)
        "duration_s": duration_s, "end_t": time.time() + duration_s + 2.0, "compression": compression,
        "locust_workers": workers,
    }
    path = run_dir / "load" / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cfg, indent=1))
    return path


def start(run_dir: Path, *, base_url: str, config_path: Path, users: dict[str, int], spawn_rate: float,
          duration_s: float, workers: int = 0, env: dict[str, str]) -> LoadRun:
    load = run_dir / "load"
    total = sum(users.values())
    run_time = f"{int(math.ceil(duration_s + 4))}s"
    common = ["-f", str(LOCUSTFILE), "--host", base_url, "--loglevel", "WARNING"]
    lenv = dict(env)
    lenv["EARSHOT_CONFIG"] = str(config_path)
    lenv["PYTHONPATH"] = str(LOCUSTFILE.parent.parent)
    master = [sys.executable, "-m", "locust", *common, "--headless", "--users", str(total), "--spawn-rate",
              f"{spawn_rate:g}", "--run-time", run_time, "--stop-timeout", "10", "--csv", str(load / "locust"),
              "--html", str(load / "locust.html"), "--only-summary", *users.keys()]
    lr = LoadRun(run_dir=run_dir, started=time.time(), duration_s=duration_s)
    if workers > 0:
        mport = free_port()
        master += ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(mport),
                   "--expect-workers", str(workers)]
        lr.procs.append(OwnedProcess("locust-master", master, env=lenv, log=load / "locust.log"))
        for i in range(workers):
            argv = [sys.executable, "-m", "locust", *common, "--worker", "--master-host", "127.0.0.1",
                    "--master-port", str(mport), *users.keys()]
            lr.procs.append(OwnedProcess(f"locust-worker-{i}", argv, env=lenv, log=load / f"locust-worker-{i}.log"))
    else:
        lr.procs.append(OwnedProcess("locust", master, env=lenv, log=load / "locust.log"))
    return lr


def progress(run_dir: Path) -> dict[str, Any]:
    """Sum the per-process progress files the locustfile writes each second."""
    total: dict[str, Any] = {"users": 0, "active_streams": 0, "bytes": 0, "streams": 0, "errors": 0, "cycles": 0}
    for p in (run_dir / "load").glob("progress-*.json"):
        try:
            d = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        for k in total:
            total[k] += d.get(k, 0) or 0
    return total


def wait(lr: LoadRun, *, target_alive: Callable[[], bool], tick: Callable[[], None], timeout_s: float) -> str:
    """Wait for Locust to finish. Returns 'done', 'target_died', 'loadgen_failed'
    or 'timeout'; the caller stops what remains."""
    deadline = time.monotonic() + timeout_s
    while True:
        tick()
        if not lr.procs[0].alive():
            rc = lr.procs[0].returncode
            # Locust exits 1 when any request failed, which is data, not a crash;
            # but a locustfile that failed to load also exits 1 and never ran a user
            ran = any((lr.run_dir / "load").glob("progress-*.json"))
            return "done" if rc in (0, 1) and ran else "loadgen_failed"
        if not target_alive():
            return "target_died"
        if time.monotonic() > deadline:
            return "timeout"
        lr.procs[0].wait_exit(0.5)  # back at once when Locust exits
