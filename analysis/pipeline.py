"""Runs every analysis family over a run directory and writes findings.json
and metrics.json. A family that fails is recorded, never fatal: the others'
findings are still written."""
from __future__ import annotations

import importlib
import json
import traceback
from pathlib import Path
from typing import Any, Callable

from .grouping import group_findings
from .locate import locate_findings
from .model import Finding, assign_ids, count_by_severity, dump_findings
from .severity import apply_severity_rules
from .rundir import FINDINGS, METRICS, read_json

# (module, function): each returns (findings, metrics)
FAMILIES: list[tuple[str, str]] = [
    ("analysis.client", "analyse_client"),
    ("analysis.continuity", "analyse_continuity"),
    ("analysis.audio.run", "analyse_run"),
    ("analysis.loop", "analyse_loop"),
    ("analysis.memory", "analyse_memory"),
    ("analysis.checks", "analyse_checks"),
    ("analysis.coverage", "analyse_coverage"),
]


def _load(module: str, func: str) -> Callable[[Path], tuple[list[Finding], dict[str, Any]]] | None:
    try:
        return getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError):
        return None


def analyse_run(run_dir: Path) -> tuple[list[Finding], dict[str, Any]]:
    run_dir = Path(run_dir)
    findings: list[Finding] = []
    metrics: dict[str, Any] = {}
    samples: dict[str, list[float]] = {}
    errors: list[str] = []
    for module, func in FAMILIES:
        fn = _load(module, func)
        if fn is None:
            continue
        try:
            f, m = fn(run_dir)
        except Exception as e:  # one broken family must not hide the others
            errors.append(f"{module}.{func}: {type(e).__name__}: {e}")
            (run_dir / "analysis-errors.txt").open("a").write(traceback.format_exc() + "\n")
            continue
        findings += f
        m = dict(m)
        samples.update(m.pop("samples", {}) or {})
        metrics.update(m)
    # one defect, one finding: symptoms that share a cause are folded, then
    # severity and section (target or environment) follow the audit's table
    findings = apply_severity_rules(locate_findings(group_findings(findings), run_dir), run_dir, metrics)
    findings = assign_ids(findings)
    counts = count_by_severity(f for f in findings if f.counts_against_gate)
    metrics["findings.environment"] = sum(1 for f in findings if not f.counts_against_gate)
    for sev, n in counts.items():
        metrics[f"findings.{sev}"] = n
    metrics["findings.total"] = len(findings)
    run = read_json(run_dir / "run.json", {}) or {}
    meta = {"scenario": run.get("scenario"), "target": (run.get("target") or {}).get("kind"),
            "analysis_errors": errors}
    (run_dir / FINDINGS).write_text(dump_findings(findings, meta))
    doc = {k: v for k, v in metrics.items() if v is not None}
    doc["samples"] = samples
    if errors:
        doc["analysis_errors"] = len(errors)
    (run_dir / METRICS).write_text(json.dumps(doc, indent=1, default=_plain))
    return findings, metrics


def _plain(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(type(o).__name__)
