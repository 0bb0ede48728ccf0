"""Runs every analysis family over a run directory and writes findings.json
and metrics.json. A family that fails (to import, or to run) is recorded as
an analysis error, never fatal and never silent: the others' findings are
still written, and the run is INVALID (analysis.validity)."""
from __future__ import annotations

import importlib
import json
import traceback
from pathlib import Path
from typing import Any, Callable

from .grouping import group_findings
from .locate import locate_findings
from .model import Finding, assign_ids, count_by_severity, dump_findings
from .rundir import FINDINGS, METRICS, RunDirError, dumps, read_json, validate, write_json
from .severity import apply_severity_rules

# (module, function): each returns (findings, metrics)
FAMILIES: list[tuple[str, str]] = [
    ("analysis.client", "analyse_client"),
    ("analysis.continuity", "analyse_continuity"),
    ("analysis.audio.run", "analyse_run"),
    ("analysis.loop", "analyse_loop"),
    ("analysis.memory", "analyse_memory"),
    ("analysis.permits", "analyse_permits"),
    ("analysis.checks", "analyse_checks"),
    ("analysis.coverage", "analyse_coverage"),
]


def _load(module: str, func: str) -> Callable[[Path], tuple[list[Finding], dict[str, Any]]]:
    # no fallback: a family that cannot be imported would otherwise vanish
    # with its findings, and the run could pass
    return getattr(importlib.import_module(module), func)


def analyse_run(run_dir: Path) -> tuple[list[Finding], dict[str, Any]]:
    run_dir = Path(run_dir)
    findings: list[Finding] = []
    metrics: dict[str, Any] = {}
    samples: dict[str, list[float]] = {}
    errors: list[str] = []
    for module, func in FAMILIES:
        try:
            fn = _load(module, func)
            f, m = fn(run_dir)
        except Exception as e:  # one broken family must not hide the others
            errors.append(f"{module}.{func}: {type(e).__name__}: {e}")
            with (run_dir / "analysis-errors.txt").open("a") as fh:
                fh.write(traceback.format_exc() + "\n")
            continue
        findings += f
        m = dict(m)
        samples.update(m.pop("samples", {}) or {})
        metrics.update(m)
    run = read_json(run_dir / "run.json", {}) or {}
    from .validity import hang_finding, invalid_causes, validity_figures

    hang = hang_finding(run_dir, run)
    if hang is not None:
        findings.append(hang)
    # one defect, one finding: symptoms that share a cause are folded, then
    # severity and section (target or environment) follow the audit's table
    try:
        findings = apply_severity_rules(locate_findings(group_findings(findings), run_dir), run_dir, metrics)
    except Exception as e:  # a broken stage is an analysis error (INVALID), never lost findings
        errors.append(f"analysis.grouping: {type(e).__name__}: {e}")
        with (run_dir / "analysis-errors.txt").open("a") as fh:
            fh.write(traceback.format_exc() + "\n")
    findings = assign_ids(findings)
    counts = count_by_severity(f for f in findings if f.counts_against_gate)
    metrics["findings.environment"] = sum(1 for f in findings if not f.counts_against_gate)
    for sev, n in counts.items():
        metrics[f"findings.{sev}"] = n
    metrics["findings.total"] = len(findings)
    metrics.update(validity_figures(run, errors, run_dir))
    causes = invalid_causes(run, metrics, errors)
    meta = {"scenario": run.get("scenario"), "target": (run.get("target") or {}).get("kind"),
            "analysis_errors": errors, "invalid_causes": causes}
    (run_dir / FINDINGS).write_text(dump_findings(findings, meta))
    doc = {k: v for k, v in metrics.items() if v is not None}
    doc["samples"] = samples
    doc["invalid_causes"] = causes  # not a figure: the gate reads it as run validity
    try:  # a figure that is not a number is a bug of a family: the run cannot be judged on it
        validate(json.loads(dumps(doc)), "metrics", run_dir / METRICS)
    except RunDirError as e:
        doc["invalid_causes"] = [*causes, f"analysis wrote a malformed figure: {e}"]
    write_json(run_dir / METRICS, doc)
    return findings, metrics

