"""Repeated runs of one scenario (`--repeat N`) and saved baselines
(`--save-baseline FILE`) for `python -m instrument.run`.

A repeat directory holds ordinary run directories and one verdict over all:
```
RUN_DIR/
  repeat.json                 what ran: scenario, N, each repeat's status and verdict, the set's verdict
  repeat-1/ ... repeat-N/     ordinary run directories (own run.json, findings, report, gate.json)
  gate.json                   the gate over all repeats (reports.gate: figure = median of the
                              repeats, findings = union; a baseline compares per-repeat values)
  report.md                   the verdict first, then every repeat
```
The repeats are captured one after another; their analyses then run in
parallel (`instrument.run --finish`), after the last capture, so analysing
one run never steals CPU from the measurement of the next.

`compare.py` (A/B of two targets) is built from the same pieces:
`capture`, `finish_all`.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterable

from scenarios import catalogue

from .procs import OwnedProcess
from .errors import EXIT_INVALID, RunError
from .stages import execute
from .targets import PROJECT_ROOT

MAX_REPEAT = 50
REPEAT_JSON = "repeat.json"
EXIT = {"PASS": 0, "FAIL": 1, "INVALID": 2}


def default_dir(scenario: str, suffix: str = "") -> Path:
    stamp = dt.datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
    return PROJECT_ROOT / "runs" / f"{stamp}_{scenario}{suffix}"


def check_repeat(n: int) -> None:
    if not 1 <= n <= MAX_REPEAT:
        raise RunError(f"--repeat must be between 1 and {MAX_REPEAT}, not {n}")


def check_out_dir(path: Path) -> None:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise RunError(f"run directory {path} exists and is not empty")


def check_baseline_target(path: str | None) -> None:
    """Fail before an hour of runs, not after, when the file cannot be written."""
    if path and not Path(path).resolve().parent.is_dir():
        raise RunError(f"--save-baseline: directory {Path(path).parent} does not exist")


# ---------------------------------------------------------------- pieces


def read_run(run_dir: Path) -> dict[str, Any]:
    """A repeat's run.json, validated; {} for a repeat that never wrote one."""
    from analysis.rundir import RunDirError
    from analysis.rundir import read_run as read_validated

    try:
        return read_validated(run_dir)
    except RunDirError:
        return {}


def interrupted(run_dir: Path) -> bool:
    return str(read_run(run_dir).get("invalid_reason") or "").startswith("interrupted")


def capture(args: argparse.Namespace, out: Path, **overrides: Any) -> dict[str, Any]:
    """One run captured into `out` (not analysed). Returns its status."""
    sub = argparse.Namespace(**{**vars(args), "out": str(out), "repeat": 1, "save_baseline": None, **overrides})
    execute(sub, analyse=False)
    doc = read_run(out)
    return {"dir": out.name, "status": doc.get("status", "invalid"), "invalid_reason": doc.get("invalid_reason")}


def finish_all(run_dirs: Iterable[Path], *, gate: str | None = None, no_gate: bool = False,
               parallel: int | None = None) -> dict[Path, tuple[int, str]]:
    """Analyse, gate and report each run directory with `instrument.run
    --finish`, `parallel` at a time (default: one per CPU). Returns
    {dir: (exit code, its VERDICT line)}; each one's full output is in
    DIR/finish.log. Owned processes: Ctrl-C stops them all."""
    pending = [Path(d) for d in run_dirs]
    width = max(1, parallel or os.cpu_count() or 1)
    running: list[tuple[Path, OwnedProcess]] = []
    done: dict[Path, tuple[int, str]] = {}
    while pending or running:
        while pending and len(running) < width:
            d = pending.pop(0)
            argv = [sys.executable, "-m", "instrument.run", "--finish", str(d), "--quiet"]
            argv += ["--gate", gate] if gate else []
            argv += ["--no-gate"] if no_gate else []
            (d / "finish.log").unlink(missing_ok=True)
            running.append((d, OwnedProcess(f"finish {d.name}", argv, cwd=PROJECT_ROOT, log=d / "finish.log")))
        for d, p in list(running):
            if not p.alive():
                rc = p.stop(grace_s=1)
                done[d] = (EXIT_INVALID if rc is None else rc, _verdict_line(d / "finish.log"))
                running.remove((d, p))
        time.sleep(0.1)
    return done


def _verdict_line(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return "VERDICT: INVALID - no output from the analysis"
    found = [ln for ln in lines if ln.startswith("VERDICT:")]
    if found:
        return found[-1]
    tail = next((ln for ln in reversed(lines) if ln.strip()), "no output")
    return f"VERDICT: INVALID - analysis failed: {tail.strip()[:200]}"


def gate_set(path: Path, *, gate: str | None, baseline: str | None, target_root: Path | None,
             no_gate: bool = False, per_run: dict[str, str] | None = None) -> dict[str, Any]:
    """The verdict over a set of runs (a repeat directory). With --no-gate:
    the worst per-run verdict."""
    if no_gate:
        worst = max((per_run or {}).values(), key=lambda v: EXIT.get(v, 2), default="INVALID")
        return {"verdict": worst, "exit_code": EXIT.get(worst, 2), "reason": f"no gate; worst repeat {worst}",
                "lines": []}
    from reports import gate as gate_mod

    try:
        res = gate_mod.evaluate(path, gate_file=Path(gate) if gate else None,
                                baseline=Path(baseline) if baseline else None, target_root=target_root)
    except (gate_mod.GateFileError, gate_mod.MeasurementError) as e:
        return {"verdict": "INVALID", "exit_code": EXIT_INVALID, "reason": f"gate: {e}", "lines": []}
    return {"verdict": res.verdict, "exit_code": res.exit_code, "reason": res.reason, "lines": res.lines()[:-1],
            "result": res}


def target_root_of(run_dir: Path) -> Path | None:
    root = (read_run(run_dir).get("target") or {}).get("root")
    return Path(root) if root else None


def save_baseline(source: Path, out: str, verdict: str) -> str:
    """Write the figures of a run or repeat directory as a baseline file;
    never from an INVALID run (its figures cannot be trusted)."""
    if verdict == "INVALID":
        return f"baseline not saved: the run is INVALID (its figures cannot be trusted): {out}"
    from reports.gate.measurements import MeasurementError, load_runset

    try:
        rs = load_runset(source)
    except MeasurementError as e:
        return f"baseline not saved: {e}"
    Path(out).write_text(rs.to_json(), encoding="utf-8")
    return f"baseline: {len(rs.runs)} run(s) of {rs.source} written to {out}"


# ---------------------------------------------------------------- the CLI path


def main(args: argparse.Namespace) -> int:
    """`instrument.run` with --repeat N and/or --save-baseline FILE."""
    check_repeat(args.repeat)
    check_baseline_target(args.save_baseline)
    try:
        catalogue.get(args.scenario)
    except ValueError as e:
        raise RunError(str(e)) from None
    if args.ws_compression == "both":
        raise RunError("--ws-compression both runs its own pair of runs; it cannot be combined with "
                       "--repeat or --save-baseline")
    if args.repeat == 1:
        out = Path(args.out) if args.out else default_dir(args.scenario)
        code = execute(argparse.Namespace(**{**vars(args), "out": str(out)}))
        print(save_baseline(out, args.save_baseline, read_run(out).get("verdict", "INVALID")))
        print(f"VERDICT: {read_run(out).get('verdict', 'INVALID')} - {read_run(out).get('verdict_reason', '')}")
        return code
    return run_repeats(args)


def run_repeats(args: argparse.Namespace) -> int:
    if args.audit_dir:
        raise RunError("--audit-dir writes one audit per run; use it without --repeat")
    top = Path(args.out) if args.out else default_dir(args.scenario, f"_x{args.repeat}")
    check_out_dir(top)
    top.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {"tool": "earshot", "kind": "repeat", "scenario": args.scenario, "repeat": args.repeat,
                           "started_at": _now(), "runs": []}
    _save(top, doc)
    t0 = time.monotonic()
    for i in range(1, args.repeat + 1):
        print(f"repeat {i}/{args.repeat}", file=sys.stderr, flush=True)
        try:
            doc["runs"].append(capture(args, top / f"repeat-{i}"))
        except KeyboardInterrupt:
            break
        _save(top, doc)
        if interrupted(top / f"repeat-{i}"):
            print("interrupted: the remaining repeats are skipped", file=sys.stderr)
            break
    dirs = [top / r["dir"] for r in doc["runs"]]
    finished = finish_all(dirs, gate=args.gate, no_gate=args.no_gate)
    for r in doc["runs"]:
        code, line = finished.get(top / r["dir"], (EXIT_INVALID, "VERDICT: INVALID - not analysed"))
        r.update(exit_code=code, verdict=read_run(top / r["dir"]).get("verdict", "INVALID"), verdict_line=line)
    root = target_root_of(dirs[0]) if dirs else None
    if dirs:
        g = gate_set(top, gate=args.gate, baseline=args.baseline, target_root=root, no_gate=args.no_gate,
                     per_run={r["dir"]: r["verdict"] for r in doc["runs"]})
    else:
        g = {"verdict": "INVALID", "exit_code": EXIT_INVALID, "reason": "interrupted before any repeat ran",
             "lines": []}
    if len(doc["runs"]) < args.repeat and g["verdict"] != "INVALID":
        g.update(verdict="INVALID", exit_code=EXIT_INVALID,
                 reason=f"only {len(doc['runs'])} of {args.repeat} repeats ran; " + g["reason"])
    doc.update(verdict=g["verdict"], exit_code=g["exit_code"], verdict_reason=g["reason"], ended_at=_now(),
               run_s=round(time.monotonic() - t0, 1))
    _save(top, doc)
    from reports.repeats import render_repeats_md

    report = top / "report.md"
    report.write_text(render_repeats_md(top, doc, g["lines"]), encoding="utf-8")
    for r in doc["runs"]:
        print(f"  {r['dir']}: {r['verdict_line'].removeprefix('VERDICT: ')}")
    for line in g["lines"]:
        print(f"  {line}")
    if args.save_baseline:
        print(f"  {save_baseline(top, args.save_baseline, g['verdict'])}")
    print(f"  report: {report}")
    print(f"VERDICT: {g['verdict']} - {g['reason']}", flush=True)
    return g["exit_code"]


def _save(top: Path, doc: dict[str, Any]) -> None:
    from analysis.rundir import write_json

    write_json(top / REPEAT_JSON, doc)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
