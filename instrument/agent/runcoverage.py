"""--coverage: which of the target's own lines the scenario executed, measured
by coverage.py inside the target, and the app's own route table, so analysis
can say which routes the load reached.

coverage.py comes from earshot's cache for the target's interpreter
(instrument/target_site.py), never from the target's environment. On Python
3.12+ it runs on its sys.monitoring core (COVERAGE_CORE=sysmon), which costs
far less than a trace function; that core measures branches only from 3.14
on, so below that the run measures lines. Started before the app is imported
(module-level code counts) and saved after the loop has stopped (off the loop).

Files written under RUN/agent/: coverage.dat.<pid> (coverage's own data file
per target process, for `coverage combine` and `coverage report`),
coverage.json (per file the executed lines, the union over every process of
the run) and coverage_routes.json (every route of the app: path, kind,
methods, the endpoint's file and line span).

A run can outlive a target process: the crash_restart check kills it with
SIGKILL and starts another. So the wrapper asks for a checkpoint first
(SIGUSR2): a thread of ours, not the loop, flushes what was measured into
coverage.json and acknowledges in coverage_checkpoint.json; every write
merges with what an earlier process of the run left there.
"""
from __future__ import annotations

import inspect
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .watchdog import AGENT_WORK


class RunCoverage:
    def __init__(self, out: Path, roots: list[str]):
        self.out = out
        self.roots = roots
        if sys.version_info >= (3, 12):
            os.environ.setdefault("COVERAGE_CORE", "sysmon")
        import coverage  # ImportError: the caller says which module is missing

        self.branch = sys.version_info >= (3, 14)
        self.cov = coverage.Coverage(data_file=str(out / "coverage.dat"), data_suffix=str(os.getpid()), source=roots,
                                     branch=self.branch, config_file=False)
        self._lock = threading.Lock()
        self._wanted = threading.Event()
        self._checkpoints = 0
        self.cov.start()
        # the handler runs on the main thread (the loop's): it only wakes ours
        signal.signal(signal.SIGUSR2, lambda *_: self._wanted.set())
        threading.Thread(target=self._checkpointer, name="earshot-coverage", daemon=True).start()
        self._meta = {"core": os.environ.get("COVERAGE_CORE", "default"), "branch": self.branch,
                      "python": sys.version.split()[0], "cwd": os.getcwd(), "code_roots": roots}
        self._write_meta()

    def _write_meta(self) -> None:
        (self.out / "coverage_meta.json").write_text(json.dumps(self._meta))

    def record_routes(self, app: Any) -> None:
        routes = []
        for r in _walk_routes(getattr(app, "routes", None) or getattr(getattr(app, "router", None), "routes", []) or []):
            routes.append(r)
        (self.out / "coverage_routes.json").write_text(json.dumps({"code_roots": self.roots, "routes": routes}, indent=1))

    def _write_lines(self) -> None:
        """The executed lines per file, merged with coverage.json as it
        stands (an earlier process of this run, or an earlier checkpoint).
        Not coverage's own JSON report: it parses every measured source file
        and, on a large target on a loaded machine, outlives the shutdown
        grace; analysis finds the statements itself."""
        for attempt in range(3):
            try:
                data = self.cov.get_data()
                files = {f: set(data.lines(f) or []) for f in data.measured_files()}
                break
            except RuntimeError:  # a file first measured while we read: read again
                if attempt == 2:
                    raise
                time.sleep(0.05)
        path = self.out / "coverage.json"
        try:
            before = json.loads(path.read_text()).get("files") or {}
        except (OSError, ValueError):
            before = {}
        for f, v in before.items():
            files.setdefault(f, set()).update(v.get("executed_lines") or [])
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"format": "earshot-executed-lines",
                                   "files": {f: {"executed_lines": sorted(v)} for f, v in files.items()}}))
        os.replace(tmp, path)

    def _checkpointer(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            # flushing walks the collected data with the GIL held: a loop stall
            # inside it is the instrumentation's cost, not the target's
            with self._lock, AGENT_WORK:
                try:
                    self._write_lines()
                    self._checkpoints += 1
                    ack = {"pid": os.getpid(), "checkpoints": self._checkpoints, "t": time.time()}
                except Exception as e:  # said in the ack, never raised into the target
                    ack = {"pid": os.getpid(), "checkpoints": self._checkpoints, "t": time.time(),
                           "error": f"{type(e).__name__}: {e}"}
                (self.out / "coverage_checkpoint.json").write_text(json.dumps(ack))

    def stop(self) -> None:
        """Stop, save this process's coverage.dat.<pid>, and merge its executed lines into coverage.json."""
        with self._lock:
            self.cov.stop()
            self.cov.save()
            self._write_lines()
        core = getattr(getattr(self.cov, "_collector", None), "core", None)
        if core is not None:
            self._meta["core"] = str(core)
        self._write_meta()


def _walk_routes(routes: list[Any], prefix: str = "") -> list[dict[str, Any]]:
    out = []
    for r in routes:
        inner = r.__dict__.get("original_router")  # newer FastAPI keeps an included router whole
        if inner is not None:
            ctx = r.__dict__.get("include_context")
            out += _walk_routes(list(getattr(inner, "routes", []) or []), prefix + str(getattr(ctx, "prefix", "") or ""))
            continue
        path = prefix + str(getattr(r, "path", "") or "")
        sub = getattr(r, "routes", None)
        endpoint = getattr(r, "endpoint", None)
        if endpoint is None and sub:  # a Mount or an included router
            out += _walk_routes(list(sub), path)
            continue
        if endpoint is None:
            continue
        kind = "websocket" if "WebSocket" in type(r).__name__ else "http"
        fn = inspect.unwrap(endpoint)
        try:
            lines, first = inspect.getsourcelines(fn)
            file = os.path.realpath(inspect.getsourcefile(fn) or "")
        except (OSError, TypeError, AttributeError):
            lines, first, file = [], 0, ""
        # the lines of its body's own code: the decorator and def lines run when
        # the app is built (often inside a router factory), not when the route is called
        code = getattr(fn, "__code__", None)
        def_at = first + next((i for i, t in enumerate(lines) if t.lstrip().startswith(("def ", "async def "))), 0)
        body = sorted({ln for _, _, ln in code.co_lines() if ln and ln > def_at}) if code is not None else []
        out.append({"body_lines": body, "path": path, "kind": kind, "methods": sorted(getattr(r, "methods", None) or []),
                    "name": getattr(r, "name", None), "function": getattr(fn, "__qualname__", str(fn)),
                    "file": file, "first_line": first, "last_line": first + len(lines) - 1 if lines else first})
    return out
