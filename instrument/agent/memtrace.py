"""Optional tracemalloc inside the target: snapshots at start, at intervals
and at the end; each records the top growth since the start by traceback,
with the target's own file:line first."""
from __future__ import annotations

import json
import threading
import time
import tracemalloc

from .events import EventLog
from .watchdog import AGENT_WORK


def _python_work(n: int) -> int:
    """A fixed stand-in for a server's per-message Python: small dicts and
    lists made and dropped, a small JSON encode, string formatting, calls."""
    total = 0
    for i in range(n):
        msg = {"type": "audio_chunk_meta", "chunk_index": i, "frame_index": i % 7, "samples": [i, i + 1, i + 2],
               "track": f"track-{i % 13}"}
        total += len(json.dumps(msg)) + len([k for k in msg if k != "samples"]) + len(str(i) + msg["track"])
    return total


def _at_depth(depth: int, fn, *args):
    # a server's handler runs a dozen or more frames deep (loop, protocol,
    # framework, route): tracemalloc records up to `frames` of them per allocation
    return _at_depth(depth - 1, fn, *args) if depth > 0 else fn(*args)


def _best_cpu_s(reps: int, n: int) -> float:
    best = float("inf")
    for _ in range(reps):
        t0 = time.thread_time()  # this thread's CPU: another process on the cores does not count
        _at_depth(16, _python_work, n)
        best = min(best, time.thread_time() - t0)
    return best


def measure_slowdown(frames: int, reps: int = 3, n: int = 1500) -> float:
    """How many times slower allocation-dense Python runs with tracemalloc
    recording `frames` frames per allocation, measured in this process before
    the real tracing starts. It is the most tracing can stretch a line (code
    that allocates less, or works in C, is stretched less): the analysis uses
    it to tell a stall the tracing may have made from one it cannot have."""
    bare = _best_cpu_s(reps, n)
    tracemalloc.start(frames)
    try:
        traced = _best_cpu_s(reps, n)
    finally:
        tracemalloc.stop()
    return round(max(1.0, traced / bare), 2) if bare > 0 else 1.0


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
        self.slowdown: float | None = None

    def start(self) -> None:
        self.slowdown = measure_slowdown(self.frames)
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
