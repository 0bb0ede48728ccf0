"""Judge run.json["checks"]["truth"]: did each stream path get at least one
whole stream played alone, and if not, why. The audio of those streams is
judged by the audio analysis like any other stream; this says whether that
judgement covers both paths. Pure."""
from __future__ import annotations

from typing import Any

from ..model import Finding, Location

WHOLE_SHARE = 0.99  # a stream that delivered this share of its track (from its start) played to its end


def _whole(s: dict[str, Any]) -> bool:
    exp = s.get("expected_s") or 0.0
    return s.get("ended") == "completed" and (not exp or (s.get("delivered_s") or 0.0) >= WHOLE_SHARE * exp)


def _why(s: dict[str, Any]) -> str:
    if s.get("timed_out"):
        return f"timed out after {s.get('wall_s', 0):.0f} s with {s.get('delivered_s') or 0:.1f} s delivered"
    if s.get("error"):
        err = s["error"]
        if isinstance(err, dict):
            err = (err.get("data") or {}).get("error") or err.get("message") or err.get("error") or err
        return (f"ended '{s.get('ended') or s.get('outcome')}' after {s.get('delivered_s') or 0:.1f} s: "
                f"{str(err)[:160]}")
    return (f"ended '{s.get('ended')}' after {s.get('delivered_s') or 0:.1f} of {s.get('expected_s') or 0:.1f} s"
            if s.get("ended") else f"{s.get('outcome')}")


def analyse(result: dict[str, Any], scenario: str | None) -> tuple[list[Finding], dict[str, float]]:
    if not result or isinstance(result.get("skipped"), str):  # the check was not available
        return [], {}
    if result.get("outcome") != "done":
        return [Finding(
            kind="truth_phase_failed", title="The quiet truth phase could not run",
            severity="MEDIUM", dimension="Test Coverage",
            description=f"The post-load truth check did not run: {result.get('error')}. The audio verdict covers "
                        "only what the load captured.",
            impact="A path whose audio the load could not capture is not judged at all.",
            suggested_fix="See the error; rerun when the target serves streams.",
            location=Location(scenario=scenario, stream="truth-check"), key="truth-failed")], {}
    streams = result.get("streams") or []
    skipped = result.get("skipped") or []
    metrics: dict[str, float] = {
        "truth_streams_whole": float(sum(1 for s in streams if _whole(s))),
        "truth_stream_timeouts": float(sum(1 for s in streams if s.get("timed_out"))),
        "truth_streams_skipped": float(len(skipped)),
    }
    uncovered = []
    for path in result.get("paths") or []:
        mine = [s for s in streams if s.get("stream_type") == path]
        if not any(_whole(s) for s in mine):
            uncovered.append((path, mine, [k for k in skipped if k.get("stream_type") == path]))
    metrics["truth_paths_uncovered"] = float(len(uncovered))
    findings = []
    for path, mine, skip in uncovered:
        reasons = [f"{s.get('track')}: {_why(s)}" for s in mine] + \
                  [f"{k.get('track')}: not played, {k.get('reason')}" for k in skip]
        quiet = result.get("quiet", True)
        cpus = result.get("host_cpus") or 0
        load = max(result.get("host_load_start") or 0.0, result.get("host_load_end") or 0.0)
        busy_host = bool(cpus) and load > cpus
        findings.append(Finding(
            kind="truth_path_uncovered", title=f"No whole {path} stream, even alone on a quiet target",
            severity="MEDIUM", dimension="Test Coverage",
            description=(f"After the load, each track was played alone on the {path} path to its end "
                         f"(per-stream timeout {result.get('stream_timeout_s', 0):.0f} s); none completed, so the "
                         f"audio verdict says nothing about the {path} path."
                         + ("" if quiet else f" The target never went quiet before the phase (CPU "
                                             f"{result.get('quiet_cpu_percent') or 0:.0f}%).")
                         + (f" The host was busy (load average {load:.1f} on {cpus} CPUs): other processes, not "
                            "this run's load, took the CPU the streams needed." if busy_host else "")),
            impact=f"Defects in the {path} path's audio ship unseen.",
            suggested_fix="Read the reasons: a stream error is the target's; a timeout on a quiet target means a "
                          "stream slower than the timeout (raise it with the machine's speed in mind).",
            location=Location(scenario=scenario, stream="truth-check"),
            evidence=reasons[:12],
            figures={"streams": float(len(mine)), "skipped": float(len(skip))},
            key=f"truth-uncovered-{path}",
        ))
    return findings, metrics
