"""A/B of two targets (`python -m instrument.compare`) and repeated runs
(`instrument.run --repeat N`, `--save-baseline`).

Fast: the ABAB order, the findings diff and the verdict on synthetic
measurements, the repeat report and baseline files on synthetic run
directories, bad input. Slow (one end-to-end A/B on the reference backend):
clean against boundary-click, where the injected clicks must be the
difference and nothing else."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from analysis.model import Finding, dump_findings
from instrument import compare, repeat
from instrument.run import RunError, build_parser
from reports.gate import evaluate
from reports.gate.comparison import compare_runsets
from reports.gate.measurements import Measurement, RunSet, load_runset
from reports.gate.rules import GateConfig
from reports.repeats import render_repeats_md

from ..e2e.helpers import ROOT, leftovers

# ---------------------------------------------------------------- order and diff


def test_runs_alternate_a_b():
    assert compare.abab_order(3) == [("a", 1), ("b", 1), ("a", 2), ("b", 2), ("a", 3), ("b", 3)]
    assert compare.abab_order(1) == [("a", 1), ("b", 1)]


def info(title, severity="HIGH", kind="k"):
    return {"title": title, "severity": severity, "kind": kind, "location": "scenario s", "id": "X"}


def runset(source, per_run_findings, figures=None):
    return RunSet(source, [Measurement(f"repeat-{i + 1}", figures=dict(figures or {}), findings=f, has_findings=True)
                           for i, f in enumerate(per_run_findings)])


def test_findings_diff_matches_by_fingerprint_and_counts_repeats():
    both, gone, new, flaky = info("in both"), info("fixed in B"), info("new in B", "CRITICAL"), info("once", "MEDIUM")
    a = runset("a", [{"fp-both": both, "fp-gone": gone}, {"fp-both": both, "fp-gone": gone}])
    b = runset("b", [{"fp-both": both, "fp-new": new}, {"fp-both": both, "fp-new": new, "fp-flaky": flaky}])
    res = compare_runsets(a, b, GateConfig(source="t"))
    assert [f["fingerprint"] for f in res.findings_both] == ["fp-both"]
    assert [(f["fingerprint"], f["seen_a"], f["consistent"]) for f in res.findings_only_a] == [("fp-gone", 2, True)]
    # sorted by severity: the CRITICAL first; the one seen in 1 of 2 runs is not consistent
    assert [(f["fingerprint"], f["seen_b"], f["consistent"]) for f in res.findings_only_b] == [
        ("fp-new", 2, True), ("fp-flaky", 1, False)]


OK_GATES = {"a": {"verdict": "PASS", "reason": ""}, "b": {"verdict": "FAIL", "reason": "x"}}
FIGS = {f"fig{i}_ms": 100.0 for i in range(3)}


def many(source, n, factor=1.0, findings=None):
    import numpy as np

    rng = np.random.default_rng(len(source) + n)
    return RunSet(source, [Measurement(f"repeat-{i + 1}", has_findings=True, findings=dict(findings or {}),
                                       figures={k: v * factor * float(rng.lognormal(0, 0.03)) for k, v in FIGS.items()})
                           for i in range(n)])


def test_verdict_new_finding_in_b_is_a_regression_and_low_is_not():
    cfg = GateConfig(source="t")
    res = compare_runsets(many("a", 6), many("b", 6, findings={"fp": info("new", "MEDIUM")}), cfg)
    verdict, code, reason = compare.judge(res, OK_GATES)
    assert (verdict, code) == ("FAIL", 1) and "[MEDIUM] new (seen 6/6)" in reason
    res = compare_runsets(many("a", 6), many("b", 6, findings={"fp": info("note", "LOW")}), cfg)
    assert compare.judge(res, OK_GATES)[:2] == ("PASS", 0)


def test_verdict_intermittent_new_finding_is_reported_not_failed():
    cfg = GateConfig(source="t")
    b = many("b", 6)
    b.runs[3].findings = {"fp": info("one stall", "MEDIUM")}
    verdict, code, reason = compare.judge(compare_runsets(many("a", 6), b, cfg), OK_GATES)
    assert (verdict, code) == ("PASS", 0) and "1 intermittent finding(s) only in B: [MEDIUM] one stall (seen 1/6)" in reason


def test_verdict_names_a_regressed_figure_and_reports_a_fixed_finding_as_pass():
    cfg = GateConfig(source="t")
    res = compare_runsets(many("a", 6), many("b", 6, factor=1.5), cfg)
    verdict, code, reason = compare.judge(res, OK_GATES)
    assert (verdict, code) == ("FAIL", 1) and "3 figure(s) regressed" in reason and "fig0_ms" in reason
    res = compare_runsets(many("a", 6, findings={"fp": info("old bug")}), many("b", 6), cfg)
    verdict, code, reason = compare.judge(res, OK_GATES)
    assert (verdict, code) == ("PASS", 0) and "1 finding(s) only in A" in reason


def test_verdict_invalid_side_or_nothing_decidable():
    cfg = GateConfig(source="t")
    res = compare_runsets(many("a", 6), many("b", 6), cfg)
    bad = {**OK_GATES, "a": {"verdict": "INVALID", "reason": "target died mid-run"}}
    assert compare.judge(res, bad) == ("INVALID", 2, "side A is invalid: target died mid-run")
    res = compare_runsets(many("a", 2), many("b", 2), cfg)  # 2 values a side < min_samples
    verdict, code, reason = compare.judge(res, OK_GATES)
    assert (verdict, code) == ("INVALID", 2) and "too few samples" in reason


# ---------------------------------------------------------------- bad input


def ab_args(*argv):
    return compare.build_parser().parse_args(["--scenario", "smoke", *argv])


@pytest.mark.parametrize("argv,message", [
    (["--auralis-root", "/x"], "--auralis-root must be given twice"),
    (["--auralis-root", "/x", "--auralis-root", "/y", "--b-inject", "gap"], "apply to the reference backend"),
    (["--auralis-python", "/py"], "--auralis-python needs --auralis-root"),
    (["--b-inject", "nonsense"], "--b-inject: unknown injection 'nonsense'"),
])
def test_bad_ab_input_is_one_line(argv, message):
    with pytest.raises(RunError) as e:
        compare.side_overrides(ab_args(*argv))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_sides_get_their_own_target_options():
    a, b = compare.side_overrides(ab_args("--b-inject", "gap,boundary-click"))
    assert a == {"target": "reference", "inject": ""} and b == {"target": "reference", "inject": "boundary-click,gap"}
    a, b = compare.side_overrides(ab_args("--auralis-root", "/old", "--auralis-root", "/new", "--auralis-python", "/py"))
    assert (a["auralis_root"], b["auralis_root"], a["auralis_python"], b["auralis_python"]) == ("/old", "/new", "/py", "/py")


def test_compare_cli_bad_input_exits_2_before_running(tmp_path):
    r = subprocess.run([sys.executable, "-m", "instrument.compare", "--scenario", "smoke", "--repeat", "0",
                        "--out", str(tmp_path / "ab")], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1] == "error: --repeat must be between 1 and 50, not 0"
    assert not (tmp_path / "ab").exists()


@pytest.mark.parametrize("argv,message", [
    (["--repeat", "0"], "--repeat must be between 1 and 50"),
    (["--repeat", "2", "--ws-compression", "both"], "cannot be combined with --repeat"),
    (["--repeat", "2", "--scenario", "nope"], "unknown scenario 'nope'"),
    (["--save-baseline", "/nonexistent-dir/b.json"], "--save-baseline: directory /nonexistent-dir does not exist"),
])
def test_bad_repeat_input_is_one_line(argv, message):
    args = build_parser().parse_args(["--scenario", "smoke", *argv])
    with pytest.raises(RunError) as e:
        repeat.main(args)
    assert message in str(e.value)


# ---------------------------------------------------------------- repeats on synthetic runs

CLEAN = {"streams_total": 4, "streams_failed": 0, "loadgen_cpu_max_percent": 20, "protocol_violations": 0,
         "underruns": 0, "frame_gap_max_ms": 50, "rest_latency_p95_ms": 20, "loop_stall_max_ms": 0,
         "loop_busy_fraction": 0.05, "rss_growth_mb_per_100_cycles": 0, "tasks_growth_per_100_cycles": 0,
         "rss_peak_mb": 200}


def fake_repeats(top, ttfa, findings_per_run=None):
    for i, t in enumerate(ttfa, 1):
        d = top / f"repeat-{i}"
        d.mkdir(parents=True)
        (d / "run.json").write_text(json.dumps({"status": "ok", "scenario": "smoke", "verdict": "PASS"}))
        (d / "metrics.json").write_text(json.dumps({**CLEAN, "ttfa_p95_ms": t,
                                                    "samples": {"ttfa_ms": [t * (0.9 + 0.02 * k) for k in range(10)]}}))
        (d / "findings.json").write_text(dump_findings((findings_per_run or {}).get(i, [])))
    return top


def test_repeat_set_gated_as_one_and_reported_verdict_first(tmp_path):
    leak = Finding(kind="rss_leak", title="Memory grows", severity="HIGH", dimension="Performance", description="d",
                   impact="i", suggested_fix="f", key="rss-per-cycle")
    top = fake_repeats(tmp_path / "rep", [300, 320, 310], {2: [leak]})
    g = repeat.gate_set(top, gate=None, baseline=None, target_root=None)
    # the leak seen in one repeat of three still fails the set
    assert g["verdict"] == "FAIL" and "findings.HIGH" in g["reason"]
    doc = {"scenario": "smoke", "repeat": 3, "verdict": g["verdict"], "exit_code": g["exit_code"],
           "verdict_reason": g["reason"], "runs": [{"dir": f"repeat-{i}", "status": "ok", "verdict": "PASS"}
                                                   for i in (1, 2, 3)]}
    md = render_repeats_md(top, doc, g["lines"])
    assert md.splitlines()[2].startswith("**VERDICT: FAIL** (exit 1)")
    assert "- [HIGH] Memory grows (run-wide): 1/3 (fingerprint" in md
    assert "| ttfa_p95_ms | 310 | 300 | 320 | 300, 320, 310 |" in md


def test_saved_baseline_round_trips_and_gates_a_slower_candidate(tmp_path):
    base = fake_repeats(tmp_path / "base", [300, 305, 295])
    file = tmp_path / "baseline.json"
    assert "3 run(s) of base written" in repeat.save_baseline(base, str(file), "PASS")
    assert [m.figures["ttfa_p95_ms"] for m in load_runset(file).runs] == [300, 305, 295]
    assert "not saved" in repeat.save_baseline(base, str(tmp_path / "x.json"), "INVALID")
    assert not (tmp_path / "x.json").exists()
    # the raw TTFA samples (10 per run) decide; 2x slower is a named regression
    slow = fake_repeats(tmp_path / "slow", [600, 610])
    r = evaluate(slow, baseline=file)
    assert r.verdict == "FAIL" and any(c["figure"] == "samples.ttfa_ms" for c in r.regressions)
    same = fake_repeats(tmp_path / "same", [300, 301])
    assert evaluate(same, baseline=file).verdict == "PASS"


# ---------------------------------------------------------------- end to end


@pytest.mark.slow
def test_ab_of_reference_clean_vs_boundary_click_reports_the_clicks_and_nothing_else(tmp_path):
    out = tmp_path / "ab"
    # 20 s tracks keep one chunk boundary per stream (15 s) and halve the analysis time
    r = subprocess.run([sys.executable, "-m", "instrument.compare", "--scenario", "smoke", "--duration", "8",
                        "--track-seconds", "20", "--repeat", "2", "--a-inject", "", "--b-inject", "boundary-click",
                        "--quiet", "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert r.returncode == 1, r.stdout + r.stderr
    last = r.stdout.strip().splitlines()[-1]
    # one defect, one finding: the clicks on both paths are one cause (analysis/grouping.py)
    assert last.startswith("VERDICT: FAIL - B regresses vs A: 1 finding(s) in B and not in A"), last
    doc = json.loads((out / "compare.json").read_text())
    assert doc["order"] == ["A1", "B1", "A2", "B2"]
    assert doc["side_verdicts"]["a"]["verdict"] == "PASS" and doc["side_verdicts"]["b"]["verdict"] == "FAIL"
    cmp = doc["comparison"]
    only_b = {(f["kind"], f["title"], f["seen_b"]) for f in cmp["findings_only_b"]}
    assert only_b == {("click", "Audible click at chunk boundaries (enhanced and normal paths)", 2)}
    # nothing else: no finding only in A, no figure that moved
    assert cmp["findings_only_a"] == [] and cmp["findings_both"] == []
    assert cmp["regressions"] == [] and cmp["improvements"] == [] and cmp["changed"] == []
    md = (out / "compare.md").read_text()
    assert md.splitlines()[2].startswith("**VERDICT: FAIL** (exit 1)") and "## Findings only in B" in md
    for side in ("a", "b"):
        assert (out / side / "gate.json").is_file()
        for i in (1, 2):
            assert (out / side / f"repeat-{i}" / "report.md").is_file()
    assert leftovers(out) == []
