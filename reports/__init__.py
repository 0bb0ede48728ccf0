"""Findings out to people and machines: report.md, report.html, the audit
Markdown, SARIF, JUnit, and GitHub issues (`reports.publish`).

Renderers only render: everything they show was measured and recorded in the
run directory by earlier stages. `render_all` is the one entry point.
"""
from __future__ import annotations

from pathlib import Path

from .audit import write_audit
from .context import RunContext, load_context
from .html import render_html
from .junit import render_junit
from .markdown import render_report_md
from .sarif import render_sarif

__all__ = ["render_all", "load_context", "RunContext"]


def _write(path: Path, text: str) -> Path:
    # write-then-rename: a reader (CI upload, a browser) never sees half a report
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def render_all(run_dir: Path, *, audit_dir: Path | None = None, plots: bool = True) -> list[Path]:
    """Render every format for one run directory and return the paths written.

    report.md, report.html, audit/AUDIT_BACKEND_<date>.md (and a copy in
    `audit_dir`, e.g. a target checkout's docs/audits/), results.sarif, and
    junit.xml when the gate has judged the run (gate.json present).
    """
    ctx = load_context(Path(run_dir))
    rd = ctx.run_dir
    paths = [
        _write(rd / "report.md", render_report_md(ctx)),
        _write(rd / "report.html", render_html(ctx, plots=plots)),
    ]
    paths.extend(write_audit(ctx, audit_dir))
    paths.append(_write(rd / "results.sarif", render_sarif(ctx)))
    if (rd / "agent" / "coverage.json").is_file():  # --coverage: the per-package, per-route tables
        from .coverage import coverage_md

        paths.append(_write(rd / "coverage.md", coverage_md(rd)))
    junit = render_junit(ctx)
    if junit is not None:
        paths.append(_write(rd / "junit.xml", junit))
    return paths
