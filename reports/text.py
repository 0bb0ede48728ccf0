"""Small text helpers shared by the Markdown renderers (audit, report, issues)."""
from __future__ import annotations

import math
from typing import Any

from analysis.model import Finding, Location


def location_md(loc: Location) -> str:
    """`file:line-range` in backticks (the audit's form), plus the function;
    where no code location is known, where the defect was observed."""
    if loc.has_code:
        out = f"`{loc.code_span()}`"
        return f"{out} (`{loc.function}`)" if loc.function else out
    return loc.render()


def fmt_number(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}".replace(",", " ") if abs(v) >= 10000 else str(v)
    if math.isnan(v) or math.isinf(v):
        return str(v)
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}".replace(",", " ")
    if a >= 1:
        return f"{v:.3g}" if a < 100 else f"{v:.1f}"
    return f"{v:.3g}"


def figures_line(f: Finding) -> str:
    return ", ".join(f"`{k}` = {fmt_number(v)}" for k, v in f.figures.items())


def md_cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def evidence_md(f: Finding, *, indent: str = "  ", artifacts_note: str = "run directory") -> list[str]:
    """The Evidence bullet's body: measured figures, then each evidence item
    (multi-line items, i.e. stacks or signal excerpts, as fenced blocks), then
    the artifacts that back them."""
    lines: list[str] = []
    if f.figures:
        lines.append(f"{indent}Measured: {figures_line(f)}.")
    for item in f.evidence:
        item = str(item).rstrip()
        if "\n" in item:
            lines.append(f"{indent}```")
            lines.extend(f"{indent}{ln}" for ln in item.splitlines())
            lines.append(f"{indent}```")
        else:
            lines.append(f"{indent}- {item}")
    if f.symptoms:
        lines.append(f"{indent}Symptoms of this one cause ({len(f.symptoms)}, each measured by its own detector):")
        for s in f.symptoms:
            figs = ", ".join(f"`{k}` = {fmt_number(v)}" for k, v in (s.get("figures") or {}).items())
            lines.append(f"{indent}- {s.get('kind')} ({s.get('severity')}): {s.get('title')} "
                         f"[{s.get('location_text') or 'run-wide'}]" + (f"; {figs}" if figs else ""))
    if f.artifacts:
        lines.append(f"{indent}Artifacts ({artifacts_note}): " + ", ".join(f"`{a}`" for a in f.artifacts))
    return lines or [f"{indent}(no evidence recorded)"]
