"""Every figure a run can produce, declared once: name, unit, meaning, and
which direction is better.

analysis/ produces the figures, so the catalogue lives here; the gate, the
baseline reader and `python -m instrument.run --list-metrics` read it. A gate
rule or a baseline that names a figure this catalogue does not know is a
typo, not a figure that was "not measured" (that stays for known figures a
run did not produce). A figure whose name carries a part that varies (a
stream type, a severity) is declared once as a pattern (fnmatch syntax).
A test runs the analysis families and fails when one emits an undeclared
name, so a new figure cannot ship undeclared.
"""
from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    name: str  # exact name, or an fnmatch pattern such as `audio_streams_analysed_*`
    unit: str
    meaning: str
    better: str  # "lower" | "higher" | "none"

    @property
    def is_pattern(self) -> bool:
        return any(ch in self.name for ch in "*?[")


def _m(name: str, unit: str, better: str, meaning: str) -> Metric:
    return Metric(name, unit, meaning, better)


METRICS: tuple[Metric, ...] = (
    # ---- client side (analysis.client): what the load generator's clients saw
    _m("streams_total", "streams", "higher", "streams the clients started"),
    _m("streams_completed", "streams", "higher", "streams that ran to their end"),
    _m("streams_errored", "streams", "lower", "streams that ended in an error message"),
    _m("streams_failed", "streams", "lower", "streams that errored or never started"),
    _m("ttfa_p50_ms", "ms", "lower", "time to first audio, median over streams"),
    _m("ttfa_p95_ms", "ms", "lower", "time to first audio, 95th percentile"),
    _m("ttfa_max_ms", "ms", "lower", "time to first audio, worst stream"),
    _m("ttfa_own_p95_ms", "ms", "lower",
       "time to first audio less the time the machine held the target up meanwhile (its loop's CPU "
       "waits, or its threads' run-queue waits behind other processes), 95th percentile"),
    _m("frame_gap_p99_ms", "ms", "lower", "gap between consecutive frames, 99th percentile"),
    _m("frame_gap_max_ms", "ms", "lower", "longest gap between consecutive frames"),
    _m("underruns", "count", "lower", "times a client's playback buffer ran dry"),
    _m("underrun_total_s", "s", "lower", "total time clients' playback buffers were dry"),
    _m("delivery_rate_x_p50", "x real time", "higher", "median delivery rate as a multiple of real time"),
    _m("pcm_received_mb", "MB", "none", "PCM bytes received by all clients"),
    _m("throughput_mb_s", "MB/s", "higher", "PCM bytes per second over the load window"),
    _m("commands_rate_limited", "count", "lower", "commands the server refused as over its rate limit"),
    _m("protocol_violations", "count", "lower", "messages that break the stream protocol"),
    _m("stream_timeouts", "streams", "lower", "streams stopped by the scenario's per-stream timeout"),
    _m("rest_requests", "requests", "none", "REST requests made"),
    _m("rest_errors", "requests", "lower", "REST requests that failed"),
    _m("rest_latency_p50_ms", "ms", "lower", "REST latency, median"),
    _m("rest_latency_p95_ms", "ms", "lower", "REST latency, 95th percentile"),
    _m("target_cpu_mean_percent", "%", "lower", "target process CPU, mean over the run"),
    _m("loadgen_cpu_max_percent", "%", "lower", "load generator CPU, highest rolling mean (saturation)"),
    _m("loadgen_saturated", "0/1", "lower", "1 when the load generator's CPU reached the saturation limit"),
    # ---- raw sample series (metrics.json "samples"), compared against a baseline
    _m("samples.ttfa_ms", "ms", "lower", "every stream's time to first audio"),
    _m("samples.frame_gap_ms", "ms", "lower", "frame gaps (subsampled)"),
    _m("samples.rest_latency_ms", "ms", "lower", "every REST request's latency"),
    # ---- audio (analysis.audio.run)
    _m("audio_findings", "findings", "lower", "audio findings after grouping"),
    _m("audio_streams_analysed", "streams", "higher", "streams whose audio was analysed"),
    _m("audio_streams_analysed_*", "streams", "higher", "streams of one stream type (normal, enhanced) analysed"),
    _m("audio_stream_types_unanalysed", "types", "lower", "stream types played but with no analysed audio"),
    _m("audio_boundaries_checked", "boundaries", "higher", "chunk boundaries checked"),
    _m("audio_defects", "defects", "lower", "audio defects before grouping"),
    # ---- stream continuity (analysis.continuity)
    _m("continuity_boundaries_checked", "boundaries", "higher", "chunk boundaries checked for repeated or lost audio"),
    # ---- event loop (analysis.loop)
    _m("loop_stall_count", "stalls", "lower", "loop stalls attributed to the target's code"),
    _m("loop_stall_max_ms", "ms", "lower", "longest loop stall attributed to the target's code"),
    _m("loop_stall_total_ms", "ms", "lower", "total loop stall time attributed to the target's code"),
    _m("loop_gc_stall_count", "stalls", "lower", "loop stalls during garbage collection"),
    _m("loop_host_stall_count", "stalls", "none", "loop stalls when the whole host stalled"),
    _m("loop_host_proxy_stall_count", "stalls", "none",
       "of the host stalls, those in which the loop waited on a thread the machine starved (the GIL's holder)"),
    _m("loop_host_stall_total_ms", "ms", "none", "total loop stall time when the whole host stalled"),
    _m("loop_contention_stall_count", "stalls", "none", "loop stalls from CPU contention"),
    _m("loop_contention_stall_total_ms", "ms", "none", "total loop stall time from CPU contention"),
    _m("loop_lag_p50_ms", "ms", "lower", "loop lag, median of per-second medians"),
    _m("loop_lag_p90_ms", "ms", "lower", "loop lag, median of per-second 90th percentiles"),
    _m("loop_lag_p99_ms", "ms", "lower", "loop lag, 99th percentile of per-second 99th percentiles"),
    _m("loop_lag_max_ms", "ms", "lower", "largest loop lag"),
    _m("loop_busy_fraction", "fraction", "lower", "mean fraction of time the loop was busy"),
    _m("loop_busy_fraction_max_s", "fraction", "lower", "busiest second's busy fraction"),
    # ---- memory (analysis.memory)
    _m("rss_start_mb", "MB", "lower", "target RSS at the first sample"),
    _m("rss_peak_mb", "MB", "lower", "target RSS, peak"),
    _m("rss_end_mb", "MB", "lower", "target RSS at the last sample"),
    _m("uss_peak_mb", "MB", "lower", "target USS, peak"),
    _m("threads_max", "threads", "lower", "target threads, peak"),
    _m("fds_max", "fds", "lower", "target open file descriptors, peak"),
    _m("cycles", "cycles", "none", "connect/stream/disconnect cycles done"),
    _m("rss_growth_mb_per_100_cycles", "MB/100 cycles", "lower", "RSS growth per 100 disconnect cycles (leak)"),
    _m("rss_growth_mb_per_100_cycles_low", "MB/100 cycles", "lower",
       "95% lower bound of that growth: what a run shows beyond its noise"),
    _m("rss_per_active_stream_mb", "MB/stream", "lower", "RSS per concurrently active stream"),
    _m("held_per_active_stream_max_mb", "MB/stream", "lower",
       "most the agent saw held per open connection (transport buffers and send queues)"),
    _m("tasks_growth_per_100_cycles", "tasks/100 cycles", "lower", "asyncio tasks growth per 100 cycles"),
    # ---- post-load checks (analysis.checks)
    _m("recovery_ok", "0/1", "higher", "1 when a fresh stream succeeded after the load"),
    _m("backpressure_held_mib_per_reader", "MiB", "lower", "memory held per client that stopped reading"),
    _m("backpressure_queued_mib_per_reader", "MiB", "lower", "bytes queued in transports and send queues per stalled reader"),
    _m("backpressure_rss_rise_mib_per_reader", "MiB", "lower", "RSS rise per stalled reader (corroborating evidence)"),
    _m("backpressure_transport_max_mib", "MiB", "lower", "largest WebSocket transport write buffer while readers stalled"),
    _m("crash_restart_healthy_s", "s", "lower", "time from the restart after a kill -9 to a healthy target"),
    _m("concurrent_writes_total", "writes", "none", "writes sent during the concurrent-write storm"),
    _m("concurrent_writes_acked", "writes", "none", "of those, writes the target acknowledged (2xx)"),
    _m("concurrent_writes_lost", "writes", "lower", "acknowledged writes missing afterwards"),
    _m("path_traversal_probes", "requests", "none", "traversal requests sent"),
    _m("path_traversal_served", "requests", "lower", "traversal requests that served the canary"),
    _m("shutdown_exit_s", "s", "lower", "time from SIGTERM to the target's exit"),
    _m("shutdown_survivors", "processes", "lower", "processes that outlived the target"),
    _m("truth_streams_whole", "streams", "higher", "truth-phase streams played alone to their end"),
    _m("truth_stream_timeouts", "streams", "lower", "truth-phase streams stopped by their per-stream timeout"),
    _m("truth_streams_skipped", "streams", "lower", "truth-phase streams skipped (budget or a refused play)"),
    _m("truth_paths_uncovered", "paths", "lower", "stream paths with no whole stream even alone on a quiet target"),
    # ---- run validity (analysis.pipeline, from run.json and the wrapper's probes)
    _m("users_requested", "users", "none", "users the run asked the load generator for"),
    _m("users_started", "users", "higher", "most users the load generator ever had running"),
    _m("liveness_unanswered_max_s", "s", "lower", "longest time the target answered neither health nor WS ping"),
    _m("analysis_errors", "families", "lower", "analysis families that failed"),
    _m("checks_errored", "checks", "lower", "post-load checks that errored (could not run)"),
    # ---- position truth (analysis.audio.position)
    _m("position_streams_placed", "streams", "higher", "streams whose start was placed unambiguously in the source"),
    _m("position_requests_unjudged", "streams", "lower",
       "streams asked to start at a position (a seek, a resume) whose audio could not be placed in the source"),
    _m("position_error_max_s", "s", "lower", "largest |start - requested position| among reported position errors"),
    _m("position_jumps", "count", "lower", "position_jump defects (the source position jumping inside a stream)"),
    _m("stale_audio_streams", "streams", "lower", "streams with audio of the previous position after a seek"),
    _m("attenuation_max_db", "dB", "lower", "deepest reported attenuation against the source"),
    # ---- startup, gaps and who took the CPU (analysis.loop, analysis.cpu_share)
    _m("loop_startup_stall_count", "stalls", "none", "loop stalls before the target first answered health"),
    _m("loop_startup_stall_total_ms", "ms", "none", "total loop stall time before the first health answer"),
    _m("stream_slots_fresh_refused", "plays", "lower",
       "fresh streams the stream_slots check was refused, with none of its clients connected (0-2)"),
    _m("permits_leaked", "permits", "lower",
       "semaphore permits the target's tasks took and never released (its concurrency slots, lost for good)"),
    _m("loop_tool_request_stall_count", "stalls", "none",
       "loop stalls inside the tool's own requests (the openapi check's spec fetch): its cost, not the target's"),
    _m("loop_tool_request_stall_total_ms", "ms", "none", "total loop stall time inside the tool's own requests"),
    _m("frame_gap_visible_total_ms", "ms", "lower", "client-visible frame gap time (gaps of 250 ms or more)"),
    _m("frame_gap_explained_by_stalls_ms", "ms", "none", "visible gap time that loop stalls explain"),
    _m("frame_gap_explained_by_stalls_fraction", "fraction", "none", "share of visible gap time stalls explain"),
    _m("host_stall_cpu_target_threads_ms", "ms", "lower", "CPU the target's other threads took during host stalls"),
    _m("host_stall_cpu_loadgen_ms", "ms", "none", "CPU the load generator took during host stalls"),
    _m("host_stall_cpu_other_ms", "ms", "none", "CPU other processes took during host stalls"),
    _m("host_stalls_judged", "stalls", "none", "host stalls with per-thread CPU data"),
    # ---- the tool's own cost (analysis.loop, from agent/cost.json)
    _m("instrumentation_cpu_pct", "%", "lower", "CPU of the agent's own threads as a share of the target process's"),
    _m("instrumentation_cpu_s", "s", "lower", "CPU time of the agent's own threads"),
    _m("loop_instrumentation_stall_count", "stalls", "lower", "loop stalls that were the agent's own work"),
    _m("loop_instrumentation_stall_total_ms", "ms", "lower", "total loop stall time that was the agent's own work"),
    _m("loop_traced_stall_count", "stalls", "none",
       "loop stalls under --trace-memory that tracemalloc's own slowdown could have made (not judged)"),
    _m("loop_traced_stall_max_ms", "ms", "none", "the longest of those"),
    # ---- runtime coverage (--coverage; analysis.runtime_coverage)
    _m("coverage_lines_pct", "%", "higher", "share of the target's own imported lines the scenario ran"),
    _m("coverage_routes_reached", "routes", "higher", "HTTP routes whose body ran"),
    _m("coverage_routes_total", "routes", "none", "HTTP routes in the app's route table"),
    _m("coverage_ws_handlers_reached", "handlers", "higher", "WebSocket message handlers reached"),
    _m("coverage_ws_handlers_total", "handlers", "none", "WebSocket message handlers in the target's dispatch"),
    _m("coverage_streaming_lines_pct", "%", "higher", "share of streaming/chunking lines the scenario ran"),
    # ---- findings counts (analysis.pipeline; the gate recounts them from findings.json)
    _m("findings.CRITICAL", "findings", "lower", "CRITICAL findings"),
    _m("findings.HIGH", "findings", "lower", "HIGH findings"),
    _m("findings.MEDIUM", "findings", "lower", "MEDIUM findings"),
    _m("findings.LOW", "findings", "lower", "LOW findings"),
    _m("findings.total", "findings", "lower", "all findings"),
    _m("findings.environment", "findings", "none", "findings the environment caused (not gated)"),
)

# Figures that measure the target's speed. An instrumentation mode that slows
# every line of the target (tracemalloc's hook on each allocation: the
# reference's loop needed 4x the CPU, delivered 4x slower and answered REST
# 10x slower at p95 under --trace-memory) moves these by its own cost, so the
# gate cannot judge them on such a run, nor compare them with a run made
# without it. Counts and sizes (memory, findings, streams) are not speeds.
SPEED: tuple[str, ...] = (
    "ttfa_*", "frame_gap_p99_ms", "frame_gap_max_ms", "frame_gap_visible_total_ms", "underruns", "underrun_total_s",
    "delivery_rate_x_p50", "throughput_mb_s", "rest_latency_*", "target_cpu_mean_percent", "stream_timeouts",
    "samples.ttfa_ms", "samples.frame_gap_ms", "samples.rest_latency_ms",
    "loop_stall_count", "loop_stall_max_ms", "loop_stall_total_ms", "loop_gc_stall_count", "loop_lag_*",
    "loop_busy_fraction", "loop_busy_fraction_max_s", "liveness_unanswered_max_s", "crash_restart_healthy_s",
    "shutdown_exit_s",
)

# Options under which the target runs slower by the tool's hand, by the run.json
# option that records each, with what a reader is told.
SLOWING_OPTIONS: dict[str, str] = {
    "trace_memory": "--trace-memory (tracemalloc's hook runs on every allocation in the target)",
}


def is_speed(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in SPEED)


def slowed_by(options: dict | None) -> list[str]:
    """The slowing instrumentation a run's options (run.json "options") turned on."""
    return [why for key, why in SLOWING_OPTIONS.items() if (options or {}).get(key)]


_EXACT = {m.name: m for m in METRICS if not m.is_pattern}
_PATTERNS = [m for m in METRICS if m.is_pattern]


def lookup(name: str) -> Metric | None:
    """The declaration of a figure name: exact first, then the longest pattern."""
    if name in _EXACT:
        return _EXACT[name]
    hits = [m for m in _PATTERNS if fnmatch.fnmatchcase(name, m.name)]
    return max(hits, key=lambda m: len(m.name)) if hits else None


def is_known(name: str) -> bool:
    return lookup(name) is not None


def closest(name: str, n: int = 3) -> list[str]:
    """Known names closest to a misspelt one (difflib), best first."""
    return difflib.get_close_matches(name, [m.name for m in METRICS], n=n, cutoff=0.5)


def unknown_message(name: str) -> str:
    near = closest(name)
    hint = f"; did you mean {', '.join(near)}?" if near else "; see --list-metrics"
    return f"unknown metric {name!r}{hint}"


def undeclared(names) -> list[str]:
    return sorted(n for n in names if not is_known(n))


def render() -> str:
    """The catalogue as a table for `--list-metrics`."""
    w = max(len(m.name) for m in METRICS)
    u = max(len(m.unit) for m in METRICS)
    lines = [f"{'metric':<{w}}  {'unit':<{u}}  better  speed  meaning"]
    lines += [f"{m.name:<{w}}  {m.unit:<{u}}  {m.better:<6}  {'yes' if is_speed(m.name) else '':<5}  {m.meaning}"
              for m in METRICS]
    return "\n".join(lines)
