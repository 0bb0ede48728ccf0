"""GitHub issues for findings: the title and body in the format of Auralis's
`/audit-publish`, and the matching that keeps a re-run from filing twice.

Pure functions: no network. `reports.publish` does the talking.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from analysis.model import Finding

from .context import RunContext
from .redact import redact
from .text import evidence_md, fmt_number, location_md

FINGERPRINT_RE = re.compile(r"<!--\s*earshot-fingerprint:\s*([0-9a-f]{8,64})\s*-->")
_TITLE_PREFIX = re.compile(r"^\s*\[\d{4}-\d{2}-\d{2}\]\s*(?:CRITICAL|HIGH|MEDIUM|LOW)\s*[-—–:]\s*", re.I)
_STOPWORDS = set(
    "the and for with from that this into onto over under than then when where which while every each per "
    "not are was were has have had does did its it's after before during about across only also instead "
    "at in on of to by as is be or an a no".split()
)

# labels: severity (exactly one) + backend + bug, as /audit-publish applies them
LABEL_COLORS = {"critical": "b60205", "high": "d93f0b", "medium": "fbca04", "low": "0e8a16", "backend": "1d76db", "bug": "d73a4a"}
MIN_SHARED_KEYWORDS = 3
MIN_KEYWORD_OVERLAP = 0.7


def issue_title(ctx: RunContext, f: Finding) -> str:
    return redact(f"[{ctx.date}] {f.severity} - {f.title}")[:250]


def issue_labels(f: Finding) -> list[str]:
    return [f.severity.lower(), "backend", "bug"]


def keywords(title: str) -> set[str]:
    """The words of a title that identify a defect: no date/severity prefix,
    no stop words, and no numbers (a measured 480 ms is 510 ms next run)."""
    t = _TITLE_PREFIX.sub("", title or "").lower()
    words = re.findall(r"[a-z_][a-z0-9_]*", t)
    return {w for w in words if len(w) >= 3 and w not in _STOPWORDS}


def titles_match(a: str, b: str) -> bool:
    ka, kb = keywords(a), keywords(b)
    if not ka or not kb:
        return False
    shared = len(ka & kb)
    return shared >= min(MIN_SHARED_KEYWORDS, len(ka), len(kb)) and shared / min(len(ka), len(kb)) >= MIN_KEYWORD_OVERLAP


def fingerprint_of(issue: dict[str, Any]) -> str | None:
    m = FINGERPRINT_RE.search(issue.get("body") or "")
    return m.group(1) if m else None


@dataclass
class Match:
    issue: dict[str, Any]
    how: str  # "fingerprint" | "title"

    @property
    def number(self) -> int:
        return int(self.issue["number"])

    @property
    def open(self) -> bool:
        return self.issue.get("state") == "open"


def find_match(f: Finding, issues: list[dict[str, Any]]) -> Match | None:
    """The issue that already tracks this finding: a fingerprint match beats a
    title match, an open issue beats a closed one, the newest wins a tie."""
    by_fp = [i for i in issues if fingerprint_of(i) == f.fingerprint]
    # titles are matched only against issues people filed: an issue earshot filed
    # carries a fingerprint, and a different fingerprint is a different defect
    # (the normal-path and enhanced-path twins of one check share most words)
    by_title = [i for i in issues if fingerprint_of(i) is None and titles_match(f.title, i.get("title", ""))]
    for group, how in ((by_fp, "fingerprint"), (by_title, "title")):
        opened = [i for i in group if i.get("state") == "open"]
        if opened:
            return Match(max(opened, key=lambda i: i["number"]), how)
    for group, how in ((by_fp, "fingerprint"), (by_title, "title")):
        if group:
            return Match(max(group, key=lambda i: i["number"]), how)
    return None


def related_issues(f: Finding, issues: list[dict[str, Any]], exclude: set[int], limit: int = 3) -> list[dict[str, Any]]:
    """Other issues about the same code path: their body names this finding's
    file and function. Conservative on purpose: every one gets a comment."""
    loc = f.location
    if not (loc.file and loc.function):
        return []
    out = []
    for i in sorted(issues, key=lambda i: -i["number"]):
        body = i.get("body") or ""
        if i["number"] in exclude or loc.file not in body or not re.search(rf"\b{re.escape(loc.function)}\b", body):
            continue
        out.append(i)
        if len(out) >= limit:
            break
    return out


def issue_body(ctx: RunContext, f: Finding, *, regression_of: dict[str, Any] | None = None, related: list[dict[str, Any]] = ()) -> str:
    loc = f.location
    lines: list[str] = ["## Summary", f"{f.title}. {f.description}", ""]
    lines.append("## Evidence / Code Paths")
    if loc.has_code:
        lines.append(f"- **File**: {location_md(loc)}")
    else:
        lines.append(f"- **Where observed**: {loc.render()}")
    scenario = f", scenario `{ctx.scenario}`" if ctx.scenario else ""
    lines.append(f"- **Run**: earshot run `{ctx.name}` against `{ctx.target}`{scenario}, {ctx.date}")
    lines.append("- **Evidence**:")
    lines.extend(evidence_md(f, indent="  ", artifacts_note="in the earshot run directory"))
    lines.append("")
    lines.append("## Impact")
    lines.append(f"- **Severity**: {f.severity}")
    lines.append(f"- **Dimension**: {f.dimension}")
    lines.append(f"- **What breaks**: {f.impact}")
    lines.append(f"- **When**: {('scenario ' + ctx.scenario) if ctx.scenario else 'the run'}" + (f", {loc.render()}" if not loc.has_code else ""))
    lines.append("")
    lines.append("## Related Issues")
    rel_lines = []
    if regression_of:
        rel_lines.append(f"- #{regression_of['number']} — regression: closed, and this run measured the defect again")
    for i in related:
        rel_lines.append(f"- #{i['number']} — same code path (`{loc.file}`, `{loc.function}`)")
    lines.extend(rel_lines or ["- None found."])
    lines.append("")
    lines.append("## Proposed Fix")
    lines.append(f.suggested_fix)
    lines.append("")
    lines.append("## Completeness Checks")
    if regression_of:
        lines.append(f"- [ ] **REGRESSION**: find why the fix for #{regression_of['number']} stopped holding, and pin it with a test.")
    else:
        lines.append("No special completeness checks required for this fix.")
    lines.append("")
    lines.append("## Acceptance Criteria")
    for k, v in f.figures.items():
        lines.append(f"- [ ] `{k}` back within its release-gate threshold on a re-run (measured {fmt_number(v)})")
    lines.append(f"- [ ] A re-run of scenario `{ctx.scenario or 'the same scenario'}` reports no `{f.kind}` finding with fingerprint `{f.fingerprint}`")
    lines.append("- [ ] All Completeness Checks above pass")
    lines.append("")
    lines.append("## Test Plan")
    lines.append(f"1. **Unit test**: exercise the code path named above — assert the defect ({f.kind.replace('_', ' ')}) no longer occurs")
    lines.append(f"2. **Integration test**: re-run the earshot scenario `{ctx.scenario or 'of this run'}` against the fixed backend — assert the release gate passes and this finding is absent")
    lines.append("")
    lines.append(f"<!-- earshot-fingerprint: {f.fingerprint} -->")
    lines.append(f"<!-- earshot-finding: {f.id} {f.kind} -->")
    return redact("\n".join(lines))


def related_comment(new_number: int, f: Finding, *, regression: bool) -> str:
    why = "regression of this issue, measured again" if regression else "same code path"
    return redact(f"Related: #{new_number} - {why}: {f.severity} {f.title}")
