"""A run the tool slowed (--trace-memory) is not judged on speed: its speed
rules are "not judged" (a required one makes the run INVALID), the rest are
judged as usual, and its speeds are not compared with a run made without it."""
from __future__ import annotations

import json

from analysis.metrics_catalogue import METRICS, SPEED, is_speed, slowed_by
from analysis.model import Finding
from reports.gate import evaluate
from reports.gate.comparison import compare_runsets
from reports.gate.measurements import Measurement, RunSet
from reports.gate.rules import load_gate_file

from .test_gate_verdicts import CLEAN, run_dir

SLOW = {**CLEAN, "loop_busy_fraction": 0.51, "ttfa_p95_ms": 2400, "ttfa_own_p95_ms": 2400}  # what 4x slower Python reads


def traced(d, on=True):
    run = json.loads((d / "run.json").read_text())
    run["options"] = {"trace_memory": on}
    (d / "run.json").write_text(json.dumps(run))
    return d


def test_every_speed_pattern_names_a_declared_figure():
    import fnmatch
    assert all(any(fnmatch.fnmatchcase(m.name, p) for m in METRICS) for p in SPEED)
    assert is_speed("loop_busy_fraction") and is_speed("ttfa_p95_ms") and not is_speed("rss_peak_mb")
    assert not is_speed("findings.HIGH") and not is_speed("streams_failed")
    assert slowed_by({"trace_memory": True}) and not slowed_by({"trace_memory": False}) and not slowed_by(None)


def test_speed_over_threshold_fails_a_bare_run(tmp_path):
    r = evaluate(traced(run_dir(tmp_path, metrics=SLOW), on=False))
    assert r.verdict == "FAIL"
    assert {x["expr"] for x in r.rules if x["status"] == "failed"} == {"loop_busy_fraction < 0.5", "ttfa_own_p95_ms < 1500"}


def test_traced_run_does_not_judge_its_speed_but_judges_the_rest(tmp_path):
    r = evaluate(traced(run_dir(tmp_path, metrics=SLOW)))
    assert (r.verdict, r.exit_code) == ("PASS", 0), r.lines()
    unjudged = {x["expr"] for x in r.rules if x["status"] == "not judged"}
    assert {"loop_busy_fraction < 0.5", "ttfa_own_p95_ms < 1500", "rest_latency_p95_ms < 500"} <= unjudged
    assert "rss_peak_mb < 1024" not in unjudged and "findings.HIGH == 0" not in unjudged
    assert any(line.startswith("n/j ") and "--trace-memory" in line for line in r.lines())
    assert "not judged under --trace-memory" in r.lines()[-1]


def test_traced_run_still_fails_on_memory_and_findings(tmp_path):
    high = Finding(kind="loop_stall", title="t", severity="HIGH", dimension="Performance", description="d",
                   impact="i", suggested_fix="f")
    r = evaluate(traced(run_dir(tmp_path, metrics={**SLOW, "rss_peak_mb": 2000}, findings=[high])))
    assert r.verdict == "FAIL"
    assert {x["expr"] for x in r.rules if x["status"] == "failed"} == {"findings.HIGH == 0", "rss_peak_mb < 1024"}


def test_a_required_speed_rule_makes_a_traced_run_invalid(tmp_path):
    gate = tmp_path / "gate.toml"
    gate.write_text('[[rule]]\nexpr = "ttfa_p95_ms < 1500"\nrequired = true\n')
    load_gate_file(gate)
    r = evaluate(traced(run_dir(tmp_path, metrics=SLOW)), gate_file=gate)
    assert (r.verdict, r.exit_code) == ("INVALID", 2)
    assert "ttfa_p95_ms" in r.reason and "--trace-memory" in r.reason


def _runs(source, n, ttfa, rss, traced_on):
    return RunSet(source, [Measurement(label=f"{source}{i}", figures={"ttfa_p95_ms": ttfa + i, "rss_peak_mb": rss + i},
                                       run={"options": {"trace_memory": traced_on}}, has_metrics=True)
                           for i in range(n)])


def test_speeds_are_not_compared_across_slowing_but_memory_is(tmp_path):
    gate = tmp_path / "gate.toml"
    gate.write_text('[[rule]]\nexpr = "rss_peak_mb < 5000"\n')
    cfg = load_gate_file(gate)
    res = compare_runsets(_runs("bare", 6, 300, 200, False), _runs("traced", 6, 1200, 400, True), cfg)
    assert "ttfa_p95_ms" in res.not_compared and "--trace-memory" in res.not_compared["ttfa_p95_ms"]
    assert [c.figure for c in res.regressions] == ["rss_peak_mb"]
    same = compare_runsets(_runs("t1", 6, 300, 200, True), _runs("t2", 6, 1200, 200, True), cfg)
    assert not same.not_compared and [c.figure for c in same.regressions] == ["ttfa_p95_ms"]
