"""Loop-stall and loop-lag detection that works on uvloop.

Monkey-patching asyncio's Handle does nothing under uvloop, and debug mode
says little, so we use the watchdog design: a heartbeat coroutine on the loop
wakes every threshold/5 and stamps the time; a watchdog thread notices when the
stamp is overdue and, while the stall is still in progress, reads the loop
thread's stack with sys._current_frames() (at detection and again at 10x the
threshold). When the heartbeat returns, the stall is recorded with its
duration, stacks, the loop thread's CPU time (CPU-bound vs waiting) and the GC
time inside it (gc.callbacks), so a collection is not blamed on user code.

Besides stalls, every heartbeat's lag is kept (per-second p50/p90/p99/max)
and the loop thread's stack is sampled at a fixed rate, so a loop that is
busy in many short turns below the threshold (saturation) shows up with the
frames that keep it busy.

The watchdog is itself a thread of the target, and every time it wakes it
takes the GIL from the loop; on a loaded two-core machine each wake that lands
in a request can cost that request a scheduler quantum. So it wakes only when
it has something to do: at the moment the last beat would become a stall (not
at a fixed poll), and for stack samples only while the loop thread is busy
(its CPU share, or a late beat), which is when saturation can happen.
"""
from __future__ import annotations

import asyncio
import collections
import faulthandler
import gc
import os
import random
import sys
import sysconfig
import threading
import time
from typing import Any

from . import threadstat
from .events import EventLog

_STDLIB = os.path.realpath(sysconfig.get_paths()["stdlib"])
_AGENT_DIR = os.path.dirname(os.path.realpath(__file__))
# the loop thread's share of CPU (since the watchdog's last wake, or over the
# last second) above which its stack is sampled: saturation needs 0.6
BUSY_SAMPLING_SHARE = 0.25


class AgentWork:
    """Spans of time in which one of the agent's own threads did work that
    holds the GIL for long (a tracemalloc snapshot, writing a profile): a
    loop stall inside one is the instrumentation's cost, not the target's."""

    def __init__(self) -> None:
        self.spans: collections.deque[tuple[float, float]] = collections.deque(maxlen=256)
        self.open_since: float | None = None

    def __enter__(self) -> "AgentWork":
        self.open_since = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.open_since is not None:
            self.spans.append((self.open_since, time.perf_counter()))
        self.open_since = None

    def overlap_ms(self, start: float, end: float) -> float:
        spans = list(self.spans) + ([(self.open_since, end)] if self.open_since is not None else [])
        total = 0.0
        for a, b in spans:
            lo, hi = max(a, start), min(b, end)
            if hi > lo:
                total += hi - lo
        return total * 1000.0


# one per process: the agent's modules enter it around their GIL-heavy work
AGENT_WORK = AgentWork()


def _percentile(sorted_vals: list[float], q: float) -> float:
    if not sorted_vals:
        return 0.0
    k = (len(sorted_vals) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (k - lo)


class LoopWatchdog:
    def __init__(self, log: EventLog, *, threshold_s: float, code_roots: list[str], busy_sample_hz: float = 50.0,
                 faulthandler_file: Any = None, hang_dump_s: float = 10.0, periodic: Any = None,
                 periodic_s: float = 10.0):
        self.log = log
        self.threshold = threshold_s
        self.interval = threshold_s / 5.0
        self.roots = [os.path.realpath(r) for r in code_roots]
        self.sample_period = 1.0 / busy_sample_hz if busy_sample_hz > 0 else None
        self.fh_file = faulthandler_file
        self.hang_dump_s = hang_dump_s
        # called on this thread every periodic_s (the agent's cost figure), never on the loop
        self.periodic = periodic
        self.periodic_s = periodic_s
        self.last_beat = time.perf_counter()
        self.last_beat_cpu = 0.0
        self.lags: collections.deque[float] = collections.deque()
        self._tasks: collections.deque[dict[str, float]] = collections.deque(maxlen=3600)
        self.loop_tid: int | None = None
        self.loop_native_id: int | None = None
        self._syscall: threadstat.SyscallReader | None = None
        self.loop_cpu_clock: int | None = None
        self.gc_spans: collections.deque[tuple[float, float]] = collections.deque(maxlen=256)
        self._gc_start: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._path_cache: dict[str, tuple[bool, str]] = {}
        self._wall_offset = time.time() - time.perf_counter()
        # run-queue wait of the loop thread (Linux schedstat): a stall during
        # which the thread was runnable but got no CPU is the machine's, not
        # the target's (a noisy CI box, an overloaded load generator)
        self._schedstat_fd: int | None = None
        self._waits: collections.deque[tuple[float, int]] = collections.deque(maxlen=1024)
        # late beats the heartbeat saw (expected, beat, CPU at the beat before, CPU at it, the beat before),
        # and the beat before each stall the watchdog recorded itself, so that none is recorded twice
        self._late: collections.deque[tuple[float, float, float, float, float]] = collections.deque(maxlen=256)
        self._seen: collections.deque[float] = collections.deque(maxlen=64)

    # -- GC ---------------------------------------------------------------------
    def install_gc_callbacks(self) -> None:
        def cb(phase: str, info: dict) -> None:
            if phase == "start":
                self._gc_start = time.perf_counter()
            elif self._gc_start is not None:
                self.gc_spans.append((self._gc_start, time.perf_counter()))
                self._gc_start = None

        gc.callbacks.append(cb)

    def _gc_ms(self, start: float, end: float) -> float:
        total = 0.0
        for a, b in list(self.gc_spans):
            lo, hi = max(a, start), min(b, end)
            if hi > lo:
                total += hi - lo
        return total * 1000.0

    # -- lifecycle -------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Call from inside the running loop."""
        self._loop = loop
        self.loop_tid = threading.get_ident()
        self.loop_native_id = threading.get_native_id()
        self._syscall = threadstat.SyscallReader(self.loop_native_id)
        try:
            self._schedstat_fd = os.open(f"/proc/self/task/{self.loop_native_id}/schedstat", os.O_RDONLY)
        except OSError:
            self._schedstat_fd = None
        first = self._runq_wait_ns()  # a reading from before any stall can start
        if first is not None:
            self._waits.append((time.perf_counter(), first))
        try:
            self.loop_cpu_clock = time.pthread_getcpuclockid(self.loop_tid)
        except (AttributeError, OSError):
            self.loop_cpu_clock = None
        self.last_beat = time.perf_counter()
        self._task = loop.create_task(self._heartbeat(), name="earshot-heartbeat")
        self._thread = threading.Thread(target=self._watch, name="earshot-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._thread is None or not self._thread.is_alive():
            self._record_unseen(None, self._runq_wait_ns())  # late beats of the last wake
        if self._syscall is not None:
            self._syscall.close()
        while self._tasks:  # counts of the last second, not yet written by the thread
            self.log.write("tasks", self._tasks.popleft())

    async def _heartbeat(self) -> None:
        interval = self.interval
        last_tasks = 0.0
        loop = asyncio.get_running_loop()
        while True:
            expected = time.perf_counter() + interval
            await asyncio.sleep(interval)
            now = time.perf_counter()
            # the loop thread's own CPU clock, read by itself: CPU spent between beats
            cpu = time.thread_time()
            if now - expected > self.threshold:
                # a late beat, for the watchdog thread to record if it saw no stall:
                # another thread's C call that held the GIL kept the watchdog out as
                # well, and when it let go the loop took the GIL first
                self._late.append((expected, now, self.last_beat_cpu, cpu, self.last_beat))
            self.last_beat_cpu = cpu
            self.last_beat = now
            self.lags.append(max(0.0, now - expected))
            if now - last_tasks >= 1.0:
                last_tasks = now
                # counted here (all_tasks belongs to the loop's thread), written by
                # the watchdog thread: no file I/O or shared lock on the loop, whose
                # delays would be measured as the target's
                self._tasks.append({"t": now + self._wall_offset, "tasks": len(asyncio.all_tasks(loop))})

    # -- the watchdog thread -----------------------------------------------------
    def _runq_wait_ns(self) -> int | None:
        """Nanoseconds the loop thread has spent runnable but waiting for a CPU."""
        if self._schedstat_fd is None:
            return None
        try:
            return int(os.pread(self._schedstat_fd, 64, 0).split()[1])
        except (OSError, ValueError, IndexError):
            return None

    def _wait_before(self, t: float) -> int | None:
        """The last run-queue reading taken at or before t."""
        best = None
        for when, w in self._waits:
            if when > t:
                break
            best = w
        return best

    def _cpu(self) -> float | None:
        if self.loop_cpu_clock is None:
            return None
        try:
            return time.clock_gettime(self.loop_cpu_clock)
        except OSError:
            return None

    def _watch(self) -> None:
        poll = max(0.002, self.interval)
        stall: dict[str, Any] | None = None
        second_start = time.perf_counter()
        samples = busy = 0
        frames: collections.Counter[str] = collections.Counter()
        next_sample = time.perf_counter()
        cpu_second = self._cpu()
        cpu_prev, t_prev = cpu_second, second_start
        wait_second = self._runq_wait_ns()
        last_second_busy = 0.0
        next_periodic = second_start + self.periodic_s
        while True:
            now = time.perf_counter()
            beat = self.last_beat
            wait_ns = self._runq_wait_ns()
            if wait_ns is not None:
                self._waits.append((now, wait_ns))
            overdue = now - (beat + self.interval)
            if stall is None and overdue > self.threshold:
                stall = {"expected": beat + self.interval, "beat": beat, "stacks": [], "cpu0": self.last_beat_cpu,
                         "deep_taken": False, "dumped": False, "wait0": self._wait_before(beat + self.interval)}
                self._take_stack(stall, now)
            elif stall is not None:
                if beat != stall["beat"]:  # the loop came back
                    stall["wait1"] = wait_ns
                    self._emit_stall(stall, beat)
                    self._seen.append(stall["beat"])
                    stall = None
                else:
                    age = now - stall["expected"]
                    if not stall["deep_taken"] and age >= 10 * self.threshold:
                        stall["deep_taken"] = True
                        self._take_stack(stall, now)
                    if not stall["dumped"] and age >= self.hang_dump_s and self.fh_file is not None:
                        stall["dumped"] = True  # a loop that may never come back: all threads, once
                        self.fh_file.write(f"\n--- loop blocked {age:.1f} s ---\n")
                        self.fh_file.flush()
                        faulthandler.dump_traceback(file=self.fh_file, all_threads=True)
            self._record_unseen(stall, wait_ns)
            # stack sampling, for saturation below the stall threshold; only
            # while the loop is busy (an idle loop cannot be saturated, and a
            # sample costs the loop the GIL)
            sampling = False
            if self.sample_period:
                cpu_now = self._cpu()
                share = ((cpu_now - cpu_prev) / (now - t_prev)
                         if cpu_now is not None and cpu_prev is not None and now > t_prev else 0.0)
                cpu_prev, t_prev = cpu_now, now
                sampling = (share >= BUSY_SAMPLING_SHARE or last_second_busy >= BUSY_SAMPLING_SHARE
                            or overdue > self.interval or stall is not None)
                if sampling and now >= next_sample:
                    # jittered: a fixed period phase-locks to the loop's own rhythm and,
                    # because this thread gets the GIL mostly when the loop releases it,
                    # would sample only its idle moments
                    next_sample = now + self.sample_period * random.uniform(0.5, 1.5)
                    samples += 1
                    where = self._busy_frame()
                    if where is not None:
                        busy += 1
                        frames[where] += 1
            if now - second_start >= 1.0:
                cpu_now = self._cpu()
                cpu_s = (cpu_now - cpu_second) if cpu_now is not None and cpu_second is not None else None
                cpu_second = cpu_now
                runq_s = (wait_ns - wait_second) / 1e9 if wait_ns is not None and wait_second is not None else 0.0
                wait_second = wait_ns
                last_second_busy = self._emit_second(second_start, now, samples, busy, frames, cpu_s, runq_s)
                second_start = now
                samples = busy = 0
                frames = collections.Counter()
                if self.periodic is not None and now >= next_periodic:
                    next_periodic = now + self.periodic_s
                    try:
                        self.periodic()
                    except Exception:  # a figure of ours must never stop the watchdog
                        pass
            # the next wake: when the last beat would become a stall; during a
            # stall, a poll for its end; the next sample while busy; the second's end
            if stall is None:
                wake = self.last_beat + self.interval + self.threshold + 0.001
            else:
                wake = now + poll
            if sampling:
                wake = min(wake, next_sample)
            wake = min(wake, second_start + 1.0)
            if self._stop.wait(max(0.002, wake - time.perf_counter())):
                break

    def _record_unseen(self, open_stall: dict[str, Any] | None, wait_ns: int | None) -> None:
        """The late beats the watchdog did not see as stalls, recorded with no
        stack (it could not run to take one): analysis counts them apart
        (contention, or the agent's own work), never as a line of the target."""
        keep = []
        while self._late:
            expected, end, cpu0, cpu1, beat0 = self._late.popleft()
            if open_stall is not None and beat0 == open_stall["beat"]:
                keep.append((expected, end, cpu0, cpu1, beat0))  # the watchdog's own; it records it
                continue
            if beat0 in self._seen:
                continue
            span_ms = (end - beat0) * 1000
            cpu_ms = (cpu1 - cpu0) * 1000
            w0 = self._wait_before(expected)
            runq_ms = round(min((wait_ns - w0) / 1e6, span_ms), 2) if w0 is not None and wait_ns is not None else None
            self._write_stall(expected, end, span_ms=span_ms, cpu_ms=cpu_ms, runq_ms=runq_ms, location=None,
                              stacks=[], seen_by="heartbeat")
        self._late.extend(keep)

    def _busy_frame(self) -> str | None:
        """The attributed frame the loop thread is running, or None when idle
        (waiting in the selector, or back in run_until_complete under uvloop)."""
        frame = sys._current_frames().get(self.loop_tid)  # type: ignore[arg-type]
        if frame is None:
            return None
        co = frame.f_code
        fn = co.co_filename
        if fn.endswith("selectors.py") or os.path.dirname(os.path.realpath(fn)) == _AGENT_DIR:
            return None
        loc = self._attribute(self._walk(frame))
        if loc is None:
            return f"{self._rel(fn)}:{frame.f_lineno} {co.co_name} (library)"
        return f"{loc['file']}:{loc['line']} {loc['function']}"

    def _walk(self, frame) -> list[dict[str, Any]]:
        out = []
        while frame is not None and len(out) < 64:
            co = frame.f_code
            out.append({"file": co.co_filename, "line": frame.f_lineno, "function": co.co_name})
            frame = frame.f_back
        out.reverse()  # outermost first, innermost last
        return out

    def _take_stack(self, stall: dict[str, Any], now: float) -> None:
        frame = sys._current_frames().get(self.loop_tid)  # type: ignore[arg-type]
        if frame is None:
            return
        frames = self._walk(frame)
        # the GIL held from the stack to here: a loop thread in Python code is
        # blocked, in the call it made or in a futex for the GIL or a lock (threadstat)
        call = self._syscall.read() if self._syscall is not None else None
        stall["stacks"].append({"at_ms": round((now - stall["expected"]) * 1000, 1), "frames": frames,
                                "syscall": call})

    def _own(self, filename: str) -> tuple[bool, str]:
        hit = self._path_cache.get(filename)
        if hit is not None:
            return hit
        real = os.path.realpath(filename)
        own = False
        rel = filename
        # "<frozen runpy>", "<string>": not files; realpath would place them under the cwd
        if not filename.startswith("<") and "site-packages" not in real and "dist-packages" not in real and not real.startswith(_STDLIB):
            for root in self.roots:
                if real.startswith(root + os.sep):
                    own, rel = True, os.path.relpath(real, root)
                    break
        self._path_cache[filename] = (own, rel)
        return own, rel

    def _rel(self, filename: str) -> str:
        return self._own(filename)[1]

    def _attribute(self, frames: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The innermost frame in the target's own code."""
        for f in reversed(frames):
            own, rel = self._own(f["file"])
            if own:
                return {"file": rel, "line": f["line"], "function": f["function"]}
        return None

    def _emit_stall(self, stall: dict[str, Any], resumed: float) -> None:
        start, end = stall["expected"], resumed
        # CPU between the last beat before the stall and the beat that ended it,
        # both read on the loop thread; compared with that same span of wall time
        cpu_ms = (self.last_beat_cpu - stall["cpu0"]) * 1000
        span_ms = (end - stall["beat"]) * 1000
        stacks = stall["stacks"]
        loc = None
        for st in stacks:
            loc = self._attribute(st["frames"])
            if loc:
                break
        for st in stacks:  # relative paths for the target's own files
            for f in st["frames"]:
                own, rel = self._own(f["file"])
                f["own"] = own
                if own:
                    f["file"] = rel
                elif not f["file"].startswith("<") and os.path.dirname(os.path.realpath(f["file"])) == _AGENT_DIR:
                    f["agent"] = True  # ours: analysis counts a stall in it as instrumentation cost
        w0, w1 = stall.get("wait0"), stall.get("wait1")
        runq_ms = round((w1 - w0) / 1e6, 2) if w0 is not None and w1 is not None else None
        if runq_ms is not None:  # readings are taken at the watchdog's wakes, the first up to a wake early
            runq_ms = min(runq_ms, round(span_ms, 2))
        self._write_stall(start, end, span_ms=span_ms, cpu_ms=cpu_ms, runq_ms=runq_ms, location=loc, stacks=stacks)

    def _write_stall(self, start: float, end: float, *, span_ms: float, cpu_ms: float, runq_ms: float | None,
                     location: dict[str, Any] | None, stacks: list[dict[str, Any]], **extra: Any) -> None:
        """One stall record, whether the watchdog saw it or only the heartbeat did."""
        self.log.write("stalls", {
            "t": start + self._wall_offset, "duration_ms": round((end - start) * 1000, 2), "location": location,
            "stacks": stacks, "gc_ms": round(self._gc_ms(start, end), 2), "cpu_ms": round(cpu_ms, 2),
            # time inside it that one of the agent's own threads held the GIL for its work
            "agent_ms": round(AGENT_WORK.overlap_ms(start, end), 2),
            # time the loop thread was runnable but not running (no CPU for it)
            "runq_wait_ms": runq_ms,
            # CPU time of the loop thread close to the wall time: computing; far below: waiting (sleep, I/O, lock)
            "cpu_bound": bool(cpu_ms >= 0.6 * span_ms),
            "threshold_ms": self.threshold * 1000,
            "loop_tid": self.loop_native_id,  # the loop thread among the sampler's (cpu_threads.jsonl)
            **extra,
        })

    def _emit_second(self, start: float, end: float, samples: int, busy: int, frames: collections.Counter,
                     cpu_s: float | None, runq_s: float = 0.0) -> float:
        lags = []
        while self.lags:
            try:
                lags.append(self.lags.popleft())
            except IndexError:
                break
        lags.sort()
        span = max(1e-9, end - start)
        # heartbeat lag while one of the agent's threads held the GIL for its own
        # work (a snapshot) is the instrumentation's, not the loop's busy time
        # work (a snapshot) is the instrumentation's, not the loop's busy time.
        # (Run-queue wait is recorded but not taken out: a CPU-bound turn on a
        # starved machine is still a turn no client is served in.)
        agent_ms = AGENT_WORK.overlap_ms(start, end)
        lag_busy = min(1.0, max(0.0, sum(lags) - agent_ms / 1000.0) / span)
        cpu_frac = min(1.0, cpu_s / span) if cpu_s is not None else None
        rec = {
            "t": end + self._wall_offset, "turns": len(lags),
            "p50_ms": round(_percentile(lags, 50) * 1000, 3), "p90_ms": round(_percentile(lags, 90) * 1000, 3),
            "p99_ms": round(_percentile(lags, 99) * 1000, 3), "max_ms": round((lags[-1] if lags else 0) * 1000, 3),
            # the share of wall time the loop was not free to run the heartbeat:
            # heartbeat lag sees waits (sleep, blocking I/O) but under-counts many
            # short turns; the loop thread's CPU time sees those. The larger wins.
            "lag_busy_fraction": round(lag_busy, 4),
            "cpu_fraction": round(cpu_frac, 4) if cpu_frac is not None else None,
            "busy_fraction": round(max(lag_busy, cpu_frac or 0.0), 4),
            "agent_ms": round(agent_ms, 1), "runq_ms": round(max(0.0, runq_s) * 1000, 1),
            # the share of the second the loop thread waited, runnable, for a CPU
            # (Linux schedstat): with cpu_fraction, how much of it the loop was
            # occupied (computing or ready to compute) rather than idle
            "runq_fraction": round(min(1.0, max(0.0, runq_s) / span), 4),
            "samples": samples, "busy_samples": busy,
            "sampled_busy_fraction": round(busy / samples, 4) if samples else None,
        }
        self.log.write("lag", rec)
        while self._tasks:
            try:
                self.log.write("tasks", self._tasks.popleft())
            except IndexError:
                break
        if frames:
            self.log.write("busy_samples", {"t": rec["t"], "samples": samples, "busy": busy,
                                            "frames": dict(frames.most_common(10))})
        return rec["busy_fraction"]
