"""Who took the CPU: per-thread CPU time of the target and the CPU time of
the load generator and of the whole machine, read from /proc at a fine
interval, out of process (nothing runs in the target for it).

When the loop thread was runnable but not running (a host stall), the deltas
over the stall's window say whose threads ran instead: the target's own
(streaming workers, a DSP pool: a defect of the target) or the load generator
and other processes (the environment). analysis/cpu_share.py judges.

Each thread's run-queue wait (schedstat) is recorded too: how long the
target's work was held up waiting for a core, which with the machine's busy
time says how much of a stream's latency the machine, not the target, added
(analysis/cpu_share.outside_delay).

Linux only; elsewhere it records nothing and the analysis says so.
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

CPU_THREADS = "cpu_threads.jsonl"


def _stat_fields(text: str) -> tuple[str, list[str]]:
    """(comm, the fields after it) of a /proc stat line; comm may hold spaces and parentheses."""
    a, b = text.index("("), text.rindex(")")
    return text[a + 1:b], text[b + 2:].split()


def _ticks(path: str) -> tuple[str, int] | None:
    try:
        with open(path, "rb") as fh:
            comm, rest = _stat_fields(fh.read().decode("utf-8", "replace"))
        return comm, int(rest[11]) + int(rest[12])  # utime + stime (fields 14, 15)
    except (OSError, ValueError, IndexError):
        return None


def _runq_ms(path: str) -> float | None:
    """A thread's time runnable but waiting for a CPU (schedstat's second field, ns), in ms."""
    try:
        with open(path, "rb") as fh:
            return int(fh.read().split()[1]) / 1e6
    except (OSError, ValueError, IndexError):
        return None


class ThreadCpuSampler:
    def __init__(self, target_pid: int, out_path: Path, period_s: float = 0.1):
        self.pid = target_pid
        self.out_path = Path(out_path)
        self.period = period_s
        self.others: list[int] = []  # the load generator's processes, set once they run
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"cpu-threads-{target_pid}", daemon=True)

    def start(self) -> "ThreadCpuSampler":
        if os.path.isdir(f"/proc/{self.pid}/task"):
            self._thread.start()
        return self

    def set_load_generator(self, pids: list[int]) -> None:
        self.others = list(pids)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _sample(self) -> dict | None:
        threads, waits = {}, {}
        try:
            tids = os.listdir(f"/proc/{self.pid}/task")
        except OSError:
            return None
        for tid in tids:
            got = _ticks(f"/proc/{self.pid}/task/{tid}/stat")
            if got:
                threads[tid] = [got[0], got[1]]
            w = _runq_ms(f"/proc/{self.pid}/task/{tid}/schedstat")
            if w is not None:
                waits[tid] = round(w, 3)
        loadgen = 0
        for p in self.others:
            got = _ticks(f"/proc/{p}/stat")
            if got:
                loadgen += got[1]
        try:
            with open("/proc/stat", "rb") as fh:
                cpu = [int(x) for x in fh.readline().split()[1:]]
            busy, total = sum(cpu) - cpu[3] - (cpu[4] if len(cpu) > 4 else 0), sum(cpu)
        except (OSError, ValueError, IndexError):
            busy = total = None
        return {"t": time.time(), "threads": threads, "waits": waits, "loadgen": loadgen, "busy": busy,
                "total": total}

    def _run(self) -> None:
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.out_path, "a", encoding="utf-8", buffering=1) as fh:
            fh.write(json.dumps({"meta": True, "pid": self.pid, "clk_tck": os.sysconf("SC_CLK_TCK"),
                                 "ncpu": os.cpu_count(), "period_s": self.period}) + "\n")
            while not self._stop.wait(self.period):
                rec = self._sample()
                if rec is None:  # the target is gone
                    return
                fh.write(json.dumps(rec, separators=(",", ":")) + "\n")
