"""Compare two sets of runs figure by figure, and their findings by fingerprint.

Used by the gate (`--baseline`: a = baseline, b = candidate) and by the A/B
comparison of two checkouts (a = A, b = B). Pure: reads RunSets, returns data.

Which samples a figure is compared on:
- a flat figure of metrics.json (`ttfa_p95_ms`): its value in each repeat, so
  n = number of repeats (the honest unit of replication);
- a raw sample series (`samples.ttfa_ms`): every raw value of every repeat
  pooled, so one run of 20 streams already gives n = 20. Pooling treats
  values from one run as independent, which they nearly are for per-stream
  values and are not for consecutive frame gaps; the tolerance absorbs that.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from analysis.metrics_catalogue import is_speed
from analysis.model import severity_rank

from .measurements import RunSet
from .rules import GateConfig
from .stats import Comparison, compare_samples, holm_adjust


@dataclass
class ComparisonResult:
    a_source: str
    b_source: str
    n_a: int
    n_b: int
    comparisons: list[Comparison] = field(default_factory=list)
    findings_only_a: list[dict[str, Any]] = field(default_factory=list)
    findings_only_b: list[dict[str, Any]] = field(default_factory=list)
    findings_both: list[dict[str, Any]] = field(default_factory=list)
    correction: str = "holm"
    # figures left out, with why (speeds of two runs slowed differently by the tool)
    not_compared: dict[str, str] = field(default_factory=dict)

    def by_verdict(self, verdict: str) -> list[Comparison]:
        return [c for c in self.comparisons if c.verdict == verdict]

    @property
    def regressions(self) -> list[Comparison]:
        return self.by_verdict("regression")

    @property
    def improvements(self) -> list[Comparison]:
        return self.by_verdict("improvement")

    @property
    def changed(self) -> list[Comparison]:
        return self.by_verdict("changed")

    @property
    def undecided(self) -> list[Comparison]:
        return self.by_verdict("undecided")

    @property
    def decided(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.verdict != "undecided"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": {"source": self.a_source, "runs": self.n_a},
            "b": {"source": self.b_source, "runs": self.n_b},
            "correction": self.correction,
            "regressions": [c.to_dict() for c in self.regressions],
            "improvements": [c.to_dict() for c in self.improvements],
            "changed": [c.to_dict() for c in self.changed],
            "figures": [c.to_dict() for c in self.comparisons],
            "findings_only_a": self.findings_only_a,
            "findings_only_b": self.findings_only_b,
            "findings_both": self.findings_both,
            "not_compared": self.not_compared,
        }


def compare_runsets(a: RunSet, b: RunSet, cfg: GateConfig, *, seed: int = 0) -> ComparisonResult:
    s = cfg.compare
    res = ComparisonResult(a.source, b.source, len(a.runs), len(b.runs), correction=s.correction)
    series: list[tuple[str, list[float], list[float]]] = []
    for name in sorted(a.figure_names() & b.figure_names()):
        series.append((name, a.figure_values(name), b.figure_values(name)))
    for name in sorted(a.sample_names() & b.sample_names()):
        series.append((f"samples.{name}", a.pooled_samples(name), b.pooled_samples(name)))
    slow_a, slow_b = a.slowed_by(), b.slowed_by()
    for i, (name, xa, xb) in enumerate(series):
        pol = cfg.policy(name)
        if pol.ignore:
            continue
        if slow_a != slow_b and is_speed(name):
            # one side ran slower by the tool's hand: the difference would be the tool's
            res.not_compared[name] = (f"speed measured with different instrumentation "
                                      f"({'; '.join(slow_a) or 'none'} vs {'; '.join(slow_b) or 'none'})")
            continue
        res.comparisons.append(
            compare_samples(
                xa, xb,
                figure=name,
                better=pol.better,
                alpha=s.alpha,
                tolerance=s.tolerance if pol.tolerance is None else pol.tolerance,
                abs_tolerance=s.abs_tolerance if pol.abs_tolerance is None else pol.abs_tolerance,
                min_samples=s.min_samples,
                confidence=s.confidence,
                seed=seed + i,
            )
        )
    if s.correction == "holm":
        _apply_holm(res.comparisons, s.alpha)

    seen_a, seen_b = a.findings_seen(), b.findings_seen()
    for fp in sorted(set(seen_a) | set(seen_b), key=lambda k: (severity_rank((seen_a.get(k) or seen_b[k])["severity"]), k)):
        info = dict(seen_a.get(fp) or seen_b[fp])
        info["seen_a"] = seen_a.get(fp, {}).get("seen", 0)
        info["seen_b"] = seen_b.get(fp, {}).get("seen", 0)
        info.pop("seen", None)
        # in every repeat of one side and none of the other: a consistent difference
        if fp not in seen_b:
            info["consistent"] = info["seen_a"] == len(a.runs)
            res.findings_only_a.append(info)
        elif fp not in seen_a:
            info["consistent"] = info["seen_b"] == len(b.runs)
            res.findings_only_b.append(info)
        else:
            res.findings_both.append(info)
    return res


def _apply_holm(comps: list[Comparison], alpha: float) -> None:
    adjusted = holm_adjust([c.p_value for c in comps])
    for c, p in zip(comps, adjusted):
        if c.verdict == "undecided" or math.isnan(p):
            continue
        c.p_value = p
        c.significant = p < alpha
        if not (c.significant and c.beyond_tolerance):
            c.verdict = "same"


def render_markdown(res: ComparisonResult, *, title: str, a_label: str = "A", b_label: str = "B", header: list[str] | None = None) -> str:
    """The comparison as Markdown: differences first, then the full table."""
    out = [f"# {title}", ""]
    out += header or []
    diffs = res.regressions + res.improvements + res.changed
    verdict = "DIFFERENT" if diffs or res.findings_only_a or res.findings_only_b else "NO DIFFERENCE FOUND"
    out.insert(2, f"**{verdict}**: {_summary(res, a_label, b_label)}")
    out.insert(3, "")
    out += [
        f"- {a_label}: {res.a_source} ({res.n_a} run(s)); {b_label}: {res.b_source} ({res.n_b} run(s))",
        f"- ratio = median {b_label} / median {a_label}; p = Mann-Whitney U"
        + (" (Holm-corrected over all figures)" if res.correction == "holm" else ""),
        "",
    ]
    for heading, comps in (("Regressions", res.regressions), ("Improvements", res.improvements), ("Changed (no preferred direction)", res.changed)):
        if comps:
            out += [f"## {heading} ({b_label} vs {a_label})", ""] + [f"- {c.describe()}" for c in comps] + [""]
    for heading, items, side in (
        (f"Findings only in {a_label}", res.findings_only_a, "a"),
        (f"Findings only in {b_label}", res.findings_only_b, "b"),
    ):
        if items:
            out += [f"## {heading}", ""]
            n = res.n_a if side == "a" else res.n_b
            for f in items:
                seen = f["seen_a"] if side == "a" else f["seen_b"]
                out.append(f"- [{f['severity']}] {f['title']} ({f['kind']}, {f['location']}; seen in {seen}/{n} runs; fingerprint `{f['fingerprint']}`)")
            out.append("")
    if res.findings_both:
        out += [f"## Findings in both ({len(res.findings_both)})", ""]
        out += [f"- [{f['severity']}] {f['title']} (seen {f['seen_a']}/{res.n_a} {a_label}, {f['seen_b']}/{res.n_b} {b_label})" for f in res.findings_both]
        out.append("")
    out += ["## All figures", "", f"| figure | {a_label} median | {b_label} median | ratio [CI] | p | n | verdict |", "|---|---|---|---|---|---|---|"]
    for c in res.comparisons:
        ratio = "" if math.isnan(c.ratio) else ("inf" if math.isinf(c.ratio) else f"{c.ratio:.3g}")
        ci = "" if math.isnan(c.ci_low) else f" [{c.ci_low:.3g}, {c.ci_high:.3g}]"
        p = "" if math.isnan(c.p_value) else f"{c.p_value:.2g}"
        out.append(f"| {c.figure} | {c.median_a:.4g} | {c.median_b:.4g} | {ratio}{ci} | {p} | {c.n_a}/{c.n_b} | {c.verdict} |")
    out.append("")
    return "\n".join(out)


def _summary(res: ComparisonResult, a_label: str, b_label: str) -> str:
    parts = []
    if res.regressions:
        parts.append(f"{len(res.regressions)} regression(s) in {b_label}: " + ", ".join(c.figure for c in res.regressions))
    if res.improvements:
        parts.append(f"{len(res.improvements)} improvement(s) in {b_label}: " + ", ".join(c.figure for c in res.improvements))
    if res.changed:
        parts.append(f"{len(res.changed)} changed: " + ", ".join(c.figure for c in res.changed))
    if res.findings_only_a:
        parts.append(f"{len(res.findings_only_a)} finding(s) only in {a_label}")
    if res.findings_only_b:
        parts.append(f"{len(res.findings_only_b)} finding(s) only in {b_label}")
    if not parts:
        parts.append(f"{len(res.decided)} figure(s) compared, none significantly beyond tolerance")
    if res.undecided:
        parts.append(f"{len(res.undecided)} figure(s) undecided (too few samples)")
    if res.not_compared:
        parts.append(f"{len(res.not_compared)} speed figure(s) not compared: "
                     f"{next(iter(res.not_compared.values()))}")
    return "; ".join(parts)
