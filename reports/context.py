"""Everything a renderer needs from one run directory, read once.

Renderers only render: they take a `RunContext` and write a file. Missing
files are normal (a run that died early still gets a report), so every field
has an empty default and `problems` lists what could not be read.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis.model import SEVERITIES, Finding, assign_ids, count_by_severity, load_findings
from analysis.rundir import FINDINGS, METRICS, RUN_JSON, read_json

GATE_JSON = "gate.json"
PUBLISHED_JSON = "issues/published.json"

VERDICTS = ("PASS", "FAIL", "INVALID")


@dataclass
class Verdict:
    verdict: str  # PASS | FAIL | INVALID
    reason: str
    source: str  # "gate" | "findings" | "run"
    exit_code: int


@dataclass
class RunContext:
    run_dir: Path
    findings: list[Finding] = field(default_factory=list)
    findings_meta: dict[str, Any] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    gate: dict[str, Any] | None = None
    published: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """Counts of the target's findings (the environment's are apart)."""
        return count_by_severity(f for f in self.findings if f.counts_against_gate)

    @property
    def environment(self) -> list[Finding]:
        """Findings the environment caused (DSP absent or a stand-in, a
        saturated load generator, a starved host): shown apart, not gated."""
        return [f for f in self.findings if not f.counts_against_gate]

    @property
    def date(self) -> str:
        """The run's date (YYYY-MM-DD): the audit's file name and issue titles use it."""
        return run_date(self.run, self.run_dir)

    @property
    def name(self) -> str:
        return str(self.run.get("name") or self.run.get("id") or self.run_dir.name)

    @property
    def target(self) -> str:
        t = self.run.get("target")
        if isinstance(t, dict):
            return str(t.get("name") or t.get("kind") or "target")
        return str(t or "target")

    @property
    def injections(self) -> list[str]:
        inj = (self.run.get("options") or {}).get("inject") or self.run.get("inject") or []
        return [str(i) for i in inj] if isinstance(inj, (list, tuple)) else [str(inj)]

    @property
    def started_unix(self) -> float | None:
        return run_start_unix(self.run)

    @property
    def scenario(self) -> str:
        s = self.run.get("scenario")
        if isinstance(s, dict):
            return str(s.get("name") or "scenario")
        return str(s or "")

    def by_severity(self) -> dict[str, list[Finding]]:
        return {s: [f for f in self.findings if f.severity == s and f.counts_against_gate] for s in SEVERITIES}

    def publication(self, f: Finding) -> dict[str, Any]:
        """What publishing recorded for this finding (empty if never published)."""
        return (self.published.get("entries") or {}).get(f.fingerprint, {})

    def status_of(self, f: Finding) -> str:
        """NEW / Existing: #N / Regression of #N, preferring what publishing found."""
        entry = self.publication(f)
        return entry.get("status") or f.status or "NEW"

    def verdict(self) -> Verdict:
        return decide_verdict(self)


def rule_outcome(rule: dict[str, Any]) -> str:
    """pass | fail | warn | not measured | not judged, from a gate.json rule. A
    required rule that could not be measured or judged fails: nothing was shown
    to be fine."""
    status = str(rule.get("status") or ("passed" if rule.get("passed") else "failed"))
    if status in ("not measured", "not judged"):
        return "fail" if rule.get("required") else status
    if status == "passed" or rule.get("passed"):
        return "pass"
    return "fail" if rule.get("severity", "error") == "error" else "warn"


def regression_text(r: Any) -> str:
    if not isinstance(r, dict):
        return str(r)
    if r.get("message"):
        return str(r["message"])
    fig = r.get("figure", "?")
    parts = [f"{fig}: {r.get('median_a')} → {r.get('median_b')}"]
    if r.get("ratio") is not None:
        parts.append(f"×{float(r['ratio']):.2f}")
    if r.get("p_value") is not None:
        parts.append(f"p={float(r['p_value']):.3g}")
    if r.get("note"):
        parts.append(str(r["note"]))
    return " ".join(parts[:1]) + (f" ({', '.join(parts[1:])})" if parts[1:] else "")


def run_start_unix(run: dict[str, Any]) -> float | None:
    for key in ("started", "started_at", "start_time", "t0"):
        v = run.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
        if isinstance(v, str):
            try:
                d = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
            except ValueError:
                continue
            return (d if d.tzinfo else d.replace(tzinfo=dt.timezone.utc)).timestamp()
    return None


def run_date(run: dict[str, Any], run_dir: Path) -> str:
    for key in ("started", "started_at", "start_time", "date", "t0"):
        v = run.get(key)
        if v is None:
            continue
        if isinstance(v, (int, float)):
            return dt.datetime.fromtimestamp(float(v), tz=dt.timezone.utc).strftime("%Y-%m-%d")
        s = str(v)
        if len(s) >= 10 and s[4] == "-" and s[7] == "-":
            return s[:10]
    # run directories are named <ISO date>T<time>_<scenario>
    name = run_dir.name
    if len(name) >= 10 and name[4] == "-" and name[7] == "-" and name[:4].isdigit():
        return name[:10]
    return dt.date.today().isoformat()


def decide_verdict(ctx: RunContext) -> Verdict:
    invalid = str(ctx.run.get("status", "")).lower() == "invalid"
    if ctx.gate and str(ctx.gate.get("verdict", "")).upper() in VERDICTS:
        v = str(ctx.gate["verdict"]).upper()
        code = int(ctx.gate.get("exit_code", {"PASS": 0, "FAIL": 1, "INVALID": 2}[v]))
        # an invalid run never passes, whatever a stale gate.json says
        if invalid and v != "INVALID":
            return Verdict("INVALID", str(ctx.run.get("invalid_reason") or "run marked invalid"), "run", 2)
        return Verdict(v, str(ctx.gate.get("reason", "")), "gate", code)
    if invalid:
        return Verdict("INVALID", str(ctx.run.get("invalid_reason") or "run marked invalid"), "run", 2)
    # no gate.json, but the run already printed a verdict and exited with it: agree with it
    if str(ctx.run.get("verdict", "")).upper() in VERDICTS and "exit_code" in ctx.run:
        v = str(ctx.run["verdict"]).upper()
        return Verdict(v, str(ctx.run.get("verdict_reason", "")), "run", int(ctx.run["exit_code"]))
    c = ctx.counts
    if c["CRITICAL"] or c["HIGH"]:
        return Verdict("FAIL", f"{c['CRITICAL']} CRITICAL and {c['HIGH']} HIGH findings", "findings", 1)
    return Verdict("PASS", "no CRITICAL or HIGH findings", "findings", 0)


def load_context(run_dir: Path) -> RunContext:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory not found: {run_dir}")
    ctx = RunContext(run_dir=run_dir)
    ctx.run = _read_dict(run_dir / RUN_JSON, ctx)
    ctx.metrics = _read_dict(run_dir / METRICS, ctx)
    gate = _read_dict(run_dir / GATE_JSON, ctx, missing_ok=True)
    ctx.gate = gate or None
    ctx.published = _read_dict(run_dir / PUBLISHED_JSON, ctx, missing_ok=True)
    path = run_dir / FINDINGS
    if path.exists():
        try:
            findings, meta = load_findings(path.read_text())
            # ids are normally assigned by analysis; number any that are missing
            if any(not f.id for f in findings):
                findings = assign_ids(findings)
            ctx.findings, ctx.findings_meta = findings, meta
        except (ValueError, KeyError, TypeError) as e:
            ctx.problems.append(f"findings.json unreadable: {e}")
    else:
        ctx.problems.append("findings.json missing: the run produced no analysis")
    return ctx


def _read_dict(path: Path, ctx: RunContext, missing_ok: bool = False) -> dict[str, Any]:
    try:
        v = read_json(path, None)
    except ValueError as e:
        ctx.problems.append(f"{path.name} unreadable: {e}")
        return {}
    if v is None:
        if not missing_ok:
            ctx.problems.append(f"{path.name} missing")
        return {}
    if not isinstance(v, dict):
        ctx.problems.append(f"{path.name} is not a JSON object")
        return {}
    return v
