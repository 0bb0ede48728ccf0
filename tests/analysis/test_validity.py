"""Vacuous runs are INVALID, naming the cause: known answers for each cause
(a family broken on purpose, users that never started, an errored check, a
stream type with no analysed audio, a target that stopped answering) and a
clean control that finds none. Also: every figure the analysis emits is in
the metric catalogue."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis import pipeline
from analysis.metrics_catalogue import undeclared
from analysis.validity import invalid_causes
from reports.gate import evaluate


def run_dir(root: Path, *, users: int = 2, started: int | None = 2, checks: dict | None = None,
            liveness: dict | None = None) -> Path:
    rd = root / "run"
    (rd / "load").mkdir(parents=True)
    doc = {"status": "ok", "scenario": "smoke", "target": {"kind": "reference"},
           "options": {"users": {"Listener": users - users // 2, "EnhancedListener": users // 2}}}
    if checks is not None:
        doc["checks"] = checks
    if liveness is not None:
        doc["liveness"] = liveness
    (rd / "run.json").write_text(json.dumps(doc))
    if started is not None:
        (rd / "load" / "progress-1.json").write_text(json.dumps({"users": 0, "users_max": started}))
    return rd


def causes_of(rd: Path) -> list[str]:
    return json.loads((rd / "metrics.json").read_text())["invalid_causes"]


def test_clean_control_has_no_cause(tmp_path):
    rd = run_dir(tmp_path)
    pipeline.analyse_run(rd)
    assert causes_of(rd) == []
    assert json.loads((rd / "metrics.json").read_text())["analysis_errors"] == 0


def test_family_broken_on_purpose_makes_the_run_invalid(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "FAMILIES", [*pipeline.FAMILIES, ("analysis.no_such_family", "analyse")])
    rd = run_dir(tmp_path)
    pipeline.analyse_run(rd)
    causes = causes_of(rd)
    assert len(causes) == 1 and causes[0].startswith(
        "analysis family failed: analysis.no_such_family.analyse: ModuleNotFoundError"), causes
    assert json.loads((rd / "metrics.json").read_text())["analysis_errors"] == 1
    res = evaluate(rd, write=False)
    assert res.verdict == "INVALID" and "analysis family failed: analysis.no_such_family" in res.reason


def test_fewer_users_than_requested(tmp_path):
    rd = run_dir(tmp_path, users=10, started=3)
    pipeline.analyse_run(rd)
    assert causes_of(rd) == ["only 3 of 10 requested users ever started"]


def test_errored_check_but_not_a_failed_recovery(tmp_path):
    checks = {"backpressure": {"outcome": "error", "error": "could not connect: timed out"},
              "recovery": {"outcome": "error", "error": "the finding itself"},
              "openapi": {"outcome": "done"}}
    rd = run_dir(tmp_path, checks=checks)
    pipeline.analyse_run(rd)
    assert causes_of(rd) == ["check backpressure errored: could not connect: timed out"]


def test_stream_type_played_without_analysed_audio():
    causes = invalid_causes({"status": "ok"}, {"audio_streams_analysed_normal": 2.0,
                                               "audio_streams_analysed_enhanced": 0.0}, [])
    assert causes == ["no analysed audio of stream type(s) played: enhanced"]


def test_hang_is_a_cause_and_a_critical_finding(tmp_path):
    hang = "target stopped answering: no health or WebSocket ping answer for 9 s"
    rd = run_dir(tmp_path, liveness={"unanswered_max_s": 9.0, "hang": hang, "since_s": 12.0,
                                     "process_state": "T (stopped)", "stopped": True})
    findings, metrics = pipeline.analyse_run(rd)
    assert causes_of(rd)[0] == hang
    [f] = [f for f in findings if f.kind == "target_hang"]
    assert f.severity == "CRITICAL" and f.location.time_s == 12.0
    assert any("could not dump" in e for e in f.evidence)
    assert metrics["liveness_unanswered_max_s"] == 9.0


def test_every_emitted_figure_is_declared(tmp_path):
    """On the synthetic directories above; the end-to-end scenario runs
    assert the same on real captures (tests/e2e/test_scenarios.py)."""
    rd = run_dir(tmp_path, liveness={"unanswered_max_s": 0.0})
    _, metrics = pipeline.analyse_run(rd)
    doc = json.loads((rd / "metrics.json").read_text())
    names = [k for k in doc if k not in ("samples", "invalid_causes")] + [f"samples.{k}" for k in doc["samples"]]
    assert undeclared(names) == []
    assert undeclared(["ttfa_p95_ms", "findings.HIGH", "audio_streams_analysed_enhanced"]) == []
    assert undeclared(["ttfa_p59_ms"]) == ["ttfa_p59_ms"]  # the check itself can fail


@pytest.mark.parametrize("name", ["streams_totl", "rss_peek_mb"])
def test_unknown_metric_names_the_closest(name):
    from analysis.metrics_catalogue import unknown_message

    assert "did you mean" in unknown_message(name)


def test_run_json_is_validated_when_read(tmp_path):
    """One shape of run.json: an old or foreign one is a one-line error."""
    from analysis.rundir import RunDirError, read_run

    rd = tmp_path / "r"
    rd.mkdir()
    good = {"schema_version": 1, "tool": "earshot", "scenario": "smoke", "status": "ok",
            "options": {"duration_s": 10, "users": {"Listener": 1}}, "target": {"kind": "reference"},
            "timings": {"run_s": 1.0}, "stages": {"load": {"status": "ok", "s": 1.0}}}
    (rd / "run.json").write_text(json.dumps(good))
    assert read_run(rd)["status"] == "ok"
    for bad, what in [({**good, "schema_version": None}, "schema_version None"),
                      ({**good, "status": "done"}, "'done' is not one of"),
                      ({**good, "stages": {"lode": {"status": "ok"}}}, "lode")]:
        (rd / "run.json").write_text(json.dumps(bad))
        with pytest.raises(RunDirError) as e:
            read_run(rd)
        assert what in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_silence_after_the_load_that_recovered_is_slow_not_hung(tmp_path):
    """Known answer from a real Auralis release run on a starved machine: the
    openapi check made the target build its schema on the loop for 9 s, then
    it answered again. That is a figure, not a hang; the same silence that
    ended the load, or that never ended, is a hang."""
    live = {"unanswered_max_s": 9.0, "hang": "target stopped answering: ... 9 s", "since_s": 111.0,
            "process_state": "R (running)", "stopped": False, "recovered": True}
    rd = run_dir(tmp_path, liveness=live)
    findings, metrics = pipeline.analyse_run(rd)
    assert causes_of(rd) == [] and not [f for f in findings if f.kind == "target_hang"]
    assert metrics["liveness_unanswered_max_s"] == 9.0
    assert invalid_causes({"liveness": live, "load_outcome": "target_hung"}, {}, []) == [live["hang"]]
    assert invalid_causes({"liveness": {**live, "recovered": False}}, {}, []) == [live["hang"]]
