"""A plain report.md used only when the full renderers are unavailable or
failed, so a run always leaves a readable verdict behind."""
from __future__ import annotations

import json
from pathlib import Path

from analysis.model import load_findings


def write_minimal_report(run_dir: Path) -> Path:
    run = json.loads((run_dir / "run.json").read_text())
    try:
        findings, _ = load_findings((run_dir / "findings.json").read_text())
    except (OSError, ValueError):
        findings = []
    lines = [f"# Verdict: {run.get('verdict', '?')}", "", f"{run.get('verdict_reason', '')}", "",
             f"Scenario `{run.get('scenario')}` on `{run.get('target', {}).get('kind')}`", "", "## Findings", ""]
    for f in findings:
        lines += [f"### {f.id}: {f.title}", f"- **Severity**: {f.severity}", f"- **Dimension**: {f.dimension}",
                  f"- **Location**: `{f.location.render()}`", f"- **Description**: {f.description}", ""]
    path = run_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
