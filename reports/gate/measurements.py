"""What a run measured, as the gate reads it, and sets of repeated runs.

A `Measurement` is one run directory reduced to numbers: the flat figures of
metrics.json, its raw samples, the findings counts and fingerprints. A
`RunSet` is several repeats of the same thing (a baseline, one side of an A/B).
Both load from a run directory, a directory of repeats (`repeat-*/`), or a
saved baseline file, so `--baseline` accepts any of the three.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analysis.metrics_catalogue import slowed_by
from analysis.model import SEVERITIES, load_findings
from analysis.rundir import FINDINGS, METRICS, RUN_JSON, read_json

BASELINE_FORMAT = "earshot-baseline"
BASELINE_VERSION = 1


class MeasurementError(ValueError):
    """A run directory or baseline file that cannot be read; one line."""


@dataclass
class Measurement:
    label: str
    figures: dict[str, float] = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=dict)
    # fingerprint -> {"title", "severity", "kind", "location"}
    findings: dict[str, dict[str, Any]] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)
    has_metrics: bool = False
    has_findings: bool = False
    invalid_causes: list[str] = field(default_factory=list)  # analysis.validity: why not to judge it

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "figures": self.figures,
            "samples": self.samples,
            "findings": self.findings,
            "run": {k: self.run.get(k) for k in ("target", "scenario", "status", "invalid_reason", "options", "target_commit") if k in self.run},
            "has_metrics": self.has_metrics,
            "has_findings": self.has_findings,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Measurement":
        return cls(
            label=str(d.get("label", "")),
            figures={k: float(v) for k, v in (d.get("figures") or {}).items()},
            samples={k: [float(x) for x in v] for k, v in (d.get("samples") or {}).items()},
            findings=dict(d.get("findings") or {}),
            run=dict(d.get("run") or {}),
            has_metrics=bool(d.get("has_metrics", True)),
            has_findings=bool(d.get("has_findings", True)),
        )


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def read_measurement(run_dir: Path, label: str | None = None) -> Measurement:
    run_dir = Path(run_dir)
    try:
        metrics = read_json(run_dir / METRICS)
    except json.JSONDecodeError as e:
        raise MeasurementError(f"{run_dir / METRICS}: not valid JSON ({e.msg}, line {e.lineno})") from None
    try:
        run = read_json(run_dir / RUN_JSON, {}) or {}
    except json.JSONDecodeError as e:
        raise MeasurementError(f"{run_dir / RUN_JSON}: not valid JSON ({e.msg}, line {e.lineno})") from None
    m = Measurement(label=label or run_dir.name, run=run if isinstance(run, dict) else {})
    if isinstance(metrics, dict):
        m.has_metrics = True
        for k, v in metrics.items():
            if k == "invalid_causes" and isinstance(v, list):
                m.invalid_causes = [str(x) for x in v]
            elif k == "samples" and isinstance(v, dict):
                for name, values in v.items():
                    if isinstance(values, list):
                        m.samples[name] = [float(x) for x in values if _is_number(x)]
            elif _is_number(v):
                m.figures[k] = float(v)
    elif metrics is not None:
        raise MeasurementError(f"{run_dir / METRICS}: expected a JSON object")
    fpath = run_dir / FINDINGS
    if fpath.is_file():
        try:
            findings, _meta = load_findings(fpath.read_text(encoding="utf-8"))
        except (ValueError, KeyError, TypeError) as e:
            raise MeasurementError(f"{fpath}: unreadable findings ({e})") from None
        m.has_findings = True
        counts = {s: 0 for s in SEVERITIES}
        for f in findings:
            if not f.counts_against_gate:  # the environment's, shown apart, never gated
                continue
            counts[f.severity] += 1
            m.findings[f.fingerprint] = {
                "title": f.title,
                "severity": f.severity,
                "kind": f.kind,
                "location": f.location.render(),
                "id": f.id,
            }
        # findings.json is the source of truth for the counts; metrics.json may
        # carry stale copies from an earlier analysis.
        for s, n in counts.items():
            m.figures[f"findings.{s}"] = float(n)
        m.figures["findings.total"] = float(sum(counts.values()))
        m.figures["findings.environment"] = float(len(findings) - sum(counts.values()))
    return m


def repeat_dirs(path: Path) -> list[Path]:
    """`repeat-*` subdirectories in numeric order (repeat-10 after repeat-9)."""

    def key(p: Path) -> tuple[int, str]:
        tail = p.name.split("-", 1)[-1]
        return (int(tail) if tail.isdigit() else 1 << 30, p.name)

    return sorted((p for p in Path(path).glob("repeat-*") if p.is_dir()), key=key)


@dataclass
class RunSet:
    source: str
    runs: list[Measurement] = field(default_factory=list)

    def figure_values(self, name: str) -> list[float]:
        return [r.figures[name] for r in self.runs if name in r.figures]

    def pooled_samples(self, name: str) -> list[float]:
        out: list[float] = []
        for r in self.runs:
            out.extend(r.samples.get(name, []))
        return out

    def slowed_by(self) -> list[str]:
        """The slowing instrumentation any of these runs had on (--trace-memory)."""
        return sorted({why for r in self.runs for why in slowed_by(r.run.get("options"))})

    def figure_names(self) -> set[str]:
        return {k for r in self.runs for k in r.figures}

    def sample_names(self) -> set[str]:
        return {k for r in self.runs for k in r.samples}

    def findings_seen(self) -> dict[str, dict[str, Any]]:
        """fingerprint -> finding info plus `seen` (in how many repeats)."""
        out: dict[str, dict[str, Any]] = {}
        for r in self.runs:
            for fp, info in r.findings.items():
                entry = out.setdefault(fp, {**info, "fingerprint": fp, "seen": 0})
                entry["seen"] += 1
        return out

    def to_json(self) -> str:
        doc = {
            "format": BASELINE_FORMAT,
            "version": BASELINE_VERSION,
            "source": self.source,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "runs": [r.to_dict() for r in self.runs],
        }
        return json.dumps(doc, indent=1)


def load_runset(path: Path) -> RunSet:
    """A run directory, a directory of `repeat-*` run directories, or a saved
    baseline JSON file."""
    path = Path(path)
    if path.is_file():
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise MeasurementError(f"{path}: not a baseline JSON file ({e})") from None
        if not isinstance(doc, dict) or doc.get("format") != BASELINE_FORMAT:
            raise MeasurementError(f"{path}: not an earshot baseline file (save one with `python -m reports.gate save-baseline`)")
        if doc.get("version") != BASELINE_VERSION:
            raise MeasurementError(f"{path}: baseline version {doc.get('version')!r}, expected {BASELINE_VERSION}")
        rs = RunSet(source=str(doc.get("source", path.name)), runs=[Measurement.from_dict(d) for d in doc.get("runs", [])])
        _check_baseline_names(path, rs)
        return rs
    if not path.is_dir():
        raise MeasurementError(f"{path}: no such run directory or baseline file")
    repeats = repeat_dirs(path)
    if repeats:
        return RunSet(source=path.name, runs=[read_measurement(p, label=p.name) for p in repeats])
    if not (path / METRICS).is_file() and not (path / FINDINGS).is_file():
        raise MeasurementError(f"{path}: neither metrics.json, findings.json nor repeat-*/ run directories")
    return RunSet(source=path.name, runs=[read_measurement(path)])


def _check_baseline_names(path: Path, rs: RunSet) -> None:
    """A baseline naming a metric the catalogue does not know was written by
    something else or edited by hand: comparing against it would silently
    compare nothing."""
    from analysis.metrics_catalogue import is_known, unknown_message

    for name in sorted(rs.figure_names()) + sorted(f"samples.{n}" for n in rs.sample_names()):
        if not is_known(name):
            raise MeasurementError(f"{path}: {unknown_message(name)}")


def combined_figures(rs: RunSet) -> dict[str, float]:
    """The figures a gate judges for a set of repeats: the median of each
    measured figure, but findings counted over the union of fingerprints,
    because a defect seen in one repeat of five is still a defect."""
    out: dict[str, float] = {}
    for name in rs.figure_names():
        if name.startswith("findings."):
            continue
        out[name] = float(np.median(rs.figure_values(name)))
    if any(r.has_findings for r in rs.runs):
        seen = rs.findings_seen()
        for s in SEVERITIES:
            out[f"findings.{s}"] = float(sum(1 for f in seen.values() if f["severity"] == s))
        out["findings.total"] = float(len(seen))
    else:
        # no findings.json anywhere: keep whatever counts metrics.json carried
        for name in rs.figure_names():
            if name.startswith("findings."):
                out[name] = float(max(rs.figure_values(name)))
    return out
