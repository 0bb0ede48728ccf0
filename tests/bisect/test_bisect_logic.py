"""The bisect's search, skips, repeats, pre-checks, log and resume, and its
care for the user's repository, over real git repositories and real scratch
worktrees, with each run replaced by a stand-in that writes the run directory
a real run would (the end-to-end known answer is test_bisect_reference.py)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from instrument.bisect.__main__ import BisectError, bisect, build_parser, main, make_plan
from instrument.bisect.criteria import FindingCriterion, MetricCriterion, backend_error, metric_direction
from instrument.bisect.search import BAD, GOOD, SKIP, UNCERTAIN, Search, decide

from .repo import BACKEND, git, make_repo, repo_state

ROOT = Path(__file__).resolve().parents[2]


def fake_run(argv: list[str], log: Path) -> int:
    """A stand-in for one instrument.run: reads the checked-out commit's
    `state` file and writes what a real run of such a backend leaves."""
    root = Path(argv[argv.index("--auralis-root") + 1])
    out = Path(argv[argv.index("--out") + 1])
    out.mkdir(parents=True)
    state = (root / BACKEND / "state").read_text().strip()
    log.write_text("VERDICT: ...\n")
    k = int(out.name.rsplit("-r", 1)[1])
    if state == "broken":
        (out / "target.log").write_text('Traceback (most recent call last):\n  File "'
                                        f'{root / BACKEND / "main.py"}", line 2, in <module>\n'
                                        "    import auralis_gone\nModuleNotFoundError: No module named 'auralis_gone'\n")
        (out / "run.json").write_text(json.dumps({"status": "invalid", "invalid_reason":
                                                  "target failed to start: exited with code 1"}))
        return 2
    bad = state == "bad" or (state == "flaky" and k % 2 == 1)
    findings = [{"kind": "stream_error", "title": "Streams stopped with an error", "severity": "HIGH",
                 "location": {"stream": "s1"}, "location_text": "scenario smoke, stream s1",
                 "evidence": ["s1 (enhanced, track 1): \"timed out\""], "figures": {"streams_errored": 1}}] if bad else []
    (out / "run.json").write_text(json.dumps({"status": "ok"}))
    (out / "findings.json").write_text(json.dumps({"findings": findings}))
    (out / "metrics.json").write_text(json.dumps({"streams_failed": 1 if bad else 0}))
    (out / "streams" / "s1").mkdir(parents=True)
    (out / "streams" / "s1" / "stream.json").write_text(json.dumps({"stream_type": "enhanced"}))
    return 1 if bad else 0


def history(tmp_path: Path, states: list[str]) -> tuple[Path, list[str]]:
    commits = [("initial", {str(BACKEND / "main.py"): "app = None\n", str(BACKEND / "state"): states[0]})]
    commits += [(f"commit {i}: {s}", {str(BACKEND / "state"): s}) for i, s in enumerate(states[1:], 1)]
    repo = tmp_path / "Auralis"
    return repo, make_repo(repo, commits)


def plan_for(repo: Path, good: str, bad: str, out: Path, *extra: str):
    args = build_parser().parse_args(["--auralis-root", str(repo), "--auralis-python", sys.executable,
                                      "--good", good, "--bad", bad, "--scenario", "smoke", "--out", str(out),
                                      *(extra or ("--finding", "stream_error"))])
    return make_plan(args)


def run_bisect(plan, execute=fake_run):
    said: list[str] = []
    code = bisect(plan, execute=execute, say=said.append)
    return code, json.loads((plan.out / "bisect.json").read_text()), said


# ---------------------------------------------------------------- the search


def test_finds_the_first_bad_commit_around_a_skipped_one_and_leaves_the_repo_alone(tmp_path):
    # 0 good, 1 clean, 2 the injection on (first bad), 3 unstartable, 4 bad, 5 bad
    repo, shas = history(tmp_path, ["good", "good", "bad", "broken", "bad", "bad"])
    git(repo, "checkout", "-q", "-b", "work", shas[1])  # the user is elsewhere, with work in progress
    (repo / "notes.txt").write_text("untracked\n")
    (repo / BACKEND / "main.py").write_text("app = 'edited'\n")
    git(repo, "add", str(BACKEND / "main.py"))
    (repo / BACKEND / "state").write_text("edited but not staged\n")
    before = repo_state(repo)
    code, doc, _ = run_bisect(plan_for(repo, shas[0], shas[5], tmp_path / "b"))
    assert code == 0
    r = doc["result"]
    assert r["status"] == "found"
    assert r["first_bad"]["commit"] == shas[2] and r["first_bad"]["subject"] == "commit 2: bad"
    assert r["last_good"]["commit"] == shas[1]
    assert any("stream_error" in e for e in r["first_bad"]["evidence"])
    assert any(e.startswith("no stream_error finding") for e in r["last_good"]["evidence"])
    tested = {s["commit"]: s for s in doc["steps"]}
    assert tested[shas[3]]["verdict"] == SKIP
    assert "missing module 'auralis_gone'" in tested[shas[3]]["reason"]
    assert "auralis-web/backend/main.py:2" in tested[shas[3]]["reason"]
    assert len(tested[shas[3]]["runs"]) == 1
    assert repo_state(repo) == before, "the user's status, HEAD, branches, index and worktrees are untouched"
    assert not (tmp_path / "b" / "worktrees").exists() or not any((tmp_path / "b" / "worktrees").iterdir())
    md = (tmp_path / "b" / "bisect.md").read_text()
    assert shas[2] in md and "commit 2: bad" in md and "missing module 'auralis_gone'" in md
    assert str(tmp_path) not in md


def test_the_answer_is_a_range_when_it_hangs_on_a_skipped_commit(tmp_path):
    repo, shas = history(tmp_path, ["good", "broken", "bad"])
    code, doc, _ = run_bisect(plan_for(repo, shas[0], shas[2], tmp_path / "b"))
    assert code == 1
    assert doc["result"]["status"] == "ambiguous"
    assert [c["commit"] for c in doc["result"]["candidates"]] == shas[1:]
    assert "first_bad" not in doc["result"]


def test_disagreeing_repeats_are_uncertain_not_guessed(tmp_path):
    repo, shas = history(tmp_path, ["good", "good", "flaky", "bad"])
    code, doc, _ = run_bisect(plan_for(repo, shas[0], shas[3], tmp_path / "b", "--finding", "stream_error",
                                       "--repeat", "2"))
    assert code == 1
    step = next(s for s in doc["steps"] if s["commit"] == shas[2])
    assert step["verdict"] == UNCERTAIN and "bad in 1 of 2" in step["reason"]
    assert [c["commit"] for c in doc["result"]["candidates"]] == shas[2:]


def test_majority_decides_when_asked(tmp_path):
    repo, shas = history(tmp_path, ["good", "flaky", "bad"])  # flaky: runs 1 and 3 bad, run 2 good
    code, doc, _ = run_bisect(plan_for(repo, shas[0], shas[2], tmp_path / "b", "--finding", "stream_error",
                                       "--repeat", "3", "--majority"))
    assert code == 0
    assert doc["result"]["first_bad"]["commit"] == shas[1]
    step = next(s for s in doc["steps"] if s["commit"] == shas[1])
    assert step["split"] == {BAD: 2, GOOD: 1} and "majority bad" in step["reason"]


def test_good_revision_that_shows_the_finding_stops_with_exit_2(tmp_path):
    repo, shas = history(tmp_path, ["good", "bad", "bad"])
    with pytest.raises(BisectError, match=r"the good revision \w+ .* already shows a stream_error finding"):
        run_bisect(plan_for(repo, shas[1], shas[2], tmp_path / "b"))


def test_a_commit_that_cannot_be_checked_out_is_skipped_with_gits_reason(tmp_path):
    repo, shas = history(tmp_path, ["good", "bad"])
    plan = plan_for(repo, shas[0], shas[1], tmp_path / "b", "--finding", "stream_error",
                    "--checkout-path", "no/such/dir")
    with pytest.raises(BisectError, match=r"the good revision \w+ .* cannot be judged \(skip\): checkout failed: "
                                          r".*no/such/dir"):
        run_bisect(plan)
    assert not any((tmp_path / "b" / "worktrees").iterdir())
    assert git(repo, "worktree", "list").count("\n") == 1


def test_bad_revision_that_is_clean_stops_with_exit_2(tmp_path):
    repo, shas = history(tmp_path, ["good", "good", "good"])
    calls = []

    def counting(argv, log):
        calls.append(argv)
        return fake_run(argv, log)

    with pytest.raises(BisectError, match=r"the bad revision \w+ .* does not show a stream_error finding"):
        run_bisect(plan_for(repo, shas[0], shas[2], tmp_path / "b"), counting)
    assert len(calls) == 2  # good, then bad: nothing bisected
    assert json.loads((tmp_path / "b" / "bisect.json").read_text())["result"]["status"] == "precheck_failed"


def test_an_interrupted_bisect_resumes_where_it_stopped(tmp_path):
    repo, shas = history(tmp_path, ["good"] + ["good"] * 6 + ["bad"] * 4)
    calls: list[str] = []

    def interrupting(argv, log):
        calls.append(argv[argv.index("--out") + 1])
        if len(calls) == 4:
            fake_run(argv, log)
            raise KeyboardInterrupt
        return fake_run(argv, log)

    out = tmp_path / "b"
    with pytest.raises(BisectError, match="resume"):
        run_bisect(plan_for(repo, shas[0], shas[-1], out), interrupting)
    cut = Path(calls[-1])
    decided = [json.loads(ln) for ln in (out / "bisect-log.jsonl").read_text().splitlines()][1:]
    assert len(decided) == 3
    again: list[str] = []

    def counting(argv, log):
        again.append(argv[argv.index("--out") + 1])
        return fake_run(argv, log)

    code, doc, said = run_bisect(plan_for(repo, shas[0], shas[-1], out), counting)
    assert code == 0 and doc["result"]["first_bad"]["commit"] == shas[7]
    assert any("resuming" in s for s in said)
    assert again[0] == str(cut), "the step cut short runs again"
    assert not {Path(a).name for a in again} & {Path(c).name for c in calls[:3]}, "decided steps are not re-run"
    assert cut.with_name(cut.name + ".interrupted-1").is_dir(), "what the cut run captured is kept"
    with pytest.raises(BisectError, match="other parameters"):
        run_bisect(plan_for(repo, shas[1], shas[-1], out))


# ---------------------------------------------------------------- bad input


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "instrument.bisect", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    repo, shas = history(tmp_path, ["good", "bad"])
    base = ["--auralis-root", str(repo), "--auralis-python", sys.executable, "--scenario", "smoke"]
    cases = [
        (["--good", "nope", "--bad", shas[1], "--finding", "stream_error"], "'nope' is not a commit"),
        (["--good", shas[1], "--bad", shas[0], "--finding", "stream_error"], "no commits between"),
        (["--good", shas[0], "--bad", shas[1], "--metric", "streams_failed"], "--metric needs --threshold"),
        (["--good", shas[0], "--bad", shas[1], "--finding", "x", "--out", str(repo / "b")], "inside the Auralis"),
        (["--good", shas[0], "--bad", shas[1], "--gate", str(tmp_path / "none.toml")], "does not exist"),
    ]
    for extra, msg in cases:
        r = _cli(*base, *extra)
        assert r.returncode == 2, (extra, r.stdout, r.stderr)
        assert msg in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = _cli("--auralis-root", str(tmp_path), "--auralis-python", sys.executable, "--scenario", "smoke",
             "--good", "a", "--bad", "b", "--finding", "x")
    assert r.returncode == 2 and "not a git checkout" in r.stderr


# ---------------------------------------------------------------- pieces


def test_a_missing_module_is_named_as_the_commits_unmet_requirement(tmp_path):
    from instrument.bisect.requirements import name_unmet_requirement, requirement_for

    shas_req = make_repo(tmp_path / "R2", [("reqs", {"requirements.txt": "numpy==2.3.5\nAuralis_Gone>=1.0\n",
                                                    "auralis-web/backend/requirements.txt": "pyyaml\n"})])
    r2 = tmp_path / "R2"
    assert requirement_for(r2, shas_req[0], "auralis_gone") == "Auralis_Gone>=1.0 (requirements.txt)"
    assert requirement_for(r2, shas_req[0], "yaml") == "pyyaml (auralis-web/backend/requirements.txt)"
    assert requirement_for(r2, shas_req[0], "scipy") is None
    reason = "target failed to start: missing module 'auralis_gone' (ModuleNotFoundError: ...)"
    assert name_unmet_requirement(reason, r2, shas_req[0]).startswith(
        "unmet requirement Auralis_Gone>=1.0 (requirements.txt): target failed")
    assert name_unmet_requirement("syntax error", r2, shas_req[0]) == "syntax error"


def test_decide():
    assert decide([BAD, BAD]).verdict == BAD
    assert decide([GOOD]).verdict == GOOD
    assert decide([BAD, GOOD]).verdict == UNCERTAIN
    assert decide([BAD, GOOD, BAD]).verdict == UNCERTAIN
    assert decide([BAD, GOOD, BAD], rule="majority").verdict == BAD
    assert decide([BAD, GOOD], rule="majority").verdict == UNCERTAIN
    d = decide([SKIP, BAD], ["died", ""])
    assert d.verdict == BAD and "died" in d.reason
    assert decide([SKIP], ["missing module 'x'"]).reason == "missing module 'x'"


def test_search_steps_around_skips_like_git_bisect():
    s = Search(8)  # the first bad is index 5
    s.record(7, BAD)
    seen = []
    while (i := s.next()) is not None:
        seen.append(i)
        s.record(i, SKIP if i == 3 else (BAD if i >= 5 else GOOD))
    o = s.outcome()
    assert o.status == "found" and o.first_bad == 5 and o.last_good == 4
    assert len(seen) <= 4


def test_backend_error_names_the_cause(tmp_path):
    log = ('INFO: starting\nTraceback (most recent call last):\n  File "/x/auralis-web/backend/main.py", line 7, '
           "in <module>\n    import librosa\nModuleNotFoundError: No module named 'librosa'\n")
    assert backend_error(log) == ("missing module 'librosa' (ModuleNotFoundError: No module named 'librosa' "
                                  "at /x/auralis-web/backend/main.py:7)")
    syn = '  File "/r/auralis-web/backend/main.py", line 3\n    def (:\n        ^\nSyntaxError: invalid syntax\n'
    assert backend_error(syn, Path("/r")) == "syntax error (SyntaxError: invalid syntax at auralis-web/backend/main.py:3)"
    assert backend_error("all fine\n") is None
    deep = ('Traceback (most recent call last):\n  File "/r/auralis/dsp/limiter.py", line 120, in process\n'
            '    env = maximum_filter1d(x, size=n, origin=n // 2)\n'
            '  File "/venv/lib/scipy/ndimage/_filters.py", line 1500, in maximum_filter1d\n'
            "    raise ValueError('invalid origin')\nValueError: invalid origin\n")
    assert backend_error(deep, Path("/r")) == "ValueError: invalid origin at auralis/dsp/limiter.py:120"
    assert backend_error(deep) == "ValueError: invalid origin at /venv/lib/scipy/ndimage/_filters.py:1500"


def test_metric_criterion_direction(tmp_path):
    assert metric_direction("ttfa_p95_ms") == "above"
    run = tmp_path / "r"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"ttfa_p95_ms": 900.0}))
    assert MetricCriterion("ttfa_p95_ms", 500, "above").judge(run).verdict == BAD
    assert MetricCriterion("ttfa_p95_ms", 1000, "above").judge(run).verdict == GOOD
    assert MetricCriterion("absent", 1, "above").judge(run).verdict == SKIP


def test_finding_criterion_narrowed_by_stream_type_and_location(tmp_path):
    run = tmp_path / "r"
    (run / "streams" / "s1").mkdir(parents=True)
    (run / "streams" / "s1" / "stream.json").write_text(json.dumps({"stream_type": "enhanced"}))
    (run / "findings.json").write_text(json.dumps({"findings": [
        {"kind": "click", "location": {"stream": "s1", "file": "core/chunks.py"}, "location_text": "core/chunks.py:9"}]}))
    assert FindingCriterion("click").judge(run).verdict == BAD
    assert FindingCriterion("click", "enhanced", "chunks.py").judge(run).verdict == BAD
    assert FindingCriterion("click", "normal").judge(run).verdict == GOOD
    assert FindingCriterion("click", location="other.py").judge(run).verdict == GOOD
    assert FindingCriterion("gap").judge(run).verdict == GOOD


def test_cli_parses(tmp_path):
    assert main(["--good", "a", "--bad", "b", "--scenario", "smoke", "--finding", "x", "--auralis-root",
                 str(tmp_path / "missing"), "--auralis-python", sys.executable]) == 2


def test_gate_criterion_reads_the_runs_gate_verdict(tmp_path):
    from instrument.bisect.criteria import GateCriterion

    gate = GateCriterion(str(tmp_path / "g.toml"))
    assert gate.run_args() == ["--gate", str(tmp_path / "g.toml")]
    run = tmp_path / "r"
    run.mkdir()
    (run / "gate.json").write_text(json.dumps({"rules": [
        {"status": "failed", "kind": "rule", "expr": "streams_failed == 0", "message": "streams_failed = 2"},
        {"status": "passed", "kind": "rule", "expr": "underruns == 0"}]}))
    (run / "run.json").write_text(json.dumps({"verdict": "FAIL", "verdict_reason": "1 rule failed"}))
    j = gate.judge(run)
    assert j.verdict == BAD and j.evidence == ["failed: [rule] streams_failed == 0: streams_failed = 2"]
    (run / "run.json").write_text(json.dumps({"verdict": "PASS", "verdict_reason": "all rules pass"}))
    assert gate.judge(run).verdict == GOOD
    (run / "run.json").write_text(json.dumps({"verdict": "INVALID", "verdict_reason": "target died"}))
    assert gate.judge(run).verdict == SKIP and "target died" in gate.judge(run).reason


def test_metric_criterion_takes_the_metrics_direction_unless_told(tmp_path):
    repo, shas = history(tmp_path, ["good", "bad"])
    plan = plan_for(repo, shas[0], shas[1], tmp_path / "b", "--metric", "ttfa_p95_ms", "--threshold", "500")
    assert plan.criterion.to_dict() == {"type": "metric", "metric": "ttfa_p95_ms", "threshold": 500.0,
                                        "bad_when": "above"}
    plan = plan_for(repo, shas[0], shas[1], tmp_path / "b", "--metric", "ttfa_p95_ms", "--threshold", "500",
                    "--bad-when", "below")
    assert plan.criterion.bad_when == "below"
