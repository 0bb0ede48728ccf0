"""python -m reports.publish RUN_DIR --repo OWNER/NAME [--dry-run] [--api-url URL]

Files one GitHub issue per finding that no issue tracks yet, as Auralis's
`/audit-publish` does: an open match (by fingerprint, else by title keywords)
is Existing: #N and skipped; a closed match is filed as Regression of #N and
the old issue gets a `Related:` comment. Progress is recorded in
RUN_DIR/issues/published.json after every issue, so a run cut short by a
network failure or a rate limit continues where it stopped when re-run.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import requests

from analysis.model import Finding

from .context import PUBLISHED_JSON, RunContext, load_context
from .github import DEFAULT_API_URL, GitHub, GitHubError, RateLimited, TokenMissing, ValidationFailed, find_token
from .issues import LABEL_COLORS, find_match, issue_body, issue_labels, issue_title, related_comment, related_issues
from .redact import redact
from .text import md_cell


@dataclass
class Outcome:
    finding: Finding
    dedup: str  # NEW | Existing: #N | Regression of #N | FAILED | PENDING
    issue: int | None = None
    note: str = ""


@dataclass
class PublishResult:
    outcomes: list[Outcome] = field(default_factory=list)
    aborted: str = ""

    @property
    def created(self) -> int:
        return sum(1 for o in self.outcomes if o.note == "created")

    @property
    def exit_code(self) -> int:
        return 1 if self.aborted or any(o.dedup in ("FAILED", "PENDING") for o in self.outcomes) else 0


class Ledger:
    """issues/published.json: what was filed for which fingerprint. Written
    after every change (write-then-rename) so a crash loses at most the one
    call in flight, and that one is found again by its fingerprint."""

    def __init__(self, run_dir: Path, repo: str):
        self.path = run_dir / PUBLISHED_JSON
        doc: dict[str, Any] = {}
        if self.path.exists():
            try:
                doc = json.loads(self.path.read_text())
            except ValueError:
                doc = {}
        if doc.get("repo") not in (None, repo):
            # published to another repository before: keep that record aside
            self.path.replace(self.path.with_name(f"published.{str(doc['repo']).replace('/', '_')}.json"))
            doc = {}
        self.doc = {"repo": repo, "entries": doc.get("entries", {})}

    def get(self, f: Finding) -> dict[str, Any]:
        return self.doc["entries"].get(f.fingerprint, {})

    def put(self, f: Finding, **entry: Any) -> None:
        cur = self.doc["entries"].setdefault(f.fingerprint, {})
        cur.update({"id": f.id, "title": redact(f.title), **entry})
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.doc, indent=2))
        tmp.replace(self.path)


def write_bodies(ctx: RunContext, bodies: dict[str, str]) -> None:
    d = ctx.run_dir / "issues"
    d.mkdir(parents=True, exist_ok=True)
    for fid, body in bodies.items():
        (d / f"{fid}.md").write_text(body, encoding="utf-8")


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def publish(ctx: RunContext, gh: GitHub, *, dry_run: bool = False, log: Callable[[str], None] = _stderr) -> PublishResult:
    result = PublishResult()
    ledger = None if dry_run else Ledger(ctx.run_dir, gh.repo)
    try:
        issues = gh.issues()
    except (GitHubError, requests.RequestException) as e:
        if not dry_run:
            result.aborted = f"could not list existing issues: {_why(e)}"
            result.outcomes = [Outcome(f, "PENDING") for f in ctx.findings]
            return result
        log(f"warning: could not list existing issues ({_why(e)}); dry run assumes none")
        issues = []
    by_number = {i["number"]: i for i in issues}
    bodies: dict[str, str] = {}
    labels_ready = dry_run
    # the environment's findings are not the target's defects: never filed against it
    pending = [f for f in ctx.findings if f.counts_against_gate]
    while pending:
        f = pending.pop(0)
        try:
            outcome = _publish_one(ctx, gh, f, issues, by_number, ledger, bodies, dry_run, labels_ready)
            labels_ready = labels_ready or outcome.note == "created"
        except ValidationFailed as e:
            outcome = Outcome(f, "FAILED", note=_why(e))
            if ledger:
                ledger.put(f, action="failed", status="NEW", error=_why(e))
        except (RateLimited, GitHubError, requests.RequestException) as e:
            # stop here: what is filed is in the ledger; a re-run continues
            result.aborted = f"{_why(e)}; {result.created} issue(s) filed before it, re-run to continue"
            result.outcomes.append(Outcome(f, "PENDING"))
            result.outcomes.extend(Outcome(p, "PENDING") for p in pending)
            break
        result.outcomes.append(outcome)
    write_bodies(ctx, bodies)
    return result


def _why(e: BaseException) -> str:
    if isinstance(e, requests.RequestException):
        return f"network failure ({type(e).__name__})"
    return redact(str(e))


def _ensure_labels(gh: GitHub, wanted: list[str], have: set[str]) -> None:
    for name in wanted:
        if name not in have:
            gh.create_label(name, LABEL_COLORS.get(name, "ededed"), "filed by earshot" if name not in ("bug",) else "")
            have.add(name)


def _publish_one(ctx, gh, f, issues, by_number, ledger, bodies, dry_run, labels_ready) -> Outcome:
    recorded = ledger.get(f) if ledger else {}
    match = find_match(f, issues)
    # the ledger says we filed it, and GitHub has not closed it since (or the
    # listing has not caught up): it is ours, filed once, never again
    if recorded.get("action") == "created" and recorded.get("issue"):
        mine = by_number.get(recorded["issue"])
        if mine is None or mine.get("state") == "open":
            bodies[f.id] = issue_body(ctx, f)
            return Outcome(f, recorded.get("status", "NEW"), recorded["issue"], "already filed")
    if match and match.open:
        bodies[f.id] = issue_body(ctx, f)
        status = f"Existing: #{match.number}"
        if ledger:
            ledger.put(f, action="existing", status=status, issue=match.number, matched_by=match.how)
        return Outcome(f, status, match.number, f"open, matched by {match.how}")
    regression_of = match.issue if match else None
    related = related_issues(f, issues, exclude={match.number} if match else set())
    body = issue_body(ctx, f, regression_of=regression_of, related=related)
    bodies[f.id] = body
    status = f"Regression of #{match.number}" if match else "NEW"
    if dry_run:
        return Outcome(f, status, None, "would file")
    if not labels_ready:
        _ensure_labels(gh, ["critical", "high", "medium", "low", "backend", "bug"], gh.labels())
    made = gh.create_issue(issue_title(ctx, f), body, issue_labels(f))
    number = int(made["number"])
    ledger.put(f, action="created", status=status, issue=number, url=made.get("html_url", ""), comments=[])
    new = {"number": number, "state": "open", "title": made.get("title", ""), "body": body}
    issues.append(new)
    by_number[number] = new
    targets = ([regression_of] if regression_of else []) + list(related)
    done = list(ledger.get(f).get("comments", []))
    for t in targets:
        if t["number"] in done:
            continue
        text = related_comment(number, f, regression=t is regression_of)
        # a comment posted just before a crash is found again, not repeated
        if not any((c.get("body") or "").startswith(f"Related: #{number} ") for c in gh.comments(t["number"])):
            gh.comment(t["number"], text)
        done.append(t["number"])
        ledger.put(f, comments=done)
    return Outcome(f, status, number, "created")


def summary_table(result: PublishResult, *, dry_run: bool) -> str:
    lines = ["## Publish Summary" + (" (dry run)" if dry_run else ""), ""]
    lines.append("| # | Finding | Severity | Dedup | Issue |")
    lines.append("|---|---------|----------|-------|-------|")
    for n, o in enumerate(result.outcomes, 1):
        issue = f"#{o.issue}" if o.issue else "—"
        dedup = o.dedup + (f" ({o.note})" if o.note and o.dedup in ("FAILED",) else "")
        lines.append(f"| {n} | {o.finding.id}: {md_cell(redact(o.finding.title))} | {o.finding.severity} | {md_cell(dedup)} | {issue} |")
    lines.append("")
    created = result.created
    existing = sum(1 for o in result.outcomes if o.dedup.startswith("Existing"))
    again = sum(1 for o in result.outcomes if o.note == "already filed")
    failed = sum(1 for o in result.outcomes if o.dedup == "FAILED")
    pending = sum(1 for o in result.outcomes if o.dedup == "PENDING")
    would = sum(1 for o in result.outcomes if o.note == "would file")
    if dry_run:
        lines.append(f"**Would create**: {would} new issues")
    else:
        lines.append(f"**Created**: {created} new issues")
    lines.append(f"**Skipped**: {existing} existing, {again} filed by an earlier run, {failed} refused, {pending} not reached")
    if result.aborted:
        lines.append(f"**Stopped**: {result.aborted}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reports.publish", description=__doc__.split("\n\n")[1])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--repo", required=True, help="OWNER/NAME")
    ap.add_argument("--dry-run", action="store_true", help="list and match, write issues/*.md, file nothing")
    ap.add_argument("--api-url", default=os.environ.get("GITHUB_API_URL", DEFAULT_API_URL))
    ap.add_argument("--audit-dir", type=Path, help="also refresh the audit here (a target checkout's docs/audits/)")
    ap.add_argument("--max-wait", type=float, default=60.0, help="longest single rate-limit wait to sit out, seconds")
    ap.add_argument("--max-total-wait", type=float, default=300.0, help="rate-limit waiting allowed in all, seconds")
    ap.add_argument("--pause", type=float, default=1.0, help="pause between issues and comments created, seconds")
    args = ap.parse_args(argv)
    try:
        ctx = load_context(args.run_dir)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not (ctx.run_dir / "findings.json").exists() or any("findings.json unreadable" in p for p in ctx.problems):
        print(f"error: no readable findings.json in {args.run_dir}", file=sys.stderr)
        return 2
    try:
        token = find_token()
    except TokenMissing as e:
        if not args.dry_run:
            print(f"error: {e}", file=sys.stderr)
            return 2
        token = None
    try:
        gh = GitHub(args.repo, token, api_url=args.api_url, max_wait_s=args.max_wait,
                    max_total_wait_s=args.max_total_wait, create_pause_s=max(0.0, args.pause))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    result = publish(ctx, gh, dry_run=args.dry_run)
    print(summary_table(result, dry_run=args.dry_run))
    if not args.dry_run:
        # the audit's Status and Issue columns now know the issue numbers
        from . import render_all

        render_all(ctx.run_dir, audit_dir=args.audit_dir)
    if result.aborted:
        print(f"error: {result.aborted}", file=sys.stderr)
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
