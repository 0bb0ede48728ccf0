"""What makes a commit bad, judged from one finished run directory.

A criterion reads only what the run wrote (run.json, findings.json,
metrics.json, target.log) and answers good, bad or skip with its evidence.
An invalid run is a skip whose reason is the run's own: the backend's error
from the tail of target.log (a missing module, an import or syntax error),
or the run's invalid_reason.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .search import BAD, GOOD, SKIP


@dataclass
class Judgement:
    verdict: str  # good | bad | skip
    reason: str
    evidence: list[str] = field(default_factory=list)


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


# ------------------------------------------------------------ why a run is invalid

_EXC = re.compile(r"^(?:[\w.]+\.)?(\w*(?:Error|Exception)|SystemExit|KeyboardInterrupt)(?::\s*(.*))?$")
_FILE = re.compile(r'^\s*File "([^"]+)", line (\d+)')


def backend_error(log_text: str, root: Path | None = None) -> str | None:
    """The last exception the backend printed, named the way a person would
    say it: "missing module 'librosa' (ModuleNotFoundError: ...)"."""
    lines = log_text.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        m = _EXC.match(lines[i].strip())
        if not m:
            continue
        exc, msg = m.group(1), (m.group(2) or "").strip()
        # the frame to name: the innermost one inside the target's checkout
        # (the line of Auralis that called into scipy), else the innermost
        frames = []
        for j in range(i - 1, max(-1, i - 200), -1):
            if lines[j].startswith("Traceback"):
                break
            f = _FILE.match(lines[j])
            if f:
                frames.append((f.group(1), f.group(2)))
        where = ""
        if frames:
            path, line = frames[0]
            if root is not None:
                for p, ln in frames:
                    try:
                        path, line = str(Path(p).resolve().relative_to(root.resolve())), ln
                        break
                    except (ValueError, OSError):
                        continue
            where = f" at {path}:{line}"
        text = f"{exc}: {msg}" if msg else exc
        mod = re.search(r"No module named '([^']+)'", msg)
        if exc == "ModuleNotFoundError" and mod:
            return f"missing module '{mod.group(1)}' ({text}{where})"
        if exc == "ImportError":
            return f"import error ({text}{where})"
        if exc in ("SyntaxError", "IndentationError"):
            return f"syntax error ({text}{where})"
        return f"{text}{where}"
    return None


def skip_reason(run_dir: Path, step_log: Path | None = None, root: Path | None = None) -> str:
    """Why this run cannot judge its commit, as precisely as its files say."""
    run = _read(run_dir / "run.json") or {}
    reason = str(run.get("invalid_reason") or "")
    log = run_dir / "target.log"
    err = backend_error(log.read_text(errors="replace"), root) if log.exists() else None
    if err and (not reason or "start" in reason or "died" in reason):
        return f"{reason.split(':')[0] or 'target failed'}: {err}"
    if reason:
        return reason
    if step_log is not None and step_log.exists():  # refused before the run began (bad environment)
        errs = [ln[len("error: "):] for ln in step_log.read_text(errors="replace").splitlines()
                if ln.startswith("error: ")]
        if errs:
            return errs[-1]
    return "the run left no verdict"


def run_ok(run_dir: Path) -> bool:
    return (_read(run_dir / "run.json") or {}).get("status") == "ok"


# ------------------------------------------------------------ criteria


class Criterion:
    """Base: a name for logs and the extra instrument.run options it needs."""

    def describe(self) -> str:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def run_args(self) -> list[str]:
        return ["--no-gate"]

    def judge(self, run_dir: Path) -> Judgement:
        raise NotImplementedError


def _finding_line(f: dict[str, Any]) -> str:
    figs = ", ".join(f"{k} {v:g}" if isinstance(v, (int, float)) else f"{k} {v}"
                     for k, v in (f.get("figures") or {}).items())
    return (f"{f.get('severity')} {f.get('kind')}: {f.get('title')} [{f.get('location_text') or ''}]"
            + (f" ({figs})" if figs else ""))


@dataclass
class FindingCriterion(Criterion):
    """Bad when the run has a finding of `kind` (narrowed to a stream type
    and/or a location substring)."""

    kind: str
    stream_type: str | None = None
    location: str | None = None

    def what(self) -> str:
        s = f"{self.kind} finding"
        if self.stream_type:
            s += f" on a {self.stream_type} stream"
        if self.location:
            s += f" at '{self.location}'"
        return s

    def describe(self) -> str:
        return f"a {self.what()}"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "finding", "kind": self.kind, "stream_type": self.stream_type, "location": self.location}

    def matches(self, f: dict[str, Any], types: dict[str, str]) -> bool:
        if f.get("kind") != self.kind:
            return False
        if self.location:
            loc = f.get("location") or {}
            text = " ".join(str(x) for x in (f.get("location_text"), loc.get("file"), loc.get("function"),
                                             loc.get("route")) if x)
            if self.location not in text:
                return False
        if self.stream_type:
            # the streams a finding names: its location's, and any its evidence cites
            named = {(f.get("location") or {}).get("stream")}
            text = " ".join(f.get("evidence") or []) + " " + str(f.get("key") or "")
            named |= {sid for sid in types if sid in text}
            if not any(types.get(str(s)) == self.stream_type for s in named if s):
                return False
        return True

    def judge(self, run_dir: Path) -> Judgement:
        doc = _read(run_dir / "findings.json")
        if not isinstance(doc, dict) or not isinstance(doc.get("findings"), list):
            return Judgement(SKIP, "the run has no readable findings.json")
        types = {p.name: str((_read(p / "stream.json") or {}).get("stream_type"))
                 for p in sorted((run_dir / "streams").glob("*")) if p.is_dir()}
        hits = [f for f in doc["findings"] if self.matches(f, types)]
        if hits:
            ev = []
            for f in hits[:3]:
                ev.append(_finding_line(f))
                ev += [f"  {e}" for e in (f.get("evidence") or [])[:3]]
            return Judgement(BAD, f"{len(hits)} {self.kind} finding(s)", ev)
        others = sorted({str(f.get("kind")) for f in doc["findings"]})
        return Judgement(GOOD, f"no {self.what()}",
                         [f"no {self.what()}; {len(doc['findings'])} other finding(s)"
                          + (f": {', '.join(others)}" if others else "")])


@dataclass
class GateCriterion(Criterion):
    """Bad when the gate in `gate_file` fails the run."""

    gate_file: str

    def describe(self) -> str:
        return f"the gate {Path(self.gate_file).name} fails"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "gate", "gate": str(self.gate_file)}

    def run_args(self) -> list[str]:
        return ["--gate", str(self.gate_file)]

    def judge(self, run_dir: Path) -> Judgement:
        run = _read(run_dir / "run.json") or {}
        verdict, reason = run.get("verdict"), str(run.get("verdict_reason") or "")
        gate = _read(run_dir / "gate.json") or {}
        rules = gate.get("rules") if isinstance(gate, dict) else None
        lines = [f"{r.get('status')}: [{r.get('kind')}] {r.get('expr')}" + (f": {r['message']}" if r.get("message") else "")
                 for r in (rules or []) if isinstance(r, dict) and r.get("status") != "passed"][:8]
        if verdict == "FAIL":
            return Judgement(BAD, f"gate FAIL: {reason}", lines or [reason])
        if verdict == "PASS":
            return Judgement(GOOD, f"gate PASS: {reason}", lines or [reason])
        return Judgement(SKIP, f"gate {verdict or 'no verdict'}: {reason}")


@dataclass
class MetricCriterion(Criterion):
    """Bad when metrics.json's `name` is past `threshold` in the bad direction
    (`bad_when` "above" or "below")."""

    name: str
    threshold: float
    bad_when: str

    def describe(self) -> str:
        return f"{self.name} {'>' if self.bad_when == 'above' else '<'} {self.threshold:g}"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "metric", "metric": self.name, "threshold": self.threshold, "bad_when": self.bad_when}

    def judge(self, run_dir: Path) -> Judgement:
        metrics = _read(run_dir / "metrics.json")
        if not isinstance(metrics, dict):
            return Judgement(SKIP, "the run has no readable metrics.json")
        v = metrics.get(self.name)
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            return Judgement(SKIP, f"metric {self.name} not measured in this run")
        bad = v > self.threshold if self.bad_when == "above" else v < self.threshold
        text = f"{self.name} = {v:g} (bad when {self.bad_when} {self.threshold:g})"
        return Judgement(BAD if bad else GOOD, text, [text])


def metric_direction(name: str) -> str | None:
    """"above" or "below": which side of a threshold is bad for this metric,
    from the shipped gate's figure policy (lower-is-better by default); None
    when the metric has no preferred direction."""
    from reports.gate.rules import find_gate

    better = find_gate(None, None).policy(name).better
    return {"lower": "above", "higher": "below"}.get(better)
