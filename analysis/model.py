"""The shared currency of every stage: the Finding.

Its fields follow the per-finding format Auralis's own backend audits use
(`.claude/commands/audit-backend.md` in their repository):

    ### <ID>: <Short Title>
    - Severity / Dimension / Location / Status / Description / Evidence /
      Impact / Suggested Fix

plus what a runtime tool adds: the measured figures a gate reads, the
artifacts (plots, stacks, profiles) that back the evidence, and a stable
fingerprint so the same defect measured in two runs is recognised as one.

A detector returns Findings; it never prints or formats them.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

SCHEMA_VERSION = 1

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW")

# The audit's dimensions, in the audit's own numbering (IDs are B<n>-<k>).
DIMENSIONS = (
    "Route Handlers",  # 1
    "WebSocket Streaming",  # 2
    "Chunked Processing",  # 3
    "Processing Engine",  # 4
    "Schema Consistency",  # 5
    "Middleware & Config",  # 6
    "Error Handling",  # 7
    "Performance",  # 8
    "Test Coverage",  # 9
    "Caching & Invalidation",  # 10
    "Seek & Buffering",  # 11
)

STATUSES = ("NEW",)  # plus "Existing: #N" and "Regression of #N", set by publishing


def dimension_number(dimension: str) -> int:
    return DIMENSIONS.index(dimension) + 1


@dataclass
class Location:
    """Where a defect lives: a code location when a stack or trace gives one,
    else where it was observed (the HTTP route or WebSocket message, scenario,
    stream, time in the stream)."""

    file: str | None = None  # relative to the target's root where possible
    line_start: int | None = None
    line_end: int | None = None
    function: str | None = None
    scenario: str | None = None
    stream: str | None = None
    time_s: float | None = None
    route: str | None = None  # "GET /api/albums/{album_id}/artwork", "/ws play_normal"

    @property
    def has_code(self) -> bool:
        return bool(self.file and self.line_start)

    def code_span(self) -> str:
        """`file:line` or `file:start-end`, the audit's form."""
        span = f"{self.line_start}"
        if self.line_end and self.line_end != self.line_start:
            span += f"-{self.line_end}"
        return f"{self.file}:{span}"

    def render(self) -> str:
        if self.has_code:
            where = self.code_span()
            return f"{where} ({self.function})" if self.function else where
        parts = []
        if self.route:
            parts.append(self.route)
        if self.file:  # a file without a line: the module (and function) known to hold it
            parts.append(f"{self.file} ({self.function})" if self.function else self.file)
        elif self.function and not self.route:
            parts.append(self.function)
        if self.scenario:
            parts.append(f"scenario {self.scenario}")
        if self.stream:
            parts.append(f"stream {self.stream}")
        if self.time_s is not None:
            parts.append(f"t={self.time_s:.3f} s")
        return ", ".join(parts) or "run-wide"


# the clause "audio_stream_end's totals describe the audio the stream delivered",
# judged by the load's protocol client and by the ws_contract check alike
END_TOTALS_CLAUSE = "audio_stream_end:totals"


@dataclass
class Finding:
    """One defect, confirmed by measurement.

    `kind` names the detector that produced it (`loop_stall`, `repeated_samples`,
    ...); `key` is what makes two findings of one kind the same defect (a code
    location, a boundary pattern); together they form the fingerprint used to
    de-duplicate across runs and against published issues.
    """

    kind: str
    title: str
    severity: str
    dimension: str
    description: str
    impact: str
    suggested_fix: str
    location: Location = field(default_factory=Location)
    evidence: list[str] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)
    artifacts: list[str] = field(default_factory=list)  # paths relative to the run dir
    key: str = ""
    status: str = "NEW"
    id: str = ""  # assigned by assign_ids(): B<dimension>-<n>
    # Where each instance was observed, in a form the grouping stage compares
    # (analysis/grouping.py): {"stream", "t", "value"} for audio at a boundary,
    # {"frame"} for a code frame, {"error"} for an error text, {"contract"} for
    # a clause of the message contract (END_TOTALS_CLAUSE), {"message"} for the
    # message type whose send site the locate stage names.
    sites: list[dict[str, Any]] = field(default_factory=list)
    # The findings of other detectors that the grouping stage folded into this
    # one because they share its cause: each a to_dict() of the symptom, so
    # every figure survives.
    symptoms: list[dict[str, Any]] = field(default_factory=list)
    # The shared cause, set by the grouping stage; when set, the fingerprint is
    # derived from it and not from whichever symptom leads.
    cause: str = ""
    # "target": a defect of the target; "environment": caused by where it ran
    # (DSP absent or a stand-in, a saturated load generator, a starved host).
    section: str = "target"

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}")
        if self.dimension not in DIMENSIONS:
            raise ValueError(f"unknown dimension {self.dimension!r}")

    @property
    def fingerprint(self) -> str:
        if self.cause:
            return hashlib.sha256(f"cause|{self.cause}".encode()).hexdigest()[:16]
        basis = f"{self.kind}|{self.dimension}|{self.key or self.location.render()}"
        return hashlib.sha256(basis.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["fingerprint"] = self.fingerprint
        d["location_text"] = self.location.render()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Finding":
        d = dict(d)
        d.pop("fingerprint", None)
        d.pop("location_text", None)
        loc = d.get("location") or {}
        d["location"] = Location(**{k: v for k, v in loc.items() if k in Location.__dataclass_fields__})
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    @property
    def counts_against_gate(self) -> bool:
        return self.section != "environment"

    def all_figures(self) -> dict[str, float]:
        """This finding's figures and every symptom's, namespaced by the
        symptom's kind (`click.worst_magnitude`), so nothing grouped is lost."""
        out = dict(self.figures)
        for s in self.symptoms:
            for k, v in (s.get("figures") or {}).items():
                out.setdefault(f"{s.get('kind')}.{k}", v)
        return out


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity)


def assign_ids(findings: Iterable[Finding]) -> list[Finding]:
    """Order findings most severe first and number them per dimension, as the
    audits do (B2-1, B2-2, B8-1 ...)."""
    ordered = sorted(findings, key=lambda f: (severity_rank(f.severity), dimension_number(f.dimension), f.kind, f.key))
    counters: dict[int, int] = {}
    for f in ordered:
        n = dimension_number(f.dimension)
        counters[n] = counters.get(n, 0) + 1
        f.id = f"B{n}-{counters[n]}"
    return ordered


def count_by_severity(findings: Iterable[Finding]) -> dict[str, int]:
    counts = {s: 0 for s in SEVERITIES}
    for f in findings:
        counts[f.severity] += 1
    return counts


def dump_findings(findings: list[Finding], meta: dict[str, Any] | None = None) -> str:
    doc = {
        "schema_version": SCHEMA_VERSION,
        "meta": meta or {},
        "counts": count_by_severity(findings),
        "findings": [f.to_dict() for f in findings],
    }
    return json.dumps(doc, indent=2, default=_json_default)


def load_findings(text: str) -> tuple[list[Finding], dict[str, Any]]:
    doc = json.loads(text)
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"findings.json schema {doc.get('schema_version')!r}, expected {SCHEMA_VERSION}")
    return [Finding.from_dict(d) for d in doc["findings"]], doc.get("meta", {})


def _json_default(o: Any) -> Any:
    # numpy scalars reach figures from detectors; keep them plain in JSON
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
