"""report.md: the run at a glance for a terminal or a PR comment — the
verdict first, then findings by severity, then the summary table."""
from __future__ import annotations

from analysis.model import SEVERITIES

from .context import RunContext, regression_text, rule_outcome
from .instrumentation import coverage_line, instrumentation_line
from .redact import redact
from .text import evidence_md, fmt_number, location_md, md_cell

_ICON = {"PASS": "✅", "FAIL": "❌", "INVALID": "⚠️"}


def render_report_md(ctx: RunContext) -> str:
    v = ctx.verdict()
    out = [f"# earshot report — {ctx.name}", ""]
    out.append(f"## Verdict: {_ICON.get(v.verdict, '')} {v.verdict}".replace("  ", " "))
    out.append("")
    out.append(f"{v.reason} (from {v.source}; exit code {v.exit_code}).")
    out.append("")
    if ctx.gate and ctx.gate.get("rules"):
        out.append("| Rule | Severity | Value | Result | Message |")
        out.append("|------|----------|-------|--------|---------|")
        for r in ctx.gate["rules"]:
            res = rule_outcome(r)
            res = "**FAIL**" if res == "fail" else res
            out.append(
                f"| `{md_cell(r.get('name', ''))}` | {r.get('severity', '')} | {fmt_number(r.get('value'))} "
                f"| {res} | {md_cell(r.get('message', ''))} |"
            )
        out.append("")
    if ctx.gate and ctx.gate.get("regressions"):
        out.append("Regressions against the baseline:")
        out.extend(f"- {md_cell(regression_text(r))}" for r in ctx.gate["regressions"])
        out.append("")
    inj = f", injected defects `{', '.join(ctx.injections)}`" if ctx.injections else ""
    out.append(f"Target `{ctx.target}`" + (f", scenario `{ctx.scenario}`" if ctx.scenario else "") + inj + f", run date {ctx.date}.")
    out.append("")
    for line in (instrumentation_line(ctx.metrics or {}), coverage_line(ctx.metrics or {})):
        if line:
            out.append(line)
            out.append("")
    if ctx.problems:
        out.append("**Run problems**: " + "; ".join(ctx.problems))
        out.append("")
    out.append("## Findings")
    out.append("")
    if not ctx.findings:
        out.append("None.")
        out.append("")
    for sev, group in ctx.by_severity().items():
        if not group:
            continue
        out.append(f"### {sev} ({len(group)})")
        out.append("")
        for f in group:
            out.append(f"#### {f.id}: {f.title}")
            out.append("")
            out.append(f"- **Dimension**: {f.dimension}")
            out.append(f"- **Location**: {location_md(f.location)}")
            out.append(f"- **Status**: {ctx.status_of(f)}")
            out.append(f"- **Description**: {f.description}")
            out.append("- **Evidence**:")
            out.extend(evidence_md(f))
            out.append(f"- **Impact**: {f.impact}")
            out.append(f"- **Suggested fix**: {f.suggested_fix}")
            out.append("")
    if ctx.environment:
        out.append("## Environment")
        out.append("")
        out.append("Caused by where the target ran, not by the target; not counted by the gate.")
        out.append("")
        for f in ctx.environment:
            out.append(f"#### {f.id}: {f.title} ({f.severity})")
            out.append("")
            out.append(f"- **Location**: {location_md(f.location)}")
            out.append(f"- **Description**: {f.description}")
            out.append("- **Evidence**:")
            out.extend(evidence_md(f))
            out.append("")
    out.append("## Summary")
    out.append("")
    c = ctx.counts
    out.append("| " + " | ".join(SEVERITIES) + " | Total |")
    out.append("|" + "---|" * (len(SEVERITIES) + 1))
    out.append("| " + " | ".join(str(c[s]) for s in SEVERITIES) + f" | {sum(c.values())} |")
    out.append("")
    out.append("| ID | Title | Severity | Dimension | Location | Status |")
    out.append("|----|-------|----------|-----------|----------|--------|")
    for f in ctx.findings:
        out.append(
            f"| {f.id} | {md_cell(f.title)} | {f.severity} | {f.dimension} "
            f"| {md_cell(location_md(f.location))} | {md_cell(ctx.status_of(f))} |"
        )
    if ctx.metrics:
        out.append("")
        out.append("<details><summary>Metrics</summary>")
        out.append("")
        out.append("| Metric | Value |")
        out.append("|--------|-------|")
        for k, val in sorted(ctx.metrics.items()):
            out.append(f"| `{md_cell(k)}` | {fmt_number(val)} |")
        out.append("")
        out.append("</details>")
    out.append("")
    return redact("\n".join(out))
