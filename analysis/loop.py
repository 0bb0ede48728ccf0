"""Event-loop findings from the agent's records: stalls grouped by the line
that blocked, correlated with the frame gaps clients saw during them; loop
lag percentiles and busy fraction; saturation (busy in many short turns
under the stall threshold) with the frames that keep the loop busy."""
from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .cpu_share import queued_threads, who_took_the_cpu
from .metrics_catalogue import slowed_by
from .model import Finding, Location
from .rundir import AGENT, LOAD, iter_jsonl, list_streams, read_json

SATURATION_BUSY = 0.6  # busy fraction that, sustained, is saturation
SATURATION_MIN_S = 5  # consecutive seconds
GC_SHARE = 0.5  # a stall mostly spent in GC is the collector's, not the line's
HOST_SHARE = 0.5  # a stall mostly spent waiting for a CPU is the machine's, not the target's
# Contention: stalls whose every stack sample finds the loop thread in the
# agent's own heartbeat (no callback of the target held the loop), or in which
# the loop thread was starved (see _starved). Reported apart, as a finding only
# when it adds up.
CONTENTION_MIN_COUNT = 5
CONTENTION_MIN_TOTAL_MS = 500.0
# Startup: stalls before the target first answered its health check served
# nobody (migrations, imports, scans); they are a startup figure, and a startup
# this long is a finding of its own.
STARTUP_LONG_S = 20.0
# A stall explains a client's frame gap only when they agree: the gap overlaps
# most of the stall, and is not much longer than it (a 24 s gap is not
# explained by a 100 ms stall).
GAP_OVERLAP_SHARE = 0.8
GAP_SLACK_MS = 100.0
GAP_LENGTH_RATIO = 2.0
VISIBLE_GAP_MS = 250.0  # a gap between frames a client can notice


# A callback that blocks the loop either computes (the loop thread is on a CPU)
# or waits for something it asked for (sleep, I/O, a lock: off the run queue).
# A stall in which the loop thread ran for under a quarter of the time and sat
# in the run queue for a third or more did neither: an 8 ms turn stretched to
# 170 ms by a machine whose cores, and the GIL, were taken by others.
STARVED_CPU_SHARE = 0.25
STARVED_RUNQ_SHARE = 0.3


# A stack sample is taken holding the GIL, so a loop thread caught in Python
# code was blocked: in a call it made (a sleep, I/O: the line is the target's),
# or in a futex, waiting for the GIL or a lock that another thread held. When
# every sample caught it in a futex and, over the stall, another thread of the
# process waited for a CPU for half the stall or more (the out-of-process
# sampler's schedstat readings), what the loop waited for was held by a thread
# the machine starved: the machine's stall, by proxy. Seen on CI: 156 ms "in" a
# generator's yield, the loop thread neither on a CPU nor in the run queue.
PROXY_RUNQ_SHARE = 0.5


def waited_on_another_thread(stall: dict[str, Any]) -> bool:
    """Every stack sample with a reading caught the loop thread in a futex."""
    calls = [st.get("syscall") for st in stall.get("stacks") or [] if st.get("syscall")]
    return bool(calls) and all(c == "futex" for c in calls)


# The watchdog takes its first sample when the last beat is a threshold
# overdue; when that sample comes twice as late, the watchdog could not run
# either: both threads waited for the GIL, held by a third (or for a CPU).
# A loop thread that computed then held the GIL itself (its line stands); one
# that was waiting, and was caught in no call of its own, shows where it was
# when the GIL came back, not what held it: seen in a test, a worker thread
# starved on its core held the GIL, and every sample came 270 ms late, at the
# stall's end, with the loop back in epoll_wait, or in the next callback.
LATE_SAMPLE_THRESHOLDS = 2.0
# a loop thread back in its selector (the GIL came back, it ran what was ready
# and waits for the next timer) or waiting for the GIL or a CPU: no call of its own
NOT_ITS_OWN_CALL = {"futex", "running", "epoll_wait", "epoll_pwait", "epoll_pwait2", "poll", "ppoll", "select",
                    "pselect6"}


def watchdog_held_out(stall: dict[str, Any], threshold_ms: float) -> bool:
    dur = float(stall.get("duration_ms") or 0.0)
    stacks = stall.get("stacks") or []
    calls = [st.get("syscall") for st in stacks]
    if not stacks or dur <= 0 or any(c not in NOT_ITS_OWN_CALL for c in calls):
        return False  # no reading (an older run), or caught in a call of its own (a sleep, I/O)
    if float(stall.get("cpu_ms") or 0.0) >= STARVED_CPU_SHARE * dur:
        return False
    return float(stacks[0].get("at_ms") or 0.0) >= LATE_SAMPLE_THRESHOLDS * threshold_ms


def waited_on_a_starved_thread(stall: dict[str, Any], queued: Callable[[float, float], dict[str, float]] | None) -> bool:
    dur = float(stall.get("duration_ms") or 0.0)
    if queued is None or dur <= 0 or not waited_on_another_thread(stall):
        return False
    if float(stall.get("cpu_ms") or 0.0) >= STARVED_CPU_SHARE * dur:
        return False  # it computed: the loop's own turn, whatever else waited
    t = float(stall.get("t") or 0.0)
    loop = str(stall.get("loop_tid"))
    waits = [ms for tid, ms in queued(t, t + dur / 1000).items() if tid != loop]
    return max(waits, default=0.0) >= PROXY_RUNQ_SHARE * dur


def _starved(stall: dict[str, Any]) -> bool:
    dur = float(stall.get("duration_ms") or 0.0)
    if dur <= 0 or stall.get("runq_wait_ms") is None or stall.get("cpu_ms") is None:
        return False
    return float(stall["cpu_ms"]) < STARVED_CPU_SHARE * dur and float(stall["runq_wait_ms"]) >= STARVED_RUNQ_SHARE * dur


def _in_heartbeat(stall: dict[str, Any]) -> bool:
    stacks = [s.get("frames") or [] for s in stall.get("stacks") or []]
    return bool(stacks) and all(fr and fr[-1].get("function") == "_heartbeat"
                                and str(fr[-1].get("file", "")).replace("\\", "/").endswith("instrument/agent/watchdog.py")
                                for fr in stacks)


def short_path(path: str) -> str:
    """A library file by its place in its distribution (`websockets/frames.py`,
    `stdlib/zlib...`), never by a directory of this machine."""
    p = str(path).replace("\\", "/")
    for marker in ("/site-packages/", "/dist-packages/"):
        if marker in p:
            return p.split(marker, 1)[1]
    m = re.search(r"/lib/python\d+\.\d+/(.*)$", p)
    if m:
        return "stdlib/" + m.group(1)
    return p


def _running(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The frames of code the loop was running: not the agent that runs the
    server (its frames are the bottom of every stack: a stack with nothing
    above them was in native code, uvloop's or an extension's), nor the
    selector it waits in."""
    out = []
    for f in frames:
        path = str(f.get("file", "")).replace("\\", "/")
        if path.startswith("<frozen") or "/instrument/agent/" in path or path.endswith("selectors.py"):
            continue
        out.append(f)
    return out


def _outside_callbacks(stall: dict[str, Any]) -> bool:
    """No stack sample found the loop thread in any Python callback (only the
    agent's run_until_complete: it was in native code, most often waiting to
    take the GIL back from another thread), or the watchdog itself got no
    CPU to take a sample: no line of the target held the loop. A sample whose
    innermost frame is the selector (the stdlib loop waiting for events, with
    asyncio's own frames under it) found the loop between callbacks too."""
    stacks = stall.get("stacks") or []
    return not any(_running(st.get("frames") or []) and not _in_selector(st.get("frames") or []) for st in stacks)


def _in_selector(frames: list[dict[str, Any]]) -> bool:
    return bool(frames) and str(frames[-1].get("file", "")).replace("\\", "/").endswith("/selectors.py")


def leaf_frame(stall: dict[str, Any]) -> str | None:
    """The innermost Python frame the loop thread was in during the stall
    (`file:function`; a C call such as zlib's shows as its Python caller)."""
    for st in stall.get("stacks") or []:
        fr = _running(st.get("frames") or [])
        if fr:
            f = fr[-1]
            return f"{f['file'] if f.get('own') else short_path(f['file'])}:{f['function']}"
    return None


def _busy_site(dom: str) -> dict[str, str]:
    """A busy-sample frame ("file:line function", "(library)" when no target
    frame was on the stack) as a grouping site: the target frame, or the
    library frame in leaf form."""
    if dom.endswith(" (library)"):
        file_line, _, func = dom.removesuffix(" (library)").partition(" ")
        return {"leaf": f"{short_path(file_line.rpartition(':')[0])}:{func}"}
    return {"frame": dom}


def leaf_location(stall: dict[str, Any]) -> dict[str, Any] | None:
    """The innermost Python frame as a location (library path shortened)."""
    for st in stall.get("stacks") or []:
        fr = _running(st.get("frames") or [])
        if fr:
            f = fr[-1]
            return {"file": f["file"] if f.get("own") else short_path(f["file"]), "line": f.get("line"),
                    "function": f.get("function")}
    return None


def explains(stall_t: float, stall_ms: float, g0: float, g1: float) -> bool:
    """Does a stall (start, duration) explain a frame gap (start, end)? Only
    when overlap and length agree."""
    a, b = stall_t, stall_t + stall_ms / 1000
    overlap = max(0.0, min(b, g1) - max(a, g0)) * 1000
    gap_ms = (g1 - g0) * 1000
    return overlap >= GAP_OVERLAP_SHARE * stall_ms and gap_ms <= GAP_LENGTH_RATIO * stall_ms + GAP_SLACK_MS


def gap_attribution(stalls: list[dict[str, Any]], gaps: list[tuple[str, float, float]]) -> dict[str, float]:
    """The client-visible gap time (gaps >= VISIBLE_GAP_MS) and the share of it
    that stalls explain."""
    visible = [(sid, g0, g1) for sid, g0, g1 in gaps if (g1 - g0) * 1000 >= VISIBLE_GAP_MS]
    total = sum(g1 - g0 for _, g0, g1 in visible) * 1000
    explained = 0.0
    for _, g0, g1 in visible:
        if any(explains(float(s["t"]), float(s["duration_ms"]), g0, g1) for s in stalls):
            explained += (g1 - g0) * 1000
    return {"frame_gap_visible_total_ms": round(total, 1), "frame_gap_explained_by_stalls_ms": round(explained, 1),
            "frame_gap_explained_by_stalls_fraction": round(explained / total, 4) if total else 0.0}

# The agent's entry frames sit under every stack of the loop (main runs the
# loop, serve awaits the server); its heartbeat is contention (above). Any other
# frame of the agent inner to every frame of the target means the loop was
# doing the agent's work: instrumentation cost, never the target's finding.
AGENT_ENTRY = {"main", "serve", "<module>", "_heartbeat"}
AGENT_SHARE = 0.5  # a stall mostly inside the agent's own GIL-holding work (a tracemalloc snapshot)


# Agent hooks that only pass a call of the target's through (recording where it
# was made) sit between the target's frame and the library it calls: a stall
# below them is the target's call, not the agent's work.
AGENT_PASS_THROUGH = ("/instrument/agent/sites.py",)


def _agent_frame(f: dict[str, Any]) -> bool:
    path = str(f.get("file", "")).replace("\\", "/")
    if path.endswith(AGENT_PASS_THROUGH):
        return False
    if "agent" in f:
        return bool(f["agent"])
    return "/instrument/agent/" in path


def _in_agent(stall: dict[str, Any]) -> bool:
    if float(stall.get("agent_ms") or 0.0) >= AGENT_SHARE * float(stall.get("duration_ms") or 0.0) > 0:
        return True
    for st in stall.get("stacks") or []:
        for f in reversed(st.get("frames") or []):  # innermost first
            if f.get("own"):
                break
            if _agent_frame(f) and f.get("function") not in AGENT_ENTRY:
                return True
    return False


def untraced_ms(stall: dict[str, Any], slowdown: float) -> float:
    """The least a stall could have lasted without tracemalloc: its loop-thread
    CPU divided by the most tracing stretches Python (`slowdown`, measured in
    the target at its start), plus the time it waited on something (a sleep,
    a blocking read), which tracing does not stretch. Time the loop thread
    spent runnable without a CPU (its run-queue wait) is neither: the machine
    had no core for it (under tracing the target's other threads need more
    CPU too). A CI run's clean stall of 148.5 ms was 103.2 ms CPU and 69.9 ms
    run-queue wait, with no blocking wait: 5.6 ms untraced at 18.5x; counting
    the run-queue wait as a blocking one made it 50.9 ms, over the threshold."""
    d = float(stall.get("duration_ms") or 0.0)
    cpu = min(d, max(0.0, float(stall.get("cpu_ms") or 0.0)))
    runq = max(0.0, float(stall.get("runq_wait_ms") or 0.0))
    return max(0.0, d - cpu - runq) + cpu / max(1.0, slowdown)


def _traced_stalls(stalls: list[dict[str, Any]], slowdown: float, threshold: float) -> list[dict[str, Any]]:
    """Stalls that tracing alone could have pushed past the threshold."""
    if slowdown <= 1.0:
        return []
    return [s for s in stalls if untraced_ms(s, slowdown) < threshold]


def _loc_key(loc: dict[str, Any] | None) -> str:
    if not loc:
        return "unattributed"
    return f"{loc.get('file')}:{loc.get('line')} {loc.get('function')}"


def _overlaps(stall: dict[str, Any], a: float, b: float) -> bool:
    """Whether a stall (its start t and duration) overlaps the interval [a, b]."""
    t = float(stall.get("t", 0))
    return t <= b and t + float(stall.get("duration_ms") or 0.0) / 1000 >= a


def _frame_gaps(run_dir: Path) -> list[tuple[str, float, float]]:
    """(stream id, gap start, gap end) for every gap between frames."""
    out = []
    for s in list_streams(run_dir):
        t = [e["t"] for e in s.events if e.get("kind") == "binary"]
        for a, b in zip(t, t[1:]):
            out.append((s.id, a, b))
    return out


def _overlap(t_end: float, window: tuple[float, float] | None) -> float:
    """Seconds of the load window inside the second that ends at `t_end`."""
    if window is None:
        return 1.0
    return max(0.0, min(t_end, window[1]) - max(t_end - 1.0, window[0]))


def _load_window(run_dir: Path) -> tuple[float, float] | None:
    """When the load ran: from run.json, else the span of what clients received."""
    lw = (read_json(run_dir / "run.json", {}) or {}).get("load_window")
    if lw and lw[0] and lw[1]:
        return float(lw[0]), float(lw[1])
    ts = []
    for s in list_streams(run_dir):
        ts += [e["t"] for e in s.events if e.get("kind") == "binary"]
    ts += [r["t"] for r in iter_jsonl(run_dir / LOAD / "requests.jsonl") if "t" in r]
    return (min(ts), max(ts)) if ts else None


def analyse_loop(run_dir: Path) -> tuple[list[Finding], dict[str, Any]]:
    run_dir = Path(run_dir)
    run = read_json(run_dir / "run.json", {}) or {}
    scenario = run.get("scenario")
    agent = read_json(run_dir / AGENT / "agent.json", {}) or {}
    findings: list[Finding] = []
    metrics: dict[str, Any] = {}
    stalls = list(iter_jsonl(run_dir / AGENT / "stalls.jsonl"))
    # a check that restarted the target (crash_restart) caused that start-up: its stalls are not the target's
    restarts = [(r["t_start"], r["t_healthy"] + 1.0) for r in (run.get("target") or {}).get("restarts") or []
                if r.get("t_start") and r.get("t_healthy")]
    stalls = [s for s in stalls if not any(a <= s.get("t", 0) <= b for a, b in restarts)]
    # the tool's own requests made for its own use, not a user's: the openapi
    # check's fetch of the spec, which FastAPI builds on the loop at its first
    # request (Auralis: 331 ms, and the release run's loop_stall_max_ms)
    tool = [(float(w["t_start"]), float(w["t_end"])) for w in
            [((run.get("checks") or {}).get("openapi") or {}).get("spec_fetch")] if w and w.get("t_start")]
    by_tool = [s for s in stalls if any(_overlaps(s, a, b) for a, b in tool)]
    stalls = [s for s in stalls if s not in by_tool]
    metrics.update(loop_tool_request_stall_count=len(by_tool),
                   loop_tool_request_stall_total_ms=round(sum(float(s["duration_ms"]) for s in by_tool), 1))
    if not agent and not stalls:
        return findings, metrics
    threshold = float(agent.get("stall_threshold_ms") or 50.0)
    timings = run.get("timings") or {}
    ready_at = timings.get("health_answered_at")
    startup = [s for s in stalls if ready_at is not None and float(s.get("t", 0)) < float(ready_at)]
    stalls = [s for s in stalls if s not in startup]
    metrics.update(loop_startup_stall_count=len(startup),
                   loop_startup_stall_total_ms=round(sum(float(s["duration_ms"]) for s in startup), 1))
    if timings.get("startup_s") is not None and float(timings["startup_s"]) >= STARTUP_LONG_S:
        findings.append(_startup_finding(float(timings["startup_s"]), startup, scenario))

    cost = read_json(run_dir / AGENT / "cost.json", {}) or {}
    if cost.get("agent_cpu_pct") is not None:  # the agent's own threads' CPU, as a share of the process's
        metrics["instrumentation_cpu_pct"] = float(cost["agent_cpu_pct"])
        metrics["instrumentation_cpu_s"] = float(cost.get("agent_cpu_s") or 0.0)
    # the tool's own work on the loop (console start-up, a snapshot): counted, never a finding
    agent_stalls = [s for s in stalls if _in_agent(s)]
    stalls = [s for s in stalls if s not in agent_stalls]
    metrics.update(loop_instrumentation_stall_count=len(agent_stalls),
                   loop_instrumentation_stall_total_ms=round(sum(float(s["duration_ms"]) for s in agent_stalls), 1))
    # under --trace-memory every allocation pays tracemalloc's hook: a stall
    # tracing may have stretched past the threshold cannot be judged on this run
    traced = _traced_stalls(stalls, float(agent.get("tracemalloc_slowdown") or 0.0), threshold)
    stalls = [s for s in stalls if s not in traced]
    metrics.update(loop_traced_stall_count=len(traced),
                   loop_traced_stall_max_ms=max((float(s["duration_ms"]) for s in traced), default=0.0))
    gc_stalls = [s for s in stalls if s.get("gc_ms", 0) >= GC_SHARE * s.get("duration_ms", 0)]
    # the loop thread was runnable but the machine gave it no CPU: a starved
    # host (noisy CI, the load generator on the same cores), not the line
    host_stalls = [s for s in stalls if s not in gc_stalls
                   and (s.get("runq_wait_ms") or 0) >= HOST_SHARE * s.get("duration_ms", 0)]
    # the sampler's readings, read only when a stall waited on another thread
    candidates = [s for s in stalls if s not in gc_stalls and s not in host_stalls and waited_on_another_thread(s)]
    queued = queued_threads(run_dir) if candidates else None
    proxy_stalls = [s for s in candidates if waited_on_a_starved_thread(s, queued)]
    host_stalls += proxy_stalls
    contention = [s for s in stalls if s not in gc_stalls and s not in host_stalls
                  and (_in_heartbeat(s) or _starved(s) or _outside_callbacks(s) or watchdog_held_out(s, threshold))]
    user_stalls = [s for s in stalls if s not in gc_stalls and s not in host_stalls and s not in contention]
    durs = [float(s["duration_ms"]) for s in user_stalls]
    metrics.update(loop_stall_count=len(user_stalls), loop_stall_max_ms=max(durs) if durs else 0.0,
                   loop_stall_total_ms=round(sum(durs), 1), loop_gc_stall_count=len(gc_stalls),
                   loop_host_stall_count=len(host_stalls), loop_host_proxy_stall_count=len(proxy_stalls),
                   loop_host_stall_total_ms=round(sum(float(s["duration_ms"]) for s in host_stalls), 1),
                   loop_contention_stall_count=len(contention),
                   loop_contention_stall_total_ms=round(sum(float(s["duration_ms"]) for s in contention), 1))
    # host stalls and contention: whose threads had the CPU instead (the
    # target's own, or others'); when that is known it replaces the contention summary
    starved, cpu_metrics = who_took_the_cpu(run_dir, host_stalls + contention)
    findings += starved
    metrics.update(cpu_metrics)
    if not starved and contention and (len(contention) >= CONTENTION_MIN_COUNT
                       or metrics["loop_contention_stall_total_ms"] >= CONTENTION_MIN_TOTAL_MS):
        findings.append(_contention_finding(contention, scenario))
    gaps = _frame_gaps(run_dir)
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in user_stalls:
        groups[_loc_key(s.get("location"))].append(s)
    for key, items in sorted(groups.items(), key=lambda kv: -sum(x["duration_ms"] for x in kv[1])):
        findings.append(_stall_finding(key, items, gaps, threshold, scenario, run.get("target", {}).get("kind")))
    metrics.update(gap_attribution(user_stalls + host_stalls + contention, gaps))

    lag = list(iter_jsonl(run_dir / AGENT / "lag.jsonl"))
    window = _load_window(run_dir)
    loaded = [r for r in lag if window is None or window[0] - 1 <= r.get("t", 0) <= window[1] + 1] or lag
    if loaded:
        # each record covers the second before its stamp; it counts by how much of
        # that second the load ran in. Counted whole, a record that is 80% target
        # startup (imports, warm-up, slow under --trace-memory) weighed as much as
        # a loaded second, and decided the mean of a short run
        share = [_overlap(r.get("t", 0), window) for r in loaded]
        if sum(share) <= 0:
            share = [1.0] * len(loaded)
        p99s = np.array([r.get("p99_ms", 0.0) for r in loaded])
        metrics["loop_lag_p50_ms"] = float(np.median([r.get("p50_ms", 0.0) for r in loaded]))
        metrics["loop_lag_p90_ms"] = float(np.median([r.get("p90_ms", 0.0) for r in loaded]))
        # run-wide p99 from per-second p99s: the 99th percentile of the seconds
        metrics["loop_lag_p99_ms"] = float(np.percentile(p99s, 99))
        metrics["loop_lag_max_ms"] = float(max(r.get("max_ms", 0.0) for r in loaded))
        metrics["loop_busy_fraction"] = round(float(np.average([r.get("busy_fraction", 0.0) for r in loaded],
                                                                weights=share)), 4)
        mostly = [r for r, w in zip(loaded, share) if w >= 0.5] or loaded
        metrics["loop_busy_fraction_max_s"] = round(float(max(r.get("busy_fraction", 0.0) for r in mostly)), 4)
        sat = _saturation(run_dir, loaded, metrics, scenario)
        if sat:
            findings.append(sat)
    for why in slowed_by(run.get("options")):
        for f in findings:  # the defect's line stands; how long it took is partly ours
            f.evidence.append(f"measured under {why}: durations and busy time include the tool's cost")
    return findings, metrics


def _stall_finding(key: str, items: list[dict[str, Any]], gaps, threshold: float, scenario: str | None,
                   target: str | None) -> Finding:
    d = np.array([x["duration_ms"] for x in items], dtype=float)
    loc = items[0].get("location") or {}
    cpu_bound = sum(1 for x in items if x.get("cpu_bound"))
    # which clients saw a gap spanning a stall
    hit_streams: set[str] = set()
    worst_gap = 0.0
    for x in items:
        for sid, g0, g1 in gaps:
            if explains(float(x["t"]), float(x["duration_ms"]), g0, g1) and (g1 - g0) * 1000 >= 0.8 * x["duration_ms"]:
                hit_streams.add(sid)
                worst_gap = max(worst_gap, (g1 - g0) * 1000)
    leaves = Counter(lf for lf in (leaf_frame(x) for x in items) if lf)
    mx, total = float(d.max()), float(d.sum())
    # severity from the time the target held the loop: a stall's run-queue wait
    # (the thread runnable, the machine busy elsewhere) is the host's, and on a
    # loaded machine it can lengthen a 120 ms sleep past any threshold
    own = np.array([max(0.0, float(x["duration_ms"]) - float(x.get("runq_wait_ms") or 0.0)) for x in items])
    own_mx, own_total = float(own.max()), float(own.sum())
    severity = ("HIGH" if own_mx >= 250 or own_total >= 2000
                else ("MEDIUM" if own_mx >= 100 or own_total >= 500 else "LOW"))
    nature = ("CPU-bound" if cpu_bound > len(items) / 2 else "waiting (sleep, blocking I/O or a lock)")
    stack = next((s for s in items[0].get("stacks") or [] if s.get("frames")), None)
    excerpt = []
    if stack:
        for f in stack["frames"][-8:]:
            excerpt.append(f"  {f['file'] if f.get('own') else short_path(f['file'])}:{f['line']} {f['function']}")
    lib = None if loc else leaf_location(items[0])
    where = (f"{loc.get('file')}:{loc.get('line')} {loc.get('function')}" if loc else
             f"library code, no frame of the target's own (innermost: {lib['file']}:{lib['line']} {lib['function']})"
             if lib else "native code: no Python frame of the target or a library on the loop's stack")
    if lib:  # name the library frame: it is what was measured
        title = f"Event loop blocked in library code ({lib['function']})"
        loc = lib
    else:
        title = f"Event loop blocked in {loc.get('function') or 'native code'}"
    return Finding(
        kind="loop_stall", title=title,
        severity=severity, dimension="Performance",
        description=(f"The event loop was blocked {len(items)} times for more than {threshold:.0f} ms in {where}; "
                     f"the stalls were {nature}. While the loop is blocked no other client is served: no frames, "
                     "no REST responses, no pongs."),
        impact=(f"{len(hit_streams)} client stream(s) saw a gap of up to {worst_gap:.0f} ms between frames during "
                "these stalls; every other request waited as long."),
        suggested_fix=("Move the blocking work off the loop (asyncio.to_thread or an executor), or bound it per turn; "
                       "for sends, avoid synchronous work between awaits."),
        location=Location(file=loc.get("file"), line_start=loc.get("line"), line_end=loc.get("line"),
                          function=loc.get("function"), scenario=scenario),
        evidence=[f"{len(items)} stalls: p50 {np.percentile(d, 50):.0f} ms, p99 {np.percentile(d, 99):.0f} ms, "
                  f"max {mx:.0f} ms, total {total:.0f} ms; {cpu_bound} CPU-bound; GC inside "
                  f"{sum(x.get('gc_ms', 0) for x in items):.0f} ms",
                  f"{len(hit_streams)} streams saw a frame gap these stalls explain (overlapping the stall and "
                  f"at most {GAP_LENGTH_RATIO:g}x its length; worst {worst_gap:.0f} ms)",
                  *_blocked_in(items),
                  "stack of the first stall (innermost last):", *excerpt],
        figures={"count": len(items), "p50_ms": float(np.percentile(d, 50)), "p99_ms": float(np.percentile(d, 99)),
                 "max_ms": mx, "total_ms": total, "streams_with_gap": len(hit_streams), "cpu_bound": cpu_bound},
        key=key,
        # the frame the stalls are attributed to and the innermost frames they
        # were sampled in, for the grouping stage (one send path, one cause)
        sites=([{"frame": key}] if not lib and key != "unattributed" else []) + [{"leaf": lf} for lf, _ in leaves.most_common(3)],
    )


def _blocked_in(items: list[dict[str, Any]]) -> list[str]:
    """What the stack samples caught the loop thread blocked in: a call it
    made (a sleep, I/O), or a futex (the GIL or a lock another thread held)."""
    seen = Counter(str(st["syscall"]) for x in items for st in x.get("stacks") or [] if st.get("syscall"))
    if not seen:
        return []
    return ["the loop thread, at the stack samples, was in: " + ", ".join(f"{c} {n}x" for c, n in seen.most_common())
            + ("; a futex is a wait for the GIL or a lock another thread held" if "futex" in seen else "")]


def _startup_finding(startup_s: float, stalls: list[dict[str, Any]], scenario: str | None) -> Finding:
    by_loc: Counter[str] = Counter()
    for s in stalls:
        loc = s.get("location") or leaf_location(s) or {}
        by_loc[f"{loc.get('file')}:{loc.get('line')} {loc.get('function')}"] += float(s["duration_ms"])
    top = by_loc.most_common(3)
    total = sum(float(s["duration_ms"]) for s in stalls)
    return Finding(
        kind="slow_startup", title=f"Startup takes {startup_s:.0f} s before the first health answer",
        severity="LOW", dimension="Performance",
        description=(f"The target answered its health check {startup_s:.1f} s after it was launched; during that "
                     f"time its loop was blocked {len(stalls)} times ({total:.0f} ms in all). Stalls before the "
                     "first answer served no client and are counted here, not as loop stalls."),
        impact="A restart or a scale-up keeps listeners waiting this long.",
        suggested_fix="Defer or background the slow startup work (scans, migrations) after the server accepts.",
        location=Location(scenario=scenario),
        evidence=[f"startup {startup_s:.1f} s (threshold {STARTUP_LONG_S:.0f} s)"]
        + [f"{ms:.0f} ms blocked in {where}" for where, ms in top],
        figures={"startup_s": startup_s, "startup_stalls": len(stalls), "startup_stall_total_ms": round(total, 1)},
        key="startup",
    )


def _contention_finding(items: list[dict[str, Any]], scenario: str | None) -> Finding:
    d = np.array([x["duration_ms"] for x in items], dtype=float)
    runq = sum(float(x.get("runq_wait_ms") or 0) for x in items)
    cpu = sum(float(x.get("cpu_ms") or 0) for x in items)
    total = float(d.sum())
    return Finding(
        kind="loop_contention", title="Event loop starved of CPU or the GIL",
        severity="LOW", dimension="Performance",
        description=(f"{len(items)} times the loop was late by more than the stall threshold although no callback "
                     "of the target computed or waited that long: the stack samples found it in the agent's "
                     "heartbeat, or the loop thread ran for under a quarter of the time and queued for a CPU for a "
                     f"third or more. Of the {total:.0f} ms, it waited {runq:.0f} ms for a CPU and ran {cpu:.0f} ms; "
                     "the rest it waited, most likely for the GIL held by another thread."),
        impact="Every client waits as long as the loop does; the cause is the process's threads or the machine, "
               "not a line on the loop.",
        suggested_fix="Look at the target's threads (executors, DSP workers) for long GIL-holding calls, and at "
                      "what else runs on the machine.",
        location=Location(scenario=scenario),
        evidence=[f"{len(items)} delays: p50 {np.percentile(d, 50):.0f} ms, max {d.max():.0f} ms, total {total:.0f} ms; "
                  f"run-queue wait {runq:.0f} ms, loop thread CPU {cpu:.0f} ms"]
        + [f"{x['duration_ms']:.0f} ms in {(x.get('location') or {}).get('function') or 'the heartbeat'}: CPU "
           f"{float(x.get('cpu_ms') or 0):.0f} ms, run queue {float(x.get('runq_wait_ms') or 0):.0f} ms" for x in items[:5]],
        figures={"count": len(items), "max_ms": float(d.max()), "total_ms": total, "runq_wait_ms": runq,
                 "cpu_ms": cpu},
        key="contention",
    )


def _runq(r: dict[str, Any]) -> float:
    """The share of a second the loop thread waited, runnable, for a CPU (runs
    recorded before runq_fraction carry only its milliseconds, of a ~1 s record)."""
    if r.get("runq_fraction") is not None:
        return float(r["runq_fraction"])
    return min(1.0, float(r.get("runq_ms") or 0.0) / 1000.0)


def occupied_fraction(r: dict[str, Any]) -> float:
    """The share of a second the loop was not free to serve a client: busy by
    the heartbeat or by its own CPU time, or computing plus waiting for a CPU
    to compute on. On a machine that gives the loop thread a fraction of a
    core, its CPU time alone cannot reach that fraction however much work the
    loop has queued (a loop 80% busy read 0.55-0.6 under two CPU hogs on two
    cores, while it waited 0.2-0.3 of each second in the run queue). An idle
    loop waits little there: the scheduler runs a thread waking from sleep
    soon (0.01-0.015 of a second in the same conditions)."""
    own = float(r.get("busy_fraction", 0.0))
    cpu = r.get("cpu_fraction")
    if cpu is None:
        return own
    return max(own, min(1.0, float(cpu) + _runq(r)))


def _saturation(run_dir: Path, lag: list[dict[str, Any]], metrics: dict[str, Any], scenario: str | None) -> Finding | None:
    busy = [occupied_fraction(r) >= SATURATION_BUSY for r in lag]
    best, run_start, cur = (0, 0), 0, 0
    for i, b in enumerate(busy):
        if b:
            if cur == 0:
                run_start = i
            cur += 1
            if cur > best[1] - best[0]:
                best = (run_start, i + 1)
        else:
            cur = 0
    if best[1] - best[0] < SATURATION_MIN_S:
        return None
    period = lag[best[0]:best[1]]
    t0, t1 = period[0]["t"] - 1, period[-1]["t"]
    frames: Counter[str] = Counter()
    total_busy = 0
    for r in iter_jsonl(run_dir / AGENT / "busy_samples.jsonl"):
        if t0 <= r.get("t", 0) <= t1:
            frames.update(r.get("frames", {}))
            total_busy += r.get("busy", 0)
    top = frames.most_common(5)
    rest = [r["ms"] for r in iter_jsonl(run_dir / LOAD / "requests.jsonl") if t0 <= r.get("t", 0) <= t1]
    gaps = [(g1 - g0) * 1000 for _, g0, g1 in _frame_gaps(run_dir) if t0 <= g0 <= t1]
    mean_busy = float(np.mean([occupied_fraction(r) for r in period]))
    cpu = float(np.mean([float(r.get("cpu_fraction") or 0.0) for r in period]))
    runq = float(np.mean([_runq(r) for r in period]))
    # of the time the loop ran or was ready to, the share it waited for a CPU:
    # over HOST_SHARE, the machine decided the figure (analysis/severity.py)
    runq_share = runq / (cpu + runq) if cpu + runq > 0 else 0.0
    dom = top[0][0] if top else "unknown"
    file_line, _, func = dom.partition(" ")
    file, _, line = file_line.rpartition(":")
    return Finding(
        kind="loop_saturation", title=f"Event loop saturated: busy {mean_busy:.0%} for {len(period)} s",
        severity="HIGH" if mean_busy >= 0.9 else "MEDIUM", dimension="Performance",
        description=(f"For {len(period)} consecutive seconds the loop was busy {mean_busy:.0%} of the time in many "
                     f"turns (lag p99 up to {max(r.get('p99_ms', 0) for r in period):.1f} ms), with no single stall "
                     "necessarily over the threshold. Every request waits several turns."),
        impact=(f"REST latency during the period: p50 {np.median(rest):.0f} ms, p95 {np.percentile(rest, 95):.0f} ms "
                f"over {len(rest)} requests; " if rest else "") + (
                f"frame gaps p99 {np.percentile(gaps, 99):.0f} ms." if gaps else "no frame gaps recorded."),
        suggested_fix="Move the dominant work off the loop or make it cheaper per turn; pace streams to real time.",
        location=Location(file=file or None, line_start=int(line) if line.isdigit() else None,
                          line_end=int(line) if line.isdigit() else None, function=func or None, scenario=scenario),
        evidence=[f"busy fraction {mean_busy:.2f} mean over {len(period)} s (threshold {SATURATION_BUSY}): "
                  f"the loop thread computed {cpu:.2f} of the time and waited for a CPU {runq:.2f}"]
        + [f"{name}: {n / max(1, total_busy):.0%} of busy samples" for name, n in top],
        figures={"busy_fraction": mean_busy, "seconds": len(period), "cpu_fraction": round(cpu, 4),
                 "runq_fraction": round(runq, 4), "runq_share": round(runq_share, 4),
                 "dominant_share": top[0][1] / max(1, total_busy) if top else 0.0},
        key=f"saturation {dom}",
        sites=[_busy_site(dom)] if top else [],
    )
