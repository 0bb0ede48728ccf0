"""Who took the CPU during host stalls (the loop thread runnable but not
running): per-thread CPU deltas over each stall's window, from the
out-of-process sampler's cpu_threads.jsonl and the agent's thread names.

The target's own threads (worker pools, DSP executors) taking the cores make
it the target's finding, named by thread and pool; the load generator or
other processes make it the environment's."""
from __future__ import annotations

import bisect
import re
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from .model import Finding, Location
from .rundir import AGENT, iter_jsonl

CPU_THREADS = "cpu_threads.jsonl"
MIN_TOTAL_MS = 500.0  # host stalls adding up to less are not worth a finding
TARGET_HIGH_MS = 2000.0  # starved this long by its own threads: a failure under load


def pool_of(name: str) -> str:
    """A thread's pool: its name without the numbering (ThreadPoolExecutor-2_3 -> ThreadPoolExecutor)."""
    return re.sub(r"([-_ ]?\d+)+$", "", name) or name


def _names(run_dir: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for r in iter_jsonl(run_dir / AGENT / "threads.jsonl"):
        out.update(r.get("names") or {})
    return out


def _bracket(times: list[float], a: float, b: float) -> tuple[int, int]:
    """The sampler's readings that bracket [a, b] (clamped to the first and last)."""
    return max(0, bisect.bisect_right(times, a) - 1), min(len(times) - 1, bisect.bisect_left(times, b))


def outside_delay(run_dir: Path) -> Callable[[float, float], float] | None:
    """A function (a, b) -> ms by which the machine, not the target, held
    up the target's work in the wall-clock window [a, b]: the longest
    run-queue wait any target thread had over it (the sampler's schedstat
    readings around it, prorated to the window), times the share of the
    machine's busy CPU then that was not the target's (the load generator's
    and other processes'). The target's threads queueing behind each other
    is its own latency and stays out; so does work that is slow on a free
    core (CPU time, no wait). The loop's host stalls see only the loop
    thread: a first chunk rendered in an executor that waited for a core
    behind another run's processes read as 1.9 s of the reference's own
    time to first audio. None without the sampler's waits (not Linux, or a
    run from before they were recorded)."""
    rows = list(iter_jsonl(Path(run_dir) / CPU_THREADS))
    meta = next((r for r in rows if r.get("meta")), None)
    samples = sorted((r for r in rows if not r.get("meta") and r.get("waits") and r.get("busy") is not None),
                     key=lambda r: r["t"])
    if not meta or len(samples) < 2:
        return None
    ms = 1000.0 / float(meta.get("clk_tck") or 100)
    times = [r["t"] for r in samples]

    def delay(a: float, b: float) -> float:
        i, j = _bracket(times, a, b)
        if j <= i or b <= a:
            return 0.0
        s0, s1 = samples[i], samples[j]
        w0, w1 = s0["waits"], s1["waits"]
        wait = max((w1[t] - w0[t] for t in w1 if t in w0), default=0.0)
        t0, t1 = s0.get("threads") or {}, s1.get("threads") or {}
        target = sum(max(0, v[1] - t0[t][1]) for t, v in t1.items() if t in t0) * ms
        busy = (s1["busy"] - s0["busy"]) * ms
        if busy <= 0 or wait <= 0:
            return 0.0
        share = min(1.0, max(0.0, (busy - target) / busy))
        return wait * share * min(1.0, (b - a) / (s1["t"] - s0["t"]))

    return delay


def queued_threads(run_dir: Path) -> Callable[[float, float], dict[str, float]] | None:
    """A function (a, b) -> {thread id: ms it waited, runnable, for a CPU}
    over the sampler's readings that bracket [a, b] (they are period_s
    apart: a 150 ms window is read over at most ~350 ms). None without them."""
    samples = sorted((r for r in iter_jsonl(Path(run_dir) / CPU_THREADS) if not r.get("meta") and r.get("waits")),
                     key=lambda r: r["t"])
    if len(samples) < 2:
        return None
    times = [r["t"] for r in samples]

    def queued(a: float, b: float) -> dict[str, float]:
        if a < times[0] or b > times[-1]:
            return {}  # not bracketed: outside the sampled span
        i, j = _bracket(times, a, b)
        w0, w1 = samples[i]["waits"], samples[j]["waits"]
        return {t: max(0.0, w1[t] - w0[t]) for t in w1 if t in w0}

    return queued


def who_took_the_cpu(run_dir: Path, stalls: list[dict[str, Any]]) -> tuple[list[Finding], dict[str, Any]]:
    run_dir = Path(run_dir)
    rows = list(iter_jsonl(run_dir / CPU_THREADS))
    meta = next((r for r in rows if r.get("meta")), None)
    samples = sorted((r for r in rows if not r.get("meta")), key=lambda r: r["t"])
    if not meta or len(samples) < 2 or not stalls:
        return [], {}
    ms = 1000.0 / float(meta.get("clk_tck") or 100)
    loop_tid = str(meta.get("pid"))
    names = _names(run_dir)
    times = [r["t"] for r in samples]
    by_thread: Counter[str] = Counter()
    totals = Counter()
    judged = 0
    for s in stalls:
        a = float(s["t"])
        b = a + float(s["duration_ms"]) / 1000
        i = bisect.bisect_right(times, a) - 1
        j = bisect.bisect_left(times, b)
        if i < 0 or j >= len(samples) or j <= i:
            continue
        s0, s1 = samples[i], samples[j]
        judged += 1
        target = 0.0
        for tid, (comm, ticks) in (s1.get("threads") or {}).items():
            before = (s0.get("threads") or {}).get(tid)
            d = (ticks - (before[1] if before else ticks)) * ms
            if d <= 0:
                continue
            target += d
            if tid == loop_tid:
                totals["loop"] += d
            else:
                by_thread[names.get(tid, comm)] += d
        load = max(0.0, (s1.get("loadgen", 0) - s0.get("loadgen", 0)) * ms)
        busy = (s1["busy"] - s0["busy"]) * ms if s1.get("busy") is not None and s0.get("busy") is not None else 0.0
        totals["target_threads"] += target
        totals["loadgen"] += load
        totals["other"] += max(0.0, busy - target - load)
        totals["window"] += (s1["t"] - s0["t"]) * 1000
    totals["target_threads"] -= totals["loop"]
    stall_ms = sum(float(s["duration_ms"]) for s in stalls)
    metrics = {"host_stall_cpu_target_threads_ms": round(totals["target_threads"], 1),
               "host_stall_cpu_loadgen_ms": round(totals["loadgen"], 1),
               "host_stall_cpu_other_ms": round(totals["other"], 1), "host_stalls_judged": judged}
    if not judged or stall_ms < MIN_TOTAL_MS:
        return [], metrics
    pools: Counter[str] = Counter()
    for n, v in by_thread.items():
        pools[pool_of(n)] += v
    top_threads = ", ".join(f"{n} {v:.0f} ms" for n, v in by_thread.most_common(6))
    top_pools = ", ".join(f"{n} {v:.0f} ms" for n, v in pools.most_common(4))
    share = (f"over the {judged} stall windows ({totals['window']:.0f} ms of wall time, "
             f"{meta.get('ncpu')} CPUs): the target's other threads ran {totals['target_threads']:.0f} ms, the "
             f"load generator {totals['loadgen']:.0f} ms, other processes {totals['other']:.0f} ms, the loop "
             f"thread itself {totals['loop']:.0f} ms")
    own = totals["target_threads"] >= totals["loadgen"] + totals["other"] and totals["target_threads"] > 0
    if own:
        f = Finding(
            kind="loop_starved_by_own_threads",
            title=f"The target's own threads take the CPU from its event loop ({pools.most_common(1)[0][0]})",
            severity="HIGH" if stall_ms >= TARGET_HIGH_MS else "MEDIUM", dimension="Performance",
            description=(f"{len(stalls)} times ({stall_ms:.0f} ms in all) the loop thread was runnable but not "
                         f"running; {share}. The target's worker threads, not the machine, kept it off the CPU."),
            impact="Every client waits while the process's own pools compute: chunk sends, pongs and REST answers "
                   "queue behind unrelated thread work.",
            suggested_fix="Bound the pools (fewer workers than cores), move heavy work to processes, or give the "
                          "loop's work priority (smaller batches per worker turn).",
            location=Location(function=pools.most_common(1)[0][0]),
            evidence=[share, f"threads: {top_threads}", f"pools: {top_pools}"],
            figures={"stalls": len(stalls), "stall_total_ms": round(stall_ms, 1), **metrics},
            key="starved-by-own-threads")
    else:
        f = Finding(
            kind="loop_starved_by_host", title="The machine took the CPU from the event loop",
            severity="LOW", dimension="Performance",
            description=(f"{len(stalls)} times ({stall_ms:.0f} ms in all) the loop thread was runnable but not "
                         f"running; {share}. Other processes, not the target, held the cores."),
            impact="These stalls measure the machine the run shared, not the target.",
            suggested_fix="Run on a quieter machine, or give the load generator its own cores.",
            location=Location(), evidence=[share, f"target threads: {top_threads or 'none ran'}"],
            figures={"stalls": len(stalls), "stall_total_ms": round(stall_ms, 1), **metrics},
            key="starved-by-host", section="environment")
    return [f], metrics
