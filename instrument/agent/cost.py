"""What the agent itself costs the target, measured inside it: the CPU time of
the agent's own threads (the watchdog, the tracemalloc snapshotter, the
console's UI thread), read from each thread's CPU clock, against the whole
process's CPU time over the same span. Written to agent/cost.json every few
seconds and at shutdown, so a run that is killed still has a figure.

Not in the figure: work the instrumentation makes the target's own threads do
(the heartbeat's turns on the loop, tracemalloc's allocation hook, a
profiler's per-call hook); those show in the benchmark's side-by-side ratios
(benchmarks/overhead.py), not here.
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

AGENT_THREAD_PREFIX = "earshot-"


class CostMeter:
    def __init__(self, out: Path):
        self.path = out / "cost.json"
        self.extra: list[threading.Thread] = []
        self._t0 = time.perf_counter()
        self._cpu0 = time.process_time()
        self._last: dict[str, float] = {}
        self._base: dict[str, float] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        """Count from now (the loop's start): the start-up before it is not the load's."""
        with self._lock:
            self._t0 = time.perf_counter()
            self._cpu0 = time.process_time()
            self._last.clear()
            self._base = {t.name: c for t, c in ((t, self._clock(t)) for t in self._threads()) if c is not None}

    @staticmethod
    def _clock(t: threading.Thread) -> float | None:
        if t.ident is None:
            return None
        try:
            return time.clock_gettime(time.pthread_getcpuclockid(t.ident))
        except (OSError, AttributeError):  # a thread's clock dies with it
            return None

    def register(self, thread: threading.Thread | None) -> None:
        """A thread the agent started under a name not its own (a library's)."""
        if thread is not None:
            self.extra.append(thread)

    def _threads(self) -> list[threading.Thread]:
        named = [t for t in threading.enumerate() if t.name.startswith(AGENT_THREAD_PREFIX)]
        return named + [t for t in self.extra if t not in named]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            for t in self._threads():
                c = self._clock(t)
                if c is not None:  # a finished thread keeps its last reading
                    self._last[t.name] = c - self._base.get(t.name, 0.0)
            agent = sum(self._last.values())
            process = time.process_time() - self._cpu0
            return {"t": time.time(), "wall_s": round(time.perf_counter() - self._t0, 3),
                    "process_cpu_s": round(process, 4), "agent_cpu_s": round(agent, 4),
                    "agent_cpu_pct": round(100.0 * agent / process, 3) if process > 0 else None,
                    "threads": {k: round(v, 4) for k, v in sorted(self._last.items())},
                    "not_counted": "in-thread hooks: the heartbeat's loop turns, tracemalloc's allocation hook, "
                                   "profilers' per-call hooks"}

    def write(self) -> None:
        doc = self.snapshot()
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc, indent=1))
        os.replace(tmp, self.path)
