"""Findings from the post-load checks recorded in run.json["checks"]."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .dynamic import backpressure, bad_files, isolation, openapi, origins, socket_input, truth, ws_contract
from .dynamic import concurrent_writes, crash_restart, path_traversal, shutdown, stream_slots
from .grouping import error_text
from .model import Finding, Location
from .rundir import read_json


def analyse_checks(run_dir: Path) -> tuple[list[Finding], dict[str, Any]]:
    run = read_json(Path(run_dir) / "run.json", {}) or {}
    checks = run.get("checks") or {}
    findings: list[Finding] = []
    metrics: dict[str, Any] = {}
    rec = checks.get("recovery")
    if rec and "skipped" not in rec:
        ok = rec.get("outcome") == "done" and rec.get("delivered_s", 0) >= 0.99 * (rec.get("expected_s") or 0)
        metrics["recovery_ok"] = int(ok)
        if not ok:
            findings.append(Finding(
                kind="no_recovery_after_storm", title="Backend does not serve a fresh stream after the load",
                severity="HIGH", dimension="Error Handling",
                description="After the scenario's load ended, a new client could not stream a whole track.",
                impact="One bad burst of clients leaves the server unusable until restarted.",
                suggested_fix="Release per-connection state and tasks on disconnect; cap work per connection.",
                location=Location(scenario=run.get("scenario"), stream="recovery"),
                evidence=[f"outcome {rec.get('outcome')}, delivered {rec.get('delivered_s', 0):.1f} s of "
                          f"{rec.get('expected_s') or 0:.1f} s, error {rec.get('error')}"],
                figures={"delivered_s": rec.get("delivered_s", 0.0)}, key="recovery",
                # the refusal's text: the grouping stage folds this into its cause (leaked stream slots)
                sites=[{"error": t} for t in [error_text(rec.get("error"))] if t],
            ))
    findings += ws_contract.analyse(checks.get("ws_contract") or {}, run.get("scenario"))
    findings += isolation.analyse(checks.get("isolation") or {}, run.get("scenario"))
    findings += socket_input.analyse(checks.get("socket_input") or {}, run.get("scenario"))
    findings += openapi.analyse(checks.get("openapi") or {}, run.get("scenario"))
    findings += origins.analyse(checks.get("origins") or {}, run.get("scenario"))
    findings += bad_files.analyse(checks.get("bad_files") or {}, run.get("scenario"))
    bp_findings, bp_metrics = backpressure.analyse(checks.get("backpressure") or {}, run.get("scenario"))
    findings += bp_findings
    metrics.update(bp_metrics)
    truth_findings, truth_metrics = truth.analyse(checks.get("truth") or {}, run.get("scenario"))
    findings += truth_findings
    metrics.update(truth_metrics)
    for name, judge in (("path_traversal", path_traversal), ("concurrent_writes", concurrent_writes),
                        ("crash_restart", crash_restart), ("shutdown", shutdown), ("stream_slots", stream_slots)):
        more, figures = judge.analyse(checks.get(name) or {}, run.get("scenario"))
        findings += more
        metrics.update(figures)
    return findings, metrics
