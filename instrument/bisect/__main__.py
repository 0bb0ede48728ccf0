"""`python -m instrument.bisect --auralis-root R --auralis-python P --good REV --bad REV --scenario S
CRITERION`: the first commit of R's first-parent history between REV and REV
that shows CRITERION, found by full earshot runs of scenario S on commits
checked out into scratch worktrees (the user's checkout is never touched).

Exit codes: 0 the first bad commit is named; 1 the answer is a range (it
depends on skipped or uncertain commits, all named); 2 bad input, a
pre-check that failed (good shows the criterion, or bad does not), or an
interrupted bisect (run the same command again to resume).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

from . import gitrepo
from .criteria import Criterion, FindingCriterion, GateCriterion, MetricCriterion, metric_direction
from .log import BisectLog, LogMismatch
from .search import BAD, GOOD, Search
from .steps import Execute, Interrupted, Plan, judge_commit, run_in_process

EXIT_FOUND, EXIT_RANGE, EXIT_INVALID = 0, 1, 2


class BisectError(Exception):
    """Bad input or a failed pre-check; the message is the one-line error."""


def build_parser() -> argparse.ArgumentParser:
    from instrument.targets import DEFAULT_STANDIN

    p = argparse.ArgumentParser(prog="python -m instrument.bisect", description=__doc__.split("\n\n")[0])
    p.add_argument("--auralis-root", default=os.environ.get("AURALIS_ROOT"), help="a git checkout of Auralis")
    p.add_argument("--auralis-python", default=os.environ.get("AURALIS_PYTHON"),
                   help="the Python of an environment that can run every commit of the range")
    p.add_argument("--good", required=True, help="a revision without the defect")
    p.add_argument("--bad", required=True, help="a later revision with it (on the same first-parent line)")
    p.add_argument("--scenario", required=True, help="the scenario each step runs (see instrument.run --list-scenarios)")
    c = p.add_mutually_exclusive_group(required=True)
    c.add_argument("--finding", metavar="KIND", help="a commit is bad when a run has a finding of this kind")
    c.add_argument("--gate", metavar="FILE", help="a commit is bad when this gate fails its run")
    c.add_argument("--metric", metavar="NAME", help="a commit is bad when metrics.json's NAME passes --threshold")
    p.add_argument("--stream-type", choices=["normal", "enhanced"], help="with --finding: only on this stream type")
    p.add_argument("--location", help="with --finding: only findings whose location contains this text")
    p.add_argument("--threshold", type=float, help="with --metric: the threshold")
    p.add_argument("--bad-when", choices=["above", "below"],
                   help="with --metric: which side of the threshold is bad (default: the metric's direction in "
                        "the shipped gate, e.g. above for latencies)")
    p.add_argument("--repeat", type=int, default=1, metavar="N", help="runs per commit (default 1)")
    p.add_argument("--majority", action="store_true",
                   help="with --repeat: a strict majority of the repeats decides a step; by default any "
                        "disagreement makes the step uncertain")
    p.add_argument("--out", help="bisect directory (default runs/<timestamp>_bisect_<scenario>); "
                                 "an existing one with a bisect log is resumed")
    p.add_argument("--checkout-path", action="append", default=[], metavar="PATH",
                   help="check out only this path of each commit (repeatable; e.g. auralis and "
                        "auralis-web/backend for a partial clone)")
    # instrument.run options every step passes on
    p.add_argument("--duration", type=float, help="seconds of load per run (default: the scenario's)")
    p.add_argument("--track-seconds", type=float, help="length of each generated test track")
    p.add_argument("--users", type=int, help="total users")
    p.add_argument("--scenario-opt", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--auralis-dsp-standin", nargs="?", const=str(DEFAULT_STANDIN), default=None, metavar="DIR",
                   help="put the auralis_dsp stand-in on the backend's path (as instrument.run)")
    p.add_argument("--startup-timeout", type=float, help="seconds to wait for the backend's health")
    p.add_argument("--loop", choices=["uvloop", "asyncio"], help="event loop of the target")
    return p


def _run_args(a: argparse.Namespace) -> list[str]:
    out: list[str] = []
    for opt in ("duration", "track_seconds", "users", "startup_timeout", "loop"):
        v = getattr(a, opt)
        if v is not None:
            out += [f"--{opt.replace('_', '-')}", f"{v:g}" if isinstance(v, float) else str(v)]
    for kv in a.scenario_opt:
        out += ["--scenario-opt", kv]
    if a.auralis_dsp_standin:
        out += ["--auralis-dsp-standin", str(Path(a.auralis_dsp_standin).resolve())]
    return out


def _criterion(a: argparse.Namespace) -> Criterion:
    if (a.stream_type or a.location) and not a.finding:
        raise BisectError("--stream-type and --location narrow --finding")
    if (a.threshold is not None or a.bad_when) and not a.metric:
        raise BisectError("--threshold and --bad-when go with --metric")
    if a.finding:
        return FindingCriterion(a.finding, a.stream_type, a.location)
    if a.gate:
        gate = Path(a.gate).expanduser().resolve()
        if not gate.is_file():
            raise BisectError(f"gate file {a.gate} does not exist")
        from reports.gate.rules import load_gate_file

        try:
            load_gate_file(gate)
        except Exception as e:  # noqa: BLE001 - any unusable gate file is bad input
            raise BisectError(f"gate file {a.gate}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        return GateCriterion(str(gate))
    if a.threshold is None:
        raise BisectError("--metric needs --threshold X")
    bad_when = a.bad_when or metric_direction(a.metric)
    if bad_when is None:
        raise BisectError(f"metric {a.metric} has no preferred direction: say --bad-when above|below")
    return MetricCriterion(a.metric, a.threshold, bad_when)


def make_plan(a: argparse.Namespace) -> Plan:
    from scenarios import catalogue

    if not a.auralis_root:
        raise BisectError("--auralis-root PATH is required (or AURALIS_ROOT)")
    if not a.auralis_python:
        raise BisectError("--auralis-python PATH is required (or AURALIS_PYTHON)")
    if not 1 <= a.repeat <= 50:
        raise BisectError(f"--repeat must be between 1 and 50, not {a.repeat}")
    try:
        catalogue.get(a.scenario)
    except ValueError as e:
        raise BisectError(str(e)) from None
    py = Path(a.auralis_python).expanduser()
    if not py.is_file() or not os.access(py, os.X_OK):
        raise BisectError(f"Auralis Python {a.auralis_python} is not an executable")
    criterion = _criterion(a)
    try:
        repo = gitrepo.toplevel(a.auralis_root)
        good = gitrepo.resolve(repo, a.good)
        bad = gitrepo.resolve(repo, a.bad)
        if good == bad:
            raise BisectError("--good and --bad are the same commit")
        commits = gitrepo.first_parent_range(repo, good, bad)
        good_c = gitrepo.commit_info(repo, good)
    except gitrepo.GitError as e:
        raise BisectError(str(e)) from None
    stamp = dt.datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
    from instrument.targets import PROJECT_ROOT

    out = Path(a.out).expanduser().resolve() if a.out else PROJECT_ROOT / "runs" / f"{stamp}_bisect_{a.scenario}"
    if gitrepo.inside(out, repo):
        raise BisectError(f"--out {out} is inside the Auralis checkout; the bisect never writes there")
    return Plan(repo=repo, python=str(py.absolute()), good=good_c,
                bad=commits[-1], commits=commits, criterion=criterion, scenario=a.scenario, out=out,
                repeat=a.repeat, rule="majority" if a.majority else "unanimous", run_args=_run_args(a),
                paths=list(a.checkout_path))


# ---------------------------------------------------------------- the loop


def bisect(plan: Plan, execute: Execute = run_in_process, say: Callable[[str], None] = print) -> int:
    """Run (or resume) the bisect; writes bisect.json/bisect.md after every
    step. Returns the exit code."""
    log = BisectLog(plan.out)
    try:
        resumed = log.start(plan.params())
    except LogMismatch as e:
        raise BisectError(str(e)) from None
    done = {s["commit"]: s for s in log.steps}
    if resumed:
        say(f"resuming {plan.out.name}: {len(done)} step(s) already decided")
    state = {"status": "running", "message": ""}
    n = len(plan.commits)
    say(f"bisecting {n} commit(s) after {plan.good.short} up to {plan.bad.short} for {plan.criterion.describe()}"
        f" ({plan.repeat} run(s) a commit" + ("" if resumed else
                                             f"; about {Search(n).steps_left() + 2} commits to test, more if some "
                                             "are skipped") + ")")

    def step(commit: gitrepo.Commit, role: str) -> dict[str, Any]:
        if commit.sha in done:
            return done[commit.sha]
        say(f"  {role}: {commit.short} {commit.date[:10]} {commit.subject[:70]}")
        rec = judge_commit(plan, commit, role, execute, say=say)
        log.add_step(rec)
        done[commit.sha] = rec
        say(f"  -> {rec['verdict']}: {rec['reason']} ({rec['wall_s']:.0f} s)")
        write_reports(plan, log.steps, state)
        return rec

    try:
        g = step(plan.good, "good check")
        if g["verdict"] != GOOD:
            state.update(status="precheck_failed", message=_precheck_message(plan, g, "good"))
            write_reports(plan, log.steps, state)
            raise BisectError(state["message"])
        b = step(plan.bad, "bad check")
        if b["verdict"] != BAD:
            state.update(status="precheck_failed", message=_precheck_message(plan, b, "bad"))
            write_reports(plan, log.steps, state)
            raise BisectError(state["message"])
        search = Search(n)
        search.record(n - 1, BAD)
        for i, c in enumerate(plan.commits[:-1]):
            if c.sha in done:
                search.record(i, done[c.sha]["verdict"])
        while (i := search.next()) is not None:
            say(f"step: {len(search.untested())} untested, ~{search.steps_left()} step(s) left")
            search.record(i, step(plan.commits[i], "step")["verdict"])
    except (Interrupted, KeyboardInterrupt) as e:
        state.update(status="interrupted",
                     message=f"{e or 'interrupted'}; run the same command with --out {_shorten(str(plan.out))} to resume "
                             "from the bisect log")
        write_reports(plan, log.steps, state)
        raise BisectError(state["message"]) from None
    out = search.outcome()
    state.update(status=out.status, message="")
    doc = write_reports(plan, log.steps, state)
    r = doc["result"]
    if out.status == "found":
        fb = r["first_bad"]
        say(f"first bad commit: {fb['commit']} {fb['date'][:10]} {fb['subject']}")
        say(f"last good commit: {r['last_good']['commit']} {r['last_good']['subject']}")
    else:
        say(f"the first bad commit is one of {len(r['candidates'])}: "
            + ", ".join(f"{c['short']} ({c.get('verdict', 'untested')})" for c in r["candidates"]))
    say(f"report: {plan.out / 'bisect.md'}")
    return EXIT_FOUND if out.status == "found" else EXIT_RANGE


def _shorten(path: str) -> str:
    """Published text says ~ for the home directory."""
    home = os.path.expanduser("~")
    return path.replace(home, "~", 1) if home and home != "/" and path.startswith(home) else path


def _precheck_message(plan: Plan, rec: dict[str, Any], which: str) -> str:
    return _precheck_text(plan, rec, which) + " (the bisect log keeps this result: start over with a new --out)"


def _precheck_text(plan: Plan, rec: dict[str, Any], which: str) -> str:
    c = f"{rec['short']} ({rec['subject'][:60]})"
    if which == "good":
        if rec["verdict"] == BAD:
            return f"the good revision {c} already shows {plan.criterion.describe()}: {rec['reason']}"
        return f"the good revision {c} cannot be judged ({rec['verdict']}): {rec['reason']}"
    if rec["verdict"] == GOOD:
        return f"the bad revision {c} does not show {plan.criterion.describe()}: {rec['reason']}"
    return f"the bad revision {c} cannot be judged ({rec['verdict']}): {rec['reason']}"


def build_doc(plan: Plan, steps: list[dict[str, Any]], state: dict[str, Any]) -> dict[str, Any]:
    """bisect.json: what was bisected, every tested commit, the answer."""
    by_sha = {s["commit"]: s for s in steps}
    index = {c.sha: i for i, c in enumerate(plan.commits)}
    search = Search(len(plan.commits))
    for s in steps:
        if s["commit"] in index:
            search.record(index[s["commit"]], s["verdict"])
    result: dict[str, Any] = {"status": state["status"], "message": state.get("message", "")}
    if state["status"] in ("found", "ambiguous", "running", "interrupted"):
        if by_sha.get(plan.bad.sha, {}).get("verdict") == BAD:
            out = search.outcome()
            last_good = plan.commits[out.last_good] if out.last_good >= 0 else plan.good
            result["last_good"] = {**last_good.to_dict(), "evidence": by_sha.get(last_good.sha, {}).get("evidence", [])}
            result["candidates"] = [{**plan.commits[i].to_dict(), "verdict": by_sha.get(plan.commits[i].sha, {}).get(
                "verdict"), "reason": by_sha.get(plan.commits[i].sha, {}).get("reason")} for i in out.candidates]
            if out.status == "found":
                fb = plan.commits[out.first_bad]
                result["first_bad"] = {**fb.to_dict(), "evidence": by_sha[fb.sha].get("evidence", [])}
    runs = sum(len(s.get("runs", [])) for s in steps)
    return {
        "tool": "earshot", "kind": "bisect", "schema_version": 1,
        "repo": plan.repo.name, "scenario": plan.scenario, "criterion": plan.criterion.to_dict(),
        "criterion_text": plan.criterion.describe(), "repeat": plan.repeat, "rule": plan.rule,
        "run_args": plan.run_args, "checkout_paths": plan.paths,
        "good": plan.good.to_dict(), "bad": plan.bad.to_dict(), "commits_in_range": len(plan.commits),
        "result": result, "steps": steps, "runs_total": runs,
        "wall_s_total": round(sum(s.get("wall_s", 0) for s in steps), 1),
        "updated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def write_reports(plan: Plan, steps: list[dict[str, Any]], state: dict[str, Any]) -> dict[str, Any]:
    from reports.bisect import render_bisect_md

    doc = build_doc(plan, steps, state)
    plan.out.mkdir(parents=True, exist_ok=True)
    tmp = plan.out / "bisect.json.tmp"
    tmp.write_text(json.dumps(doc, indent=1, default=str))
    os.replace(tmp, plan.out / "bisect.json")
    (plan.out / "bisect.md").write_text(render_bisect_md(doc), encoding="utf-8")
    return doc


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # SIGTERM (a CI runner cancelling us) is handled like Ctrl-C: the log is kept
    from instrument.stages import install_stop_signals

    install_stop_signals()  # the runs it makes install the same: SIGINT and SIGTERM stop alike, each named
    t0 = time.monotonic()
    try:
        plan = make_plan(args)
        code = bisect(plan, say=lambda s: print(s, flush=True))
    except BisectError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        print("error: interrupted; run the same command again to resume", file=sys.stderr)
        return EXIT_INVALID
    print(f"wall time {time.monotonic() - t0:.0f} s")
    return code


if __name__ == "__main__":
    sys.exit(main())
