"""Severity by the audit's table, and the section a finding belongs to,
applied by rule in one place after grouping.

The audit's table (Auralis's `audit-backend` command):
- CRITICAL: corrupted or lost audio, data loss, an exploitable hole;
- HIGH: failures under realistic load;
- MEDIUM: incorrect behaviour with a workaround;
- LOW: quality.

Detectors set a severity from what they measured; these rules adjust it
where the table says otherwise, and move findings the environment caused
(the DSP engine absent or replaced by a stand-in, a load generator out of
CPU, a host that gave the loop no CPU) to the "environment" section, which
the default gate does not count.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .model import Finding, severity_rank
from .rundir import read_json

# audio the listener does not get as the source has it: a span repeated, lost
# or replaced by silence, or a stream of the wrong length
CORRUPTED_AUDIO = ("repeated_audio", "repeated_samples", "missing_audio", "dropped_samples", "gap",
                   "crossfade_dip", "length_mismatch", "position_jump")
# a stall with no frame of the target's own is at most LOW (quality: the
# library does it, the target may not be able to avoid it) unless its length
# alone is a failure under load
LIBRARY_STALL_HIGH_MS = 1000.0
# what the client measures and a load generator out of CPU distorts
CLIENT_TIMING = ("slow_time_to_first_audio", "playback_underrun")
LOADGEN_SATURATED_PERCENT = 90.0  # the gate's and the README's limit (Locust's own warning level)
ENVIRONMENT_KINDS = ("loop_contention", "loop_starved_by_host")
DSP_SUBSTITUTED = ("absent", "stand-in")


TTFA_SLOW_MS = 1500.0  # analysis/client.py's threshold
HOST_SHARE = 0.5  # a stall mostly spent in the run queue: the machine's (analysis/loop.py)


def starved_ttfa(run_dir: Path) -> tuple[int, int, float]:
    """Of the streams slower than TTFA_SLOW_MS to first audio, how many the
    host explains: the machine held the target up (client.machine_delay_ms,
    the same delay the gate's ttfa_own_p95_ms takes out) for at least the
    time by which they were late. Returns (explained, slow, host ms in them)."""
    from .client import cpu_waits, machine_delay_ms
    from .cpu_share import outside_delay
    from .rundir import list_streams

    waits, outside = cpu_waits(Path(run_dir)), outside_delay(Path(run_dir))
    explained = slow = 0
    total = 0.0
    for st in list_streams(Path(run_dir)):
        sent = next((e["t"] for e in st.events if e.get("dir") == "out"), None)
        first = next((e["t"] for e in st.events if e.get("kind") == "binary"), None)
        if sent is None or first is None or (first - sent) * 1000 <= TTFA_SLOW_MS:
            continue
        slow += 1
        waited = machine_delay_ms(waits, outside, sent, first)
        total += waited
        if waited >= (first - sent) * 1000 - TTFA_SLOW_MS:
            explained += 1
    return explained, slow, total


def _worst(a: str, b: str) -> str:
    return a if severity_rank(a) <= severity_rank(b) else b


def _kinds(f: Finding) -> set[str]:
    return {f.kind} | {str(s.get("kind")) for s in f.symptoms}


def apply_severity_rules(findings: list[Finding], run_dir: Path | None = None,
                         metrics: dict[str, Any] | None = None) -> list[Finding]:
    """run_dir gives run.json (the DSP state the agent saw); metrics are the
    families' figures of this analysis (the load generator's CPU)."""
    run: dict[str, Any] = (read_json(Path(run_dir) / "run.json", {}) or {}) if run_dir else {}
    metrics = metrics or {}
    dsp_state = (run.get("target") or {}).get("dsp_state")
    loadgen = metrics.get("loadgen_cpu_max_percent")
    for f in findings:
        kinds = _kinds(f)
        why: list[str] = []
        if kinds & set(CORRUPTED_AUDIO) and f.severity != "CRITICAL":
            f.severity = "CRITICAL"
            why.append("corrupted or lost audio is CRITICAL")
        if f.kind == "loop_stall" and not any(s.get("frame") for s in f.sites):
            cap = "HIGH" if float(f.figures.get("max_ms") or 0) >= LIBRARY_STALL_HIGH_MS else "LOW"
            if severity_rank(f.severity) < severity_rank(cap):
                f.severity = cap
                why.append("a stall with no frame of the target is at most LOW unless it alone lasts "
                           f"{LIBRARY_STALL_HIGH_MS:.0f} ms")
        if f.kind == "passthrough" and dsp_state in DSP_SUBSTITUTED:
            f.section = "environment"
            why.append(f"the DSP module was {dsp_state} in this environment: pass-through is the environment's")
        if f.kind in ENVIRONMENT_KINDS:
            f.section = "environment"
            why.append("the machine or another process took the loop's CPU")
        if f.kind == "loop_saturation" and float(f.figures.get("runq_share") or 0.0) >= HOST_SHARE:
            f.section = "environment"
            why.append(f"the loop waited for a CPU {float(f.figures['runq_share']):.0%} of the time it was busy: "
                       "the machine's share decided it")
        if f.kind in CLIENT_TIMING and loadgen is not None and float(loadgen) >= LOADGEN_SATURATED_PERCENT:
            f.section = "environment"
            why.append(f"the load generator ran out of CPU ({float(loadgen):.0f}%): its timings measure itself")
        elif f.kind == "slow_time_to_first_audio" and run_dir:
            explained, slow, waited = starved_ttfa(Path(run_dir))
            if slow and explained * 2 > slow:
                f.section = "environment"
                why.append(f"for {explained} of {slow} slow streams the target waited for a CPU while the "
                           f"machine's other load ran ({waited:.0f} ms in all) at least as long as they were "
                           "late: the machine's delay")
        if why:
            f.evidence.append("severity rule: " + "; ".join(why))
    return findings
