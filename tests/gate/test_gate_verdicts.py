"""Known answers for the release gate on synthetic run directories: the
verdict and exit code follow the rules, an untrustworthy run is INVALID
before it can FAIL, and a bad rules file is named with its line."""
from __future__ import annotations

import json

import pytest

from analysis.model import Finding, dump_findings
from reports.gate import GateFileError, evaluate

CLEAN = {"streams_total": 4, "streams_failed": 0, "loadgen_cpu_max_percent": 20, "protocol_violations": 0,
         "underruns": 0, "ttfa_p95_ms": 300, "ttfa_own_p95_ms": 300, "frame_gap_max_ms": 50, "rest_latency_p95_ms": 20,
         "loop_stall_max_ms": 0, "loop_busy_fraction": 0.05, "rss_growth_mb_per_100_cycles": 0,
         "tasks_growth_per_100_cycles": 0, "rss_peak_mb": 200}


def run_dir(tmp_path, metrics=None, findings=(), status="ok"):
    d = tmp_path / "run"
    d.mkdir()
    (d / "run.json").write_text(json.dumps({"status": status, "invalid_reason": "target died mid-run"
                                            if status != "ok" else None, "scenario": "smoke"}))
    m = dict(CLEAN if metrics is None else metrics)
    counts = {s: sum(1 for f in findings if f.severity == s) for s in ("CRITICAL", "HIGH", "MEDIUM", "LOW")}
    m.update({f"findings.{k}": v for k, v in counts.items()}, **{"findings.total": len(findings)})
    (d / "metrics.json").write_text(json.dumps(m))
    (d / "findings.json").write_text(dump_findings(list(findings)))
    return d


def finding(sev):
    return Finding(kind="k", title="t", severity=sev, dimension="Performance", description="d", impact="i",
                   suggested_fix="f")


def test_clean_run_passes(tmp_path):
    r = evaluate(run_dir(tmp_path))
    assert (r.verdict, r.exit_code) == ("PASS", 0)
    assert json.loads((tmp_path / "run" / "gate.json").read_text())["verdict"] == "PASS"
    assert r.lines()[-1].startswith("PASS") or "PASS" in r.lines()[-1]


def test_high_finding_fails_naming_the_rule(tmp_path):
    r = evaluate(run_dir(tmp_path, findings=[finding("HIGH")]))
    assert (r.verdict, r.exit_code) == ("FAIL", 1)
    assert any("findings.HIGH" in line for line in r.lines())


def test_figure_over_threshold_fails_with_its_value(tmp_path):
    r = evaluate(run_dir(tmp_path, metrics={**CLEAN, "loop_stall_max_ms": 237.9}))
    assert r.verdict == "FAIL"
    assert any("loop_stall_max_ms" in line and "237.9" in line for line in r.lines())


def test_invalid_run_is_invalid_before_it_can_fail(tmp_path):
    r = evaluate(run_dir(tmp_path, findings=[finding("CRITICAL")], status="invalid"))
    assert (r.verdict, r.exit_code) == ("INVALID", 2)


def test_bad_rules_file_names_the_line(tmp_path):
    gate = tmp_path / "gate.toml"
    gate.write_text('description = "x"\n\n[[rule]]\nexpr = "ttfa_p95_ms <"\n')
    with pytest.raises(GateFileError) as e:
        evaluate(run_dir(tmp_path), gate_file=gate)
    assert f"{gate}:4: rule #1: bad expr" in str(e.value)
