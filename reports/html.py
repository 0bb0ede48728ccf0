"""report.html: one self-contained file (inline CSS, plots as base64 PNG, no
script, no external fetch) with the verdict first, findings by severity, then
the plots people would rather look at than read."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from analysis.model import Finding

from .context import RunContext, regression_text, rule_outcome
from .instrumentation import instrumentation_line
from .plots import Plot, artifact_image, run_plots
from .redact import redact
from .text import fmt_number

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
    autoescape=jinja2.select_autoescape(["html", "j2"]),
    undefined=jinja2.StrictUndefined,
)


def _finding_view(ctx: RunContext, f: Finding) -> dict[str, Any]:
    # redact each text field before templating: redacting the rendered page
    # would also rewrite base64 image data that happens to contain a name
    r = redact
    images, others = [], []
    for a in f.artifacts:
        b64 = artifact_image(ctx, a)
        if b64:
            images.append({"name": r(a), "b64": b64})
        else:
            others.append(r(a))
    evidence = [r(str(e)) for e in f.evidence]
    evidence += [r(f"symptom of the same cause: {s.get('kind')} ({s.get('severity')}): {s.get('title')} "
                   f"[{s.get('location_text') or 'run-wide'}]") for s in f.symptoms]
    return {
        "id": f.id,
        "title": r(f.title),
        "severity": f.severity,
        "dimension": f.dimension,
        "location_text": r(f.location.render()),
        "status": r(ctx.status_of(f)),
        "description": r(f.description),
        "impact": r(f.impact),
        "suggested_fix": r(f.suggested_fix),
        "figures": [(r(k), fmt_number(v)) for k, v in f.figures.items()],
        "evidence_lines": [e for e in evidence if "\n" not in e],
        "evidence_blocks": [e for e in evidence if "\n" in e],
        "images": images,
        "other_artifacts": others,
    }


def render_html(ctx: RunContext, *, plots: bool = True) -> str:
    """`plots=False` leaves out the run plots (seconds of matplotlib): a run
    stopped by a signal must have its report out at once."""
    v = ctx.verdict()
    views = {f.fingerprint + f.id: _finding_view(ctx, f) for f in ctx.findings}
    groups = [(sev, [views[f.fingerprint + f.id] for f in fs]) for sev, fs in ctx.by_severity().items() if fs]
    if ctx.environment:  # shown apart: the environment's, not the target's
        groups.append(("ENVIRONMENT", [views[f.fingerprint + f.id] for f in ctx.environment]))
    rules = []
    for rule in (ctx.gate or {}).get("rules") or []:
        rules.append(
            {
                "name": redact(str(rule.get("name", ""))),
                "expr": redact(str(rule.get("expr", ""))),
                "severity": rule.get("severity", "error"),
                "value_text": fmt_number(rule.get("value")),
                "outcome": rule_outcome(rule),
                "message": redact(str(rule.get("message", ""))),
            }
        )
    regressions = [redact(regression_text(x)) for x in (ctx.gate or {}).get("regressions") or []]
    plots = run_plots(ctx) if plots else [
        Plot("plots left out", note="the run was stopped; `python -m instrument.run --finish RUN_DIR` draws them")]
    for p in plots:
        p.title, p.note, p.caption = redact(p.title), redact(p.note), redact(p.caption)
    return _env.get_template("report.html.j2").render(
        name=redact(ctx.name),
        target=redact(ctx.target),
        scenario=redact(ctx.scenario),
        injections=ctx.injections,
        date=ctx.date,
        verdict=type(v)(v.verdict, redact(v.reason), v.source, v.exit_code),
        problems=[redact(p) for p in ctx.problems],
        instrumentation=instrumentation_line(ctx.metrics or {}),
        counts=ctx.counts,
        total=len(ctx.findings),
        rules=rules,
        regressions=regressions,
        groups=groups,
        all=[views[f.fingerprint + f.id] for f in ctx.findings],
        plots=plots,
        metrics=[(redact(k), fmt_number(val)) for k, val in sorted(ctx.metrics.items())],
    )
