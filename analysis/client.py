"""What the clients experienced: time to first audio, gaps between frames,
delivery rate, a simulated playback buffer per stream, protocol violations,
REST latency and the load generator's own health. Raw values are kept (Locust
rounds its percentiles; a gate must not)."""
from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .cpu_share import outside_delay
from .model import END_TOTALS_CLAUSE, Finding, Location
from .rundir import AGENT, LOAD, Stream, iter_jsonl, list_streams, read_json

# Client profiles whose slowness is their own: their buffer underruns are not
# the server's fault and are not counted against it.
SELF_THROTTLED_PROFILES = {"slow", "stalled"}
TTFA_FINDING_MS = 1500.0
LOADGEN_SATURATED_PERCENT = 90.0


@dataclass
class StreamTiming:
    stream_id: str
    profile: str
    stream_type: str | None
    ended: str | None
    ttfa_s: float | None
    delivered_s: float
    delivery_rate_x: float | None
    frame_gaps_s: list[float] = field(default_factory=list)
    buffer_t: list[float] = field(default_factory=list)  # seconds since the first frame
    buffer_level_s: list[float] = field(default_factory=list)
    underruns: int = 0
    underrun_total_s: float = 0.0
    first_underrun_s: float | None = None
    request_t: float | None = None  # when the play command went out (epoch s)


def cpu_waits(run_dir: Path) -> list[tuple[float, float, float]]:
    """(start, end, ms the loop waited for a CPU) of each loop stall the agent
    recorded with a run-queue wait (agent/stalls.jsonl): time the machine,
    not the target, held the loop."""
    out = []
    for s in iter_jsonl(Path(run_dir) / AGENT / "stalls.jsonl"):
        runq, dur = float(s.get("runq_wait_ms") or 0.0), float(s.get("duration_ms") or 0.0)
        if runq > 0 and dur > 0:
            out.append((float(s["t"]), float(s["t"]) + dur / 1000, min(runq, dur)))
    return out


def waited_for_cpu_ms(waits: list[tuple[float, float, float]], a: float, b: float) -> float:
    """Of the stalls' CPU waits, the share that fell within [a, b] (a stall's
    wait spread evenly over it)."""
    total = 0.0
    for s, e, runq in waits:
        overlap = min(b, e) - max(a, s)
        if overlap > 0:
            total += runq * overlap / (e - s)
    return total


def machine_delay_ms(waits: list[tuple[float, float, float]], outside: Callable[[float, float], float] | None,
                     a: float, b: float) -> float:
    """How long the machine held up the target's work in [a, b]: the loop's
    CPU waits in its stalls, or the target's threads' run-queue wait the
    machine's other load caused (outside_delay), whichever is longer."""
    return max(waited_for_cpu_ms(waits, a, b), outside(a, b) if outside else 0.0)


def simulate_playback(arrival_t: np.ndarray, arrival_s: np.ndarray, prebuffer_s: float = 0.0):
    """A player at 1x that starts when `prebuffer_s` of audio has arrived and
    pauses (an underrun) whenever its buffer is empty while more is to come.

    Returns (times since first arrival, buffer level just after each arrival,
    underrun count, underrun total seconds, first underrun time)."""
    if arrival_t.size == 0:
        return np.array([]), np.array([]), 0, 0.0, None
    t0 = arrival_t[0]
    cum = np.cumsum(arrival_s)
    start_idx = int(np.searchsorted(cum, prebuffer_s)) if prebuffer_s > 0 else 0
    start_idx = min(start_idx, arrival_t.size - 1)
    clock = arrival_t[start_idx]  # playback starts
    level = float(cum[start_idx])
    levels = np.zeros(arrival_t.size)
    levels[: start_idx + 1] = cum[: start_idx + 1]
    underruns, total, first = 0, 0.0, None
    for i in range(start_idx + 1, arrival_t.size):
        dt = arrival_t[i] - clock
        if dt > level:  # ran dry before this frame arrived
            starve = dt - level
            underruns += 1
            total += starve
            if first is None:
                first = clock + level - t0
            level = 0.0
        else:
            level -= dt
        clock = arrival_t[i]
        level += arrival_s[i]
        levels[i] = level
    return arrival_t - t0, levels, underruns, total, first


def stream_timing(s: Stream) -> StreamTiming | None:
    info = s.summary or {}
    if not info and not s.events:
        return None
    rate = int(info.get("sample_rate") or (s.start or {}).get("sample_rate") or 44100)
    frames = [e for e in s.events if e.get("kind") == "binary"]
    t = np.array([e["t"] for e in frames], dtype=float)
    dur = np.array([e.get("frames", 0) / rate for e in frames], dtype=float)
    request_t = info.get("request_t")
    if request_t is None:
        outs = [e for e in s.events if e.get("dir") == "out"]
        request_t = outs[0]["t"] if outs else None
    ttfa = float(t[0] - request_t) if t.size and request_t else None
    delivered = float(dur.sum())
    span = float(t[-1] - t[0]) if t.size > 1 else 0.0
    # the first frame carries audio that arrived in ~no time; rate over the rest
    rate_x = float((delivered - dur[0]) / span) if span > 0 else None
    rel, levels, n_under, tot_under, first = simulate_playback(t, dur)
    return StreamTiming(
        stream_id=s.id, profile=str(info.get("client_profile") or "browser"), stream_type=info.get("stream_type"),
        ended=info.get("ended"), ttfa_s=ttfa, delivered_s=delivered, delivery_rate_x=rate_x,
        frame_gaps_s=list(np.diff(t)) if t.size > 1 else [], buffer_t=list(rel), buffer_level_s=list(levels),
        underruns=n_under, underrun_total_s=tot_under, first_underrun_s=first,
        request_t=float(request_t) if request_t else None,
    )


def stream_timings(run_dir: Path) -> list[StreamTiming]:
    out = []
    for s in list_streams(run_dir):
        st = stream_timing(s)
        if st is not None:
            out.append(st)
    return out


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def rolling_max_mean(t: np.ndarray, v: np.ndarray, window_s: float = 2.0) -> float | None:
    """Highest mean of v over any window of window_s seconds."""
    if v.size == 0:
        return None
    best = float(v.max()) if v.size == 1 else 0.0
    j = 0
    acc = 0.0
    for i in range(v.size):
        acc += v[i]
        while t[i] - t[j] > window_s:
            acc -= v[j]
            j += 1
        if t[i] - t[0] >= window_s or i == v.size - 1:
            best = max(best, acc / (i - j + 1))
    return best


def analyse_client(run_dir: Path) -> tuple[list[Finding], dict[str, Any]]:
    run_dir = Path(run_dir)
    run = read_json(run_dir / "run.json", {}) or {}
    scenario = run.get("scenario")
    streams = list_streams(run_dir)
    timings = [st for st in (stream_timing(s) for s in streams) if st is not None]
    metrics: dict[str, Any] = {}
    samples: dict[str, list[float]] = {}
    findings: list[Finding] = []

    judged = [st for st in timings if st.profile not in SELF_THROTTLED_PROFILES]
    ttfa_ms = [st.ttfa_s * 1000 for st in timings if st.ttfa_s is not None]
    gaps_ms = [g * 1000 for st in judged for g in st.frame_gaps_s]
    metrics["streams_total"] = len(timings)
    metrics["streams_completed"] = sum(1 for st in timings if st.ended == "completed")
    metrics["ttfa_p50_ms"] = _pct(ttfa_ms, 50)
    metrics["ttfa_p95_ms"] = _pct(ttfa_ms, 95)
    metrics["ttfa_max_ms"] = max(ttfa_ms) if ttfa_ms else None
    # the target's own time to first audio: each stream's less the time the
    # machine held it up meanwhile: the loop's CPU waits in its stalls
    # (measured by the agent) or, when longer, the run-queue wait of the
    # target's threads the machine's other load caused (cpu_share.outside_delay:
    # a first chunk rendered in an executor waits there, not in the loop).
    # The gate judges this one: a loaded machine is not the target's latency
    # (the severity rules file such a slow-TTFA finding under the
    # environment), and a target's own slowness (a sleep, a render on a free
    # core, its threads queueing behind each other) is no such wait and stays in it
    waits = cpu_waits(run_dir)
    outside = outside_delay(run_dir)
    own_ms = [max(0.0, st.ttfa_s * 1000 - machine_delay_ms(waits, outside, st.request_t, st.request_t + st.ttfa_s))
              for st in timings if st.ttfa_s is not None and st.request_t is not None]
    metrics["ttfa_own_p95_ms"] = _pct(own_ms, 95)
    metrics["frame_gap_p99_ms"] = _pct(gaps_ms, 99)
    metrics["frame_gap_max_ms"] = max(gaps_ms) if gaps_ms else None
    metrics["underruns"] = sum(st.underruns for st in judged)
    metrics["underrun_total_s"] = round(sum(st.underrun_total_s for st in judged), 3)
    rates = [st.delivery_rate_x for st in judged if st.delivery_rate_x]
    metrics["delivery_rate_x_p50"] = _pct(rates, 50)
    # aggregate PCM throughput the server delivered over the whole load
    frame_t = [e["t"] for s in streams for e in s.events if e.get("kind") == "binary"]
    total_bytes = sum(e.get("bytes", 0) for s in streams for e in s.events if e.get("kind") == "binary")
    metrics["pcm_received_mb"] = round(total_bytes / 1e6, 3)
    if len(frame_t) > 1 and max(frame_t) > min(frame_t):
        metrics["throughput_mb_s"] = round(total_bytes / 1e6 / (max(frame_t) - min(frame_t)), 3)
    samples["ttfa_ms"] = ttfa_ms
    samples["frame_gap_ms"] = gaps_ms[:: max(1, len(gaps_ms) // 5000)] if gaps_ms else []

    # failed plays: errors answered instead of a stream. A rate-limit refusal
    # is counted apart: our clients keep under the limit as they send, and
    # when a busy server reads a queue of them at once it refuses a command
    # (usually a seek), not a stream
    errors = _failed_plays(run_dir)
    limited = [e for e in errors if (e.get("msg") or {}).get("error") == "rate_limit_exceeded"]
    failed = [e for e in errors if e not in limited]
    # streams the server started and then ended with an error (audio_stream_error,
    # or audio_stream_end reason "errored"): the listener hears the music stop
    errored = [s for s in streams if (s.summary or {}).get("ended") == "errored"
               and (s.summary or {}).get("client_profile", "browser") not in SELF_THROTTLED_PROFILES]
    metrics["streams_errored"] = len(errored)
    metrics["streams_failed"] = len(failed) + len(errored)
    metrics["commands_rate_limited"] = len(limited)
    if errored:
        findings.append(_stream_error_finding(errored, streams, scenario))

    # protocol violations, grouped by kind
    by_kind: dict[str, list[tuple[Stream, dict[str, Any]]]] = defaultdict(list)
    for s in streams:
        profile = (s.summary or {}).get("client_profile", "browser")
        for v in (s.summary or {}).get("violations") or [e.get("msg", {}) for e in s.events if e.get("kind") == "violation"]:
            if v.get("kind") in ("stream_never_ended",) and profile in SELF_THROTTLED_PROFILES:
                continue  # a frozen client being dropped is the server defending itself
            by_kind[v.get("kind", "unknown")].append((s, v))
    # a stream the client gave up on after its timeout is slow, not off-protocol
    metrics["protocol_violations"] = sum(len(v) for k, v in by_kind.items() if k not in ("stream_timeout",))
    metrics["stream_timeouts"] = len(by_kind.get("stream_timeout", []))
    for kind, items in sorted(by_kind.items()):
        findings.append(_violation_finding(kind, items, scenario))

    # time to first audio
    slow = [st for st in timings if st.ttfa_s is not None and st.ttfa_s * 1000 > TTFA_FINDING_MS
            and st.profile not in SELF_THROTTLED_PROFILES]
    if slow and metrics["ttfa_p95_ms"] and metrics["ttfa_p95_ms"] > TTFA_FINDING_MS:
        worst = max(slow, key=lambda st: st.ttfa_s or 0)
        findings.append(Finding(
            kind="slow_time_to_first_audio", title="Slow time to first audio",
            severity="MEDIUM", dimension="Performance",
            description=f"{len(slow)} of {len(timings)} streams took more than {TTFA_FINDING_MS:.0f} ms from the "
                        "play command to their first audio frame.",
            impact="The user presses play and hears nothing for over a second and a half.",
            suggested_fix="Send the first chunk before rendering the rest; move start-up work off the play path.",
            location=Location(scenario=scenario, stream=worst.stream_id),
            evidence=[f"TTFA p50 {metrics['ttfa_p50_ms']:.0f} ms, p95 {metrics['ttfa_p95_ms']:.0f} ms, "
                      f"max {metrics['ttfa_max_ms']:.0f} ms over {len(ttfa_ms)} streams"],
            figures={"ttfa_p95_ms": metrics["ttfa_p95_ms"], "ttfa_max_ms": metrics["ttfa_max_ms"], "streams": len(slow)},
            key="ttfa",
        ))
    # playback underruns of clients that read at full speed
    under = [st for st in judged if st.underruns]
    if under:
        worst = max(under, key=lambda st: st.underrun_total_s)
        findings.append(Finding(
            kind="playback_underrun", title="Client playback buffer ran dry mid-stream",
            severity="HIGH", dimension="WebSocket Streaming",
            description=f"{len(under)} streams read at full speed would have stopped playing while audio was "
                        "still to come: frames arrived later than a 1x player consumed them.",
            impact="Audible dropouts for listeners on a loaded server.",
            suggested_fix="Keep the event loop free during sends and render ahead of playback.",
            location=Location(scenario=scenario, stream=worst.stream_id, time_s=worst.first_underrun_s),
            evidence=[f"{st.stream_id}: {st.underruns} underruns, {st.underrun_total_s:.2f} s silent, first at "
                      f"{st.first_underrun_s:.2f} s" for st in under[:8]],
            figures={"underruns": metrics["underruns"], "underrun_total_s": metrics["underrun_total_s"]},
            key="underrun",
        ))

    # REST latency, raw
    req = list(iter_jsonl(run_dir / LOAD / "requests.jsonl"))
    lat = [float(r["ms"]) for r in req if r.get("ms") is not None]
    metrics["rest_requests"] = len(lat)
    metrics["rest_errors"] = sum(1 for r in req if not r.get("ok", True))
    metrics["rest_latency_p50_ms"] = _pct(lat, 50)
    metrics["rest_latency_p95_ms"] = _pct(lat, 95)
    samples["rest_latency_ms"] = lat

    # the backend's CPU while loaded (samples.jsonl is sampled out of process)
    cpu = [x.get("cpu_percent") for x in iter_jsonl(run_dir / "samples.jsonl") if x.get("cpu_percent") is not None]
    if cpu:
        metrics["target_cpu_mean_percent"] = round(float(np.mean(cpu)), 1)

    # the load generator's own health
    # one file per Locust process (master, workers); the busiest one decides
    peaks = []
    for path in sorted((run_dir / LOAD).glob("loadgen_samples*.jsonl")):
        ls = list(iter_jsonl(path))
        if ls:
            t = np.array([x.get("t", 0) for x in ls], dtype=float)
            cpu = np.array([x.get("cpu_percent", 0) or 0 for x in ls], dtype=float)
            peaks.append(rolling_max_mean(t, cpu))
    if peaks:
        peak = max(p for p in peaks if p is not None)
        metrics["loadgen_cpu_max_percent"] = peak
        metrics["loadgen_saturated"] = int(peak >= LOADGEN_SATURATED_PERCENT)
    metrics["samples"] = samples
    return findings, metrics


def _stream_error_text(s: Stream) -> str:
    info = s.summary or {}
    err = info.get("error") or {}
    if isinstance(err, dict) and err.get("error"):
        return str(err["error"])
    end = info.get("end") or {}
    return f"audio_stream_end reason '{end.get('reason', 'errored')}'" if end else "audio_stream_error"


def _stream_error_finding(errored: list[Stream], streams: list[Stream], scenario: str | None) -> Finding:
    """One finding for every stream that stopped with an error, grouped by the
    error text with its numbers masked (chunk 0 and chunk 3 are one cause)."""
    by_cause: dict[str, list[Stream]] = defaultdict(list)
    for s in errored:
        by_cause[re.sub(r"\d+", "N", _stream_error_text(s))].append(s)
    per_type = Counter(str((s.summary or {}).get("stream_type")) for s in streams)
    err_type = Counter(str((s.summary or {}).get("stream_type")) for s in errored)
    share = ", ".join(f"{n} of {per_type[t]} {t}" for t, n in sorted(err_type.items()))
    cause, items = max(by_cause.items(), key=lambda kv: len(kv[1]))
    first = items[0]
    rate = int((first.summary or {}).get("sample_rate") or (first.start or {}).get("sample_rate") or 44100)

    def heard(s: Stream) -> float:
        return sum(e.get("frames", 0) for e in s.events if e.get("kind") == "binary") / rate

    evidence = [f"{len(items)} stream(s): \"{c}\"" for c, items in sorted(by_cause.items(), key=lambda kv: -len(kv[1]))]
    evidence += [f"{s.id} ({(s.summary or {}).get('stream_type')}, track {(s.summary or {}).get('track_id')}): "
                 f"\"{_stream_error_text(s)}\" after {heard(s):.1f} s of audio" for s in errored[:10]]
    return Finding(
        kind="stream_error", title="Streams stopped with an error", severity="HIGH", dimension="Error Handling",
        description=f"{share} stream(s) ended with an error from the server instead of playing to the end; "
                    f"the commonest cause: \"{cause}\".",
        impact="The music stops mid-track (or never starts) for those listeners; a player shows an error.",
        suggested_fix="Find why the server gave up (the message names the stage); if it is a processing timeout "
                      "under load, bound concurrent processing or render ahead so one slow chunk does not end "
                      "the stream.",
        location=Location(scenario=scenario, stream=first.id),
        evidence=evidence,
        figures={"streams_errored": len(errored), "streams": len(streams), "causes": len(by_cause)},
        key="stream_error",
        sites=[{"error": c} for c in sorted(by_cause)],
    )


def _failed_plays(run_dir: Path) -> list[dict[str, Any]]:
    out = []
    for p in sorted((run_dir / LOAD / "connections").glob("*.jsonl")):
        for e in iter_jsonl(p):
            if e.get("kind") in ("error", "audio_stream_error"):
                out.append(e)
    return out


_VIOLATIONS = {
    # kind: (title, severity, dimension, impact, fix)
    "seq_gap": ("Chunk sequence numbers skip within a stream epoch", "HIGH", "WebSocket Streaming",
                "A client that checks seq sees lost audio and may drop or reorder chunks.",
                "Number frames per epoch at the point they are sent, after any drop decision."),
    "sample_count_mismatch": ("Binary frame size disagrees with its audio_chunk_meta sample_count", "HIGH",
                              "WebSocket Streaming", "Clients that trust sample_count read garbage or lose audio.",
                              "Compute sample_count from the exact payload that is sent."),
    "binary_without_meta": ("Binary audio frame without a preceding audio_chunk_meta", "HIGH", "WebSocket Streaming",
                            "The client cannot place the audio; it is dropped or misattributed.",
                            "Send meta and frame as one atomic pair per stream."),
    "meta_without_frame": ("audio_chunk_meta without its binary frame", "HIGH", "WebSocket Streaming",
                           "The client waits for audio that never comes; positions drift.",
                           "Never interleave another stream's frame between a meta and its frame."),
    "end_totals_mismatch": ("audio_stream_end totals disagree with the audio delivered", "MEDIUM",
                            "WebSocket Streaming",
                            "Progress gauges, scrobbling and gapless logic that trust total_samples are wrong.",
                            "Report the samples actually delivered in audio_stream_end."),
    "stream_never_ended": ("Stream ended without audio_stream_end", "HIGH", "WebSocket Streaming",
                           "The client cannot tell a finished track from a broken stream.",
                           "Always send audio_stream_end (or audio_stream_error) before leaving the stream loop."),
    "stream_timeout": ("Stream did not end within the per-stream timeout", "MEDIUM", "Performance",
                       "A listener waits longer for the track than the run allows; its end is not checked.",
                       "Find what slows the stream (its time to first audio and delivery rate say which)."),
    "malformed_json": ("Server sent a text frame that is not JSON", "MEDIUM", "Schema Consistency",
                       "Clients crash or ignore the message.", "Serialise every text message with json.dumps."),
    "partial_sample_frame": ("Binary frame is not a whole number of stereo float32 frames", "HIGH",
                             "WebSocket Streaming", "Channels swap for the rest of the stream.",
                             "Split frames on sample-frame boundaries."),
}


# violations about one message's contract: the message (the locate stage names
# the code that sent it) and the contract clause, which the ws_contract check's
# finding on the same clause shares (the grouping stage folds the two)
_VIOLATION_SITES: dict[str, list[dict[str, str]]] = {
    "end_totals_mismatch": [{"message": "audio_stream_end"}, {"contract": END_TOTALS_CLAUSE}],
}


def _violation_finding(kind: str, items: list[tuple[Stream, dict[str, Any]]], scenario: str | None) -> Finding:
    title, sev, dim, impact, fix = _VIOLATIONS.get(
        kind, (f"Protocol violation: {kind}", "MEDIUM", "WebSocket Streaming", "Clients may misbehave.",
               "Follow the documented message contract."))
    streams = sorted({s.id for s, _ in items})
    first_s, first_v = items[0]
    return Finding(
        kind=f"protocol_{kind}", title=title, severity=sev, dimension=dim,
        description=f"Seen {len(items)} times in {len(streams)} streams: {first_v.get('detail', '')}",
        impact=impact, suggested_fix=fix,
        location=Location(scenario=scenario, stream=first_s.id),
        evidence=[f"{s.id} ({(s.summary or {}).get('stream_type')}): {v.get('detail')}" for s, v in items[:10]],
        figures={"occurrences": len(items), "streams": len(streams)},
        key=kind, sites=[dict(x) for x in _VIOLATION_SITES.get(kind, [])],
    )
