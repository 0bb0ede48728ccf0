"""Optional tracemalloc inside the target: snapshots at start, at intervals
and at the end; each records the top growth since the start by traceback,
with the target's own file:line first."""
from __future__ import annotations

import threading
import time
import tracemalloc

from .events import EventLog
from .watchdog import AGENT_WORK


class MemTracer:
    def __init__(self, log: EventLog, *, frames: int = 10, interval_s: float = 60.0, code_roots: list[str] | None = None,
                 top: int = 15):
        self.log = log
        self.frames = frames
        self.interval = interval_s
        self.roots = code_roots or []
        self.top = top
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._base: tracemalloc.Snapshot | None = None

    def start(self) -> None:
        tracemalloc.start(self.frames)
        self._base = self._snapshot()
        self._record("start", self._base)
        self._thread = threading.Thread(target=self._run, name="earshot-tracemalloc", daemon=True)
        self._thread.start()

    def _snapshot(self) -> tracemalloc.Snapshot:
        return tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen importlib._bootstrap>")])

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            # a snapshot holds the GIL for as long as it walks every trace: a
            # loop stall inside it is the instrumentation's cost
            with AGENT_WORK:
                self._record("interval", self._snapshot())

    def _record(self, phase: str, snap: tracemalloc.Snapshot) -> None:
        current, peak = tracemalloc.get_traced_memory()
        growth = []
        if self._base is not None and snap is not self._base:
            for stat in snap.compare_to(self._base, "traceback")[: self.top]:
                frames = [{"file": f.filename, "line": f.lineno} for f in stat.traceback]
                own = [f for f in frames if any(f["file"].startswith(r) for r in self.roots)]
                growth.append({"size_diff": stat.size_diff, "count_diff": stat.count_diff, "size": stat.size,
                               "where": (own[-1] if own else frames[-1]) if frames else None,
                               "traceback": frames[-8:]})
        self.log.write("tracemalloc", {"t": time.time(), "phase": phase, "traced_bytes": current, "peak_bytes": peak,
                                       "top_growth": growth})

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if tracemalloc.is_tracing():
            self._record("end", self._snapshot())
            tracemalloc.stop()
