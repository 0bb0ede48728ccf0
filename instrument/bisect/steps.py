"""Testing one commit: check it out into a scratch worktree of ours, run the
scenario on it `repeat` times through `instrument.run` (each run a full
earshot run with its own run directory, fresh HOME and cold caches), judge
each run with the criterion, and decide the step by its repeats."""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .criteria import Criterion, Judgement, run_ok, skip_reason
from .gitrepo import Commit, GitError, Worktree, remove_worktree
from .requirements import name_unmet_requirement
from .search import SKIP, decide

# execute(argv, log_path) -> exit code: one instrument.run invocation
Execute = Callable[[list[str], Path], int]


@dataclass
class Plan:
    repo: Path
    python: str
    good: Commit
    bad: Commit
    commits: list[Commit]  # first-parent, after good up to and including bad, oldest first
    criterion: Criterion
    scenario: str
    out: Path
    repeat: int = 1
    rule: str = "unanimous"
    run_args: list[str] = field(default_factory=list)  # more instrument.run options
    paths: list[str] = field(default_factory=list)  # check out only these

    def params(self) -> dict[str, Any]:
        """What identifies this bisect in its log (a resume must match)."""
        return {"repo": str(self.repo), "python": self.python, "good": self.good.sha, "bad": self.bad.sha,
                "criterion": self.criterion.to_dict(), "scenario": self.scenario, "repeat": self.repeat,
                "rule": self.rule, "run_args": self.run_args, "paths": self.paths}


def run_in_process(argv: list[str], log_path: Path) -> int:
    """`python -m instrument.run ARGV` in this process, its console output
    into `log_path`. instrument.run owns the run: its own stages, analysis,
    cleanup of every process it started."""
    from instrument import run as run_mod

    with open(log_path, "w", encoding="utf-8") as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
        try:
            return run_mod.main(argv)
        except SystemExit as e:  # argparse refusing an option
            return int(e.code) if isinstance(e.code, int) else 2


def run_argv(plan: Plan, root: Path, run_dir: Path) -> list[str]:
    return ["--target", "auralis", "--auralis-root", str(root), "--auralis-python", plan.python,
            "--scenario", plan.scenario, "--out", str(run_dir), "--quiet",
            *plan.criterion.run_args(), *plan.run_args]


def _keep_leftover(path: Path) -> None:
    """A run directory of a step that was cut short: kept, renamed aside."""
    for p in (path, path.with_name(path.name + ".log")):
        if p.exists():
            n = 1
            while p.with_name(f"{p.name}.interrupted-{n}").exists():
                n += 1
            p.rename(p.with_name(f"{p.name}.interrupted-{n}"))


def _last_exception(run_dir: Path, root: Path) -> str:
    """The backend's own last word on what went wrong: the cause behind a
    finding that only names its symptom ("Failed to process audio chunk 0")."""
    from .criteria import backend_error

    log = run_dir / "target.log"
    err = backend_error(log.read_text(errors="replace"), root) if log.exists() else None
    return f"last exception in target.log: {err or 'none'}"


def never_started(run_dir: Path) -> bool:
    from instrument.repeat import read_run

    doc = read_run(run_dir)
    return not doc or str(doc.get("invalid_reason") or "").startswith("target failed to start")


class Interrupted(Exception):
    """The user stopped a run (Ctrl-C / SIGTERM): stop the bisect, keep the log."""


def judge_commit(plan: Plan, commit: Commit, role: str, execute: Execute = run_in_process,
                say: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """Run and judge one commit; returns the step record for the log."""
    t_step = time.monotonic()
    runs: list[dict[str, Any]] = []
    judgements: list[Judgement] = []
    wt_path = plan.out / "worktrees" / commit.short
    wt = Worktree(plan.repo, commit.sha, wt_path, plan.paths)
    try:
        root = wt.create()
    except GitError as e:  # a commit we cannot check out cannot be judged: skipped, with git's reason
        remove_worktree(plan.repo, wt_path)
        say(f"    checkout failed: {e}")
        return {**commit.to_dict(), "role": role, "verdict": SKIP, "reason": f"checkout failed: {e}",
                "split": {SKIP: 1}, "runs": [], "evidence": [], "wall_s": round(time.monotonic() - t_step, 1)}
    try:
        for k in range(1, plan.repeat + 1):
            run_dir = plan.out / "runs" / f"{commit.short}-r{k}"
            _keep_leftover(run_dir)
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            log = run_dir.with_name(run_dir.name + ".log")
            t0 = time.monotonic()
            code = execute(run_argv(plan, root, run_dir), log)
            wall = round(time.monotonic() - t0, 1)
            from instrument.repeat import interrupted

            if interrupted(run_dir):
                raise Interrupted(f"interrupted during the run of {commit.short}")
            if run_ok(run_dir):
                j = plan.criterion.judge(run_dir)
                j.evidence = j.evidence + [_last_exception(run_dir, root)]
            else:
                j = Judgement(SKIP, name_unmet_requirement(skip_reason(run_dir, log, root), plan.repo, commit.sha))
            judgements.append(j)
            runs.append({"dir": str(run_dir.relative_to(plan.out)), "verdict": j.verdict, "reason": j.reason,
                         "exit_code": code, "wall_s": wall})
            say(f"    run {k}/{plan.repeat}: {j.verdict} ({j.reason}) {wall:.0f} s")
            # a backend that cannot start will not start on the next try either
            if j.verdict == SKIP and never_started(run_dir):
                break
    finally:
        wt.remove()
    d = decide([j.verdict for j in judgements], [j.reason for j in judgements], rule=plan.rule)
    evidence = next((j.evidence for j in judgements if j.verdict == d.verdict), judgements[0].evidence)
    return {**commit.to_dict(), "role": role, "verdict": d.verdict, "reason": d.reason, "split": d.split,
            "runs": runs, "evidence": evidence, "wall_s": round(time.monotonic() - t_step, 1)}
