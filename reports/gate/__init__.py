"""The release gate: rules over measured figures, an optional baseline, a verdict.

    result = evaluate(run_dir, gate_file=None, baseline=None, target_root=None)
    result.verdict    "PASS" | "FAIL" | "INVALID"
    result.exit_code  0 | 1 | 2
    result.lines()    human lines; the verdict is the last one

`evaluate` writes RUN_DIR/gate.json (verdict first). The rule format is
documented in default_gate.toml; the statistics in stats.py.

Precedence: a run that cannot be trusted is INVALID before it can FAIL
(run.json status, failed [[check]]s, required figures missing), then FAIL
(error rules, regressions against the baseline), else PASS.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis.metrics_catalogue import is_speed

from .comparison import ComparisonResult, compare_runsets
from .measurements import MeasurementError, RunSet, combined_figures, load_runset
from .rules import DEFAULT_GATE, GateConfig, GateFileError, NotMeasured, Rule, find_gate, load_gate_file

__all__ = [
    "evaluate",
    "GateResult",
    "GateFileError",
    "MeasurementError",
    "DEFAULT_GATE",
    "find_gate",
    "load_gate_file",
    "load_runset",
    "compare_runsets",
]

GATE_JSON = "gate.json"
EXIT = {"PASS": 0, "FAIL": 1, "INVALID": 2}


@dataclass
class GateResult:
    verdict: str
    reason: str
    rules: list[dict[str, Any]] = field(default_factory=list)
    regressions: list[dict[str, Any]] = field(default_factory=list)
    improvements: list[dict[str, Any]] = field(default_factory=list)
    new_findings: list[dict[str, Any]] = field(default_factory=list)
    gate_source: str = ""
    baseline_source: str | None = None
    figures: dict[str, float] = field(default_factory=dict)
    comparison: ComparisonResult | None = None

    @property
    def exit_code(self) -> int:
        return EXIT[self.verdict]

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "reason": self.reason,
            "rules": self.rules,
            "regressions": self.regressions,
            "improvements": self.improvements,
            "new_findings": self.new_findings,
            "gate_file": self.gate_source,
            "baseline": self.baseline_source,
            "figures": self.figures,
            "comparison": self.comparison.to_dict() if self.comparison else None,
        }

    def lines(self) -> list[str]:
        out = [f"gate: {self.gate_source}" + (f"; baseline: {self.baseline_source}" if self.baseline_source else "")]
        tag = {"passed": "ok  ", "failed": "FAIL", "not measured": "n/m ", "not judged": "n/j "}
        for r in self.rules:
            t = tag[r["status"]]
            if r["status"] == "failed" and r["severity"] == "warn":
                t = "warn"
            text = f"{t}  [{r['kind']}] {r['expr']}"
            detail = r["message"] if r["status"] != "passed" else _values_text(r)
            out.append(f"{text}: {detail}" if detail else text)
        for c in self.regressions:
            out.append(f"REGRESSION  {c['describe']}")
        for c in self.improvements:
            out.append(f"improved    {c['describe']}")
        if self.comparison is not None and self.comparison.not_compared:
            nc = self.comparison.not_compared
            out.append(f"not compared  {len(nc)} speed figure(s) vs baseline: {next(iter(nc.values()))}")
        for f in self.new_findings:
            out.append(f"new vs baseline  [{f['severity']}] {f['title']} ({f['location']})")
        out.append(f"VERDICT: {self.verdict} (exit {self.exit_code}): {self.reason}")
        return out


def _values_text(r: dict[str, Any]) -> str:
    vals = r.get("figure_values") or {}
    return ", ".join(f"{k} = {_fmt(v)}" for k, v in vals.items())


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _judge(rule: Rule, kind: str, figures: dict[str, float], slowed: list[str] | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": rule.name,
        "expr": rule.expr,
        "severity": "error" if kind == "check" else rule.severity,
        "kind": kind,
        "required": rule.required,
        "line": rule.line,
        "figure_values": {f: figures[f] for f in rule.figures if f in figures},
    }
    speeds = [f for f in rule.figures if is_speed(f)]
    if slowed and speeds:
        # the tool's own cost is in these figures: judged, they would fail a clean
        # target (or pass a slow one against a threshold meant for bare runs)
        entry.update(
            status="not judged", passed=False, value=None, declared_severity=entry["severity"], severity="warn",
            message=(f"{', '.join(speeds)} measured under {'; '.join(slowed)}: the figure is slowed by the tool, "
                     "not the target; judge speed in a run without it"),
        )
        return entry
    try:
        passed, value = rule.evaluate(figures)
    except NotMeasured as e:
        # Reported, never silently passed; the caller decides whether a
        # missing required figure makes the run INVALID.
        entry.update(
            status="not measured", passed=False, value=None, declared_severity=entry["severity"], severity="warn",
            message=f"{', '.join(e.figures)} {e.why}",
        )
        return entry
    entry.update(status="passed" if passed else "failed", passed=passed, value=value)
    if passed:
        entry["message"] = ""
    else:
        why = f": {rule.message}" if rule.message else ""
        entry["message"] = f"{_values_text(entry)}{why}"
    return entry


def _run_status_problem(rs: RunSet) -> str | None:
    for r in rs.runs:
        status = r.run.get("status")
        if status in ("invalid", "interrupted", "failed"):
            why = r.run.get("invalid_reason") or ("interrupted before it finished" if status == "interrupted" else "no reason recorded")
            where = f" ({r.label})" if len(rs.runs) > 1 else ""
            more = [c for c in r.invalid_causes if c != why]  # every cause, the run's own first
            return f"run {status}{where}: " + "; ".join([why, *more])
        if r.invalid_causes:
            where = f" ({r.label})" if len(rs.runs) > 1 else ""
            return f"run invalid{where}: " + "; ".join(r.invalid_causes)
        if not r.has_metrics and not r.has_findings:
            return f"nothing measured in {r.label}: no metrics.json or findings.json"
    return None


def evaluate(
    run_dir: Path,
    *,
    gate_file: Path | None = None,
    baseline: Path | None = None,
    target_root: Path | None = None,
    write: bool = True,
) -> GateResult:
    """Gate one run directory (or a directory of `repeat-*` runs).

    Raises GateFileError for an unusable gate file and MeasurementError for a
    run directory or baseline that does not exist or cannot be parsed; every
    other problem with the run is an INVALID verdict with its reason.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise MeasurementError(f"{run_dir}: no such run directory")
    cfg: GateConfig = find_gate(gate_file, target_root)
    result = GateResult(verdict="PASS", reason="", gate_source=_display_source(cfg.source))
    try:
        candidate = load_runset(run_dir)
    except MeasurementError as e:
        result.verdict, result.reason = "INVALID", str(e)
        return _finish(result, run_dir, write)
    figures = combined_figures(candidate)
    result.figures = figures
    slowed = candidate.slowed_by()
    checks = [_judge(r, "check", figures, slowed) for r in cfg.checks]
    rules = [_judge(r, "rule", figures, slowed) for r in cfg.rules]
    result.rules = checks + rules

    comparison = None
    if baseline is not None:
        base = load_runset(Path(baseline))  # MeasurementError: the caller named a bad baseline
        comparison = compare_runsets(base, candidate, cfg)
        result.comparison = comparison
        result.baseline_source = base.source
        result.regressions = [dict(c.to_dict(), describe=c.describe()) for c in comparison.regressions]
        result.improvements = [dict(c.to_dict(), describe=c.describe()) for c in comparison.improvements]
        result.new_findings = comparison.findings_only_b

    invalid = _run_status_problem(candidate)
    if invalid is None:
        bad = [c for c in checks if c["status"] == "failed"] + [
            r for r in result.rules if r["status"] in ("not measured", "not judged") and r["required"]
        ]
        if bad:
            invalid = "; ".join(_invalid_text(r) for r in bad)
    if invalid is None and comparison is not None and not comparison.decided:
        invalid = (
            f"too few samples to decide against the baseline: {len(comparison.undecided)} figure(s) undecided "
            f"(need {cfg.compare.min_samples} values a side; use --repeat or runs with raw samples)"
        )
    if invalid is not None:
        result.verdict, result.reason = "INVALID", invalid
        return _finish(result, run_dir, write)

    failed = [r for r in rules if r["status"] == "failed" and r["severity"] == "error"]
    warned = [r for r in rules if r["status"] == "failed" and r["severity"] == "warn"]
    unmeasured = [r for r in result.rules if r["status"] == "not measured"]
    unjudged = [r for r in result.rules if r["status"] == "not judged"]
    if failed or result.regressions:
        parts = []
        if failed:
            parts.append(f"{len(failed)} rule(s) failed: " + "; ".join(f"{r['expr']} ({_values_text(r)})" for r in failed))
        if result.regressions:
            parts.append(
                f"{len(result.regressions)} regression(s) vs baseline: "
                + "; ".join(c["describe"] for c in result.regressions)
            )
        result.verdict, result.reason = "FAIL", "; ".join(parts)
    else:
        n_err = sum(1 for r in rules if r["severity"] == "error" and r["status"] == "passed")
        parts = [f"{n_err} error rule(s) passed"]
        if warned:
            parts.append(f"{len(warned)} warning(s): " + ", ".join(r["expr"] for r in warned))
        if unmeasured:
            parts.append(f"{len(unmeasured)} not measured: " + ", ".join(r["expr"] for r in unmeasured))
        if unjudged:
            parts.append(f"{len(unjudged)} speed rule(s) not judged under {'; '.join(slowed)}: "
                         + ", ".join(r["expr"] for r in unjudged))
        if comparison is not None:
            parts.append(f"no regression vs baseline ({len(comparison.decided)} figure(s) compared)")
        result.verdict, result.reason = "PASS", "; ".join(parts)
    return _finish(result, run_dir, write)


def _invalid_text(r: dict[str, Any]) -> str:
    if r["status"] == "not measured":
        return f"required figure {r['message']} ({r['kind']} {r['expr']})"
    if r["status"] == "not judged":
        return f"required {r['kind']} {r['expr']} cannot be judged: {r['message']}"
    why = f": {r_msg}" if (r_msg := r["message"]) else ""
    return f"check {r['name']!r} failed{why}"


def _display_source(source: str) -> str:
    # The shipped default by name, not by install path (no absolute paths in reports).
    return "default (reports/gate/default_gate.toml)" if Path(source) == DEFAULT_GATE else source


def _finish(result: GateResult, run_dir: Path, write: bool) -> GateResult:
    if write:
        from analysis.rundir import write_json

        write_json(run_dir / GATE_JSON, result.to_dict(), indent=2)
    return result

