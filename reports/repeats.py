"""The report at the top of a repeat directory (`instrument.run --repeat N`):
the verdict over all repeats first, the gate's lines, each repeat's verdict
and headline figures, the findings seen (in how many repeats), and each
figure's spread across the repeats. Renders only; reads what the runs wrote."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from reports.gate.measurements import MeasurementError, load_runset

HEADLINE = [
    ("streams_total", "streams"), ("ttfa_p95_ms", "TTFA p95 ms"), ("underruns", "underruns"),
    ("loop_stall_max_ms", "max stall ms"), ("rss_peak_mb", "RSS peak MB"), ("findings.total", "findings"),
]


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def render_repeats_md(top: Path, doc: dict[str, Any], gate_lines: list[str]) -> str:
    n_ran = len(doc.get("runs", []))
    out = [
        f"# {doc.get('scenario')}: {n_ran} repeat(s)",
        "",
        f"**VERDICT: {doc.get('verdict')}** (exit {doc.get('exit_code')}): {doc.get('verdict_reason', '')}",
        "",
        f"- asked for {doc.get('repeat')} repeat(s), {n_ran} ran; started {doc.get('started_at')}, "
        f"ended {doc.get('ended_at')} ({doc.get('run_s', 0):.0f} s)",
        "- each figure is gated on its median over the repeats; findings on their union "
        "(a defect seen in one repeat is a defect)",
        "",
    ]
    if gate_lines:
        out += ["## Gate (all repeats)", "", "```", *gate_lines, "```", ""]
    try:
        rs = load_runset(top)
    except MeasurementError as e:
        return "\n".join(out + [f"No measurements to show: {e}", ""])
    by_label = {m.label: m for m in rs.runs}
    out += ["## Repeats", "", "| repeat | status | verdict | " + " | ".join(h for _, h in HEADLINE) + " | report |",
            "|---" * (len(HEADLINE) + 4) + "|"]
    for r in doc.get("runs", []):
        m = by_label.get(r["dir"])
        figs = m.figures if m else {}
        cells = [_fmt(figs.get(k)) for k, _ in HEADLINE]
        out.append(f"| {r['dir']} | {r.get('status')} | {r.get('verdict', '')} | " + " | ".join(cells)
                   + f" | [{r['dir']}/report.md]({r['dir']}/report.md) |")
    out.append("")
    seen = rs.findings_seen()
    if seen:
        out += ["## Findings (seen in how many repeats)", ""]
        order = ("CRITICAL", "HIGH", "MEDIUM", "LOW")
        for f in sorted(seen.values(), key=lambda f: (order.index(f["severity"]), f["title"])):
            out.append(f"- [{f['severity']}] {f['title']} ({f['location']}): {f['seen']}/{len(rs.runs)} "
                       f"(fingerprint `{f['fingerprint']}`)")
        out.append("")
    names = sorted(n for n in rs.figure_names() if not n.startswith("findings."))
    if names:
        out += ["## Figures across repeats", "", "| figure | median | min | max | per repeat |", "|---|---|---|---|---|"]
        for name in names:
            vals = rs.figure_values(name)
            srt = sorted(vals)
            med = srt[len(srt) // 2] if len(srt) % 2 else (srt[len(srt) // 2 - 1] + srt[len(srt) // 2]) / 2
            out.append(f"| {name} | {_fmt(med)} | {_fmt(srt[0])} | {_fmt(srt[-1])} | "
                       + ", ".join(_fmt(v) for v in vals) + " |")
        out.append("")
    return "\n".join(out)
