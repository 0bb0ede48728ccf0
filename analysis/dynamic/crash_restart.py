"""Judge run.json["checks"]["crash_restart"]: after kill -9 and a restart on
the same HOME, the target must come back healthy, with the same tracks,
settings and presets, an intact database, and a stream that plays to its
end. Pure."""
from __future__ import annotations

import json
from typing import Any

from ..model import Finding, Location
from .concurrent_writes import broken_streams, integrity_findings

FINDING_ROUTE = "/api/health"


def _tracks(body: Any) -> dict[Any, str] | None:
    items = body.get("tracks") if isinstance(body, dict) else body if isinstance(body, list) else None
    if not isinstance(items, list):
        return None
    return {t.get("id"): str(t.get("title")) for t in items if isinstance(t, dict)}


def _flat(x: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(x, dict):
        out: dict[str, Any] = {}
        for k, v in x.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(x, list):
        return {prefix or ".": json.dumps(x, sort_keys=True, default=str)}
    return {prefix or ".": x}


def differences(path: str, before: dict[str, Any], after: dict[str, Any], markers: list[str]) -> list[str]:
    """Every difference between the two answers of one route."""
    if before.get("status") != after.get("status"):
        return [f"GET {path}: HTTP {before.get('status')} before, {after.get('status')} after the restart"]
    b, a = before.get("body"), after.get("body")
    out: list[str] = []
    tb, ta = _tracks(b), _tracks(a)
    if path.endswith("/tracks") and tb is not None and ta is not None:
        for tid in sorted(set(tb) - set(ta), key=str):
            out.append(f"GET {path}: track {tid} '{tb[tid]}' gone after the restart")
        for tid in sorted(set(ta) - set(tb), key=str):
            out.append(f"GET {path}: track {tid} '{ta[tid]}' new after the restart")
        for tid in sorted(set(ta) & set(tb), key=str):
            if ta[tid] != tb[tid]:
                out.append(f"GET {path}: track {tid} was '{tb[tid]}', now '{ta[tid]}'")
        return out
    fb, fa = _flat(b), _flat(a)
    for k in sorted(set(fb) | set(fa)):
        if fb.get(k) != fa.get(k):
            out.append(f"GET {path}: {k} was {json.dumps(fb.get(k), default=str)[:80]}, "
                       f"now {json.dumps(fa.get(k), default=str)[:80]}")
    text_b, text_a = json.dumps(b, default=str), json.dumps(a, default=str)
    lost = [m for m in markers if m in text_b and m not in text_a]
    if lost and not out:
        out.append(f"GET {path}: written value(s) {', '.join(lost)} gone after the restart")
    return out


def analyse(result: dict[str, Any], scenario: str | None) -> tuple[list[Finding], dict[str, float]]:
    if not result or result.get("outcome") not in ("done", "restart_failed"):
        return [], {}
    findings: list[Finding] = []
    metrics: dict[str, float] = {}
    locks = result.get("locks_after_kill") or []
    if result["outcome"] == "restart_failed":
        stale = [x for x in locks if x not in (result.get("locks_before") or [])] or locks
        findings.append(Finding(
            kind="stale_lock_blocks_start" if stale else "no_restart_after_crash",
            title="The backend does not start again after a crash"
                  + (" (a lock file from the killed process)" if stale else ""),
            severity="HIGH", dimension="Error Handling",
            description="After kill -9 (a stream playing, a scan requested), the same command on the same HOME did "
                        f"not become healthy: {result.get('error', '')[:300]}",
            impact="One crash (an OOM kill, a power loss) leaves the app unable to start until the user finds and "
                   "deletes state by hand.",
            suggested_fix="Make start-up tolerate the state a crash leaves: check that a lock's owner is alive "
                          "before honouring it; recover the database with SQLite itself.",
            location=Location(scenario=scenario, route=FINDING_ROUTE, function="startup"),
            evidence=[f"files like locks left in HOME: {', '.join(locks) or 'none'}",
                      f"kill -9 of pid {result.get('killed_pid')}"],
            key="crash_restart:no_restart"))
        return findings, metrics
    metrics["crash_restart_healthy_s"] = float(result.get("restart_healthy_s") or 0.0)
    markers = [w["marker"] for w in result.get("writes") or [] if w.get("acked")]
    for path, before in sorted((result.get("before") or {}).items()):
        after = (result.get("after") or {}).get(path) or {}
        diffs = differences(path, before, after, markers)
        if not diffs:
            continue
        route = f"GET {path}"
        findings.append(Finding(
            kind="restart_lost_state", title=f"{route} answers differently after a crash and restart",
            severity="HIGH", dimension="Error Handling",
            description=(f"What {route} answered before kill -9 differs from what it answers once the backend is "
                         f"restarted on the same HOME ({len(diffs)} difference(s)); writes to it had been "
                         "acknowledged before the crash."),
            impact="A crash loses the user's state (settings, presets or library entries) that the API had "
                   "already confirmed as saved.",
            suggested_fix="Commit state to the database before acknowledging the request; do not keep "
                          "acknowledged state only in memory until a clean shutdown.",
            location=Location(scenario=scenario, route=route),
            evidence=diffs[:8] + [f"acknowledged writes before the crash: "
                                  + ", ".join(f"{w['route']} ({w['marker']})" for w in result.get("writes") or []
                                              if w.get("acked"))[:300]],
            figures={"differences": float(len(diffs))}, key=f"restart_lost_state:{path}"))
    findings += integrity_findings("crash_restart", result, scenario, "after kill -9 and restart")
    stream = result.get("stream_after") or {}
    if stream and broken_streams([stream]):
        findings.append(Finding(
            kind="no_stream_after_restart", title="A stream does not play to its end after a crash and restart",
            severity="HIGH", dimension="Error Handling",
            description=f"After the restart, '{stream.get('track')}' played {stream.get('delivered_s')} s of "
                        f"{stream.get('expected_s')} s and ended '{stream.get('outcome')}'.",
            impact="The app comes back but cannot play.",
            suggested_fix="Rebuild or discard caches and stream state a crash may leave half-written at start-up.",
            location=Location(scenario=scenario, route="/ws play_normal"),
            evidence=[f"{stream.get('outcome')}: {stream.get('error') or ''}"],
            key="crash_restart:stream"))
    return findings, metrics
