"""`python -m instrument.run --scenario NAME`: one whole run.

Launch the target under the agent, load test tracks through its own API,
drive the scenario with Locust, stop everything, analyse, gate, report, and
print the verdict last. Whatever happens (a target that dies or hangs,
Ctrl-C or SIGTERM, a loader that crashes, a full disk) what was captured is
analysed and reported, no child process survives, and the exit code says
what happened: 0 pass, 1 gate failed, 2 invalid run or bad input.

This module is the command line (options in `build_parser`, dispatch in
`main`); the run itself is the named stages of instrument.stages.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

from scenarios import catalogue

from .errors import EXIT_FAIL, EXIT_INVALID, EXIT_PASS, RunError, disk_full_message, is_disk_full
from .procs import stop_all
from .stages import Run, execute, finish, install_stop_signals, parse_opts
from .targets import DEFAULT_STANDIN, PROJECT_ROOT

__all__ = ["EXIT_PASS", "EXIT_FAIL", "EXIT_INVALID", "RunError", "Run", "build_parser", "execute", "finish",
           "main", "parse_opts"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m instrument.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", help="scenario name (see --list-scenarios)")
    p.add_argument("--list-scenarios", action="store_true", help="list scenarios and exit")
    p.add_argument("--list-injections", action="store_true", help="list the reference backend's injections")
    p.add_argument("--list-metrics", action="store_true",
                   help="list every metric a run can produce (name, unit, better, meaning) and exit")
    p.add_argument("--target", choices=["reference", "auralis"], default="reference")
    p.add_argument("--auralis-root", default=os.environ.get("AURALIS_ROOT"), help="an Auralis checkout")
    p.add_argument("--auralis-python", default=os.environ.get("AURALIS_PYTHON"),
                   help="the Python of that checkout's environment")
    p.add_argument("--auralis-dsp-standin", nargs="?", const=str(DEFAULT_STANDIN), default=None, metavar="DIR",
                   help="put the pure-numpy auralis_dsp stand-in (default: ../shared/lab) on the backend's path")
    p.add_argument("--inject", default="", help="reference backend defect injections, comma-separated")
    p.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop",
                   help="event loop of the target (Auralis ships with uvloop)")
    p.add_argument("--duration", type=float, help="seconds of load (default: the scenario's)")
    p.add_argument("--users", type=int, help="total users (spread over the scenario's user classes)")
    p.add_argument("--spawn-rate", type=float, help="users started per second")
    p.add_argument("--scenario-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="override a scenario option (repeatable)")
    p.add_argument("--track-seconds", type=float,
                   help="length of each generated test track (default: each signal's own, 60-90 s)")
    p.add_argument("--tracks", metavar="A,B,...",
                   help="test tracks to play, comma-separated (default: the scenario's; see analysis/signals.py)")
    p.add_argument("--track-file", action="append", default=[], metavar="PATH",
                   help="your own audio file to play (repeatable; any format soundfile decodes); without --tracks "
                        "the run plays only these files")
    p.add_argument("--locust-workers", type=int, default=0, help="run Locust as a master with N local workers")
    p.add_argument("--ws-compression", choices=["on", "off", "both"], default="on",
                   help="offer permessage-deflate as browsers do (default on); 'both' runs the scenario with it "
                        "on and off and reports them side by side")
    p.add_argument("--out", help="run directory (default runs/<timestamp>_<scenario>)")
    p.add_argument("--port", type=int, help="target port (default: a free loopback port)")
    p.add_argument("--startup-timeout", type=float, default=90.0, help="seconds to wait for the target's health")
    p.add_argument("--stall-threshold-ms", type=float, default=50.0, help="loop stall threshold (>= 10)")
    p.add_argument("--trace-memory", action="store_true", help="tracemalloc snapshots inside the target")
    p.add_argument("--trace-frames", type=int, default=10)  # each frame costs every traced allocation
    p.add_argument("--profile", choices=["none", "pyinstrument", "yappi"], default="none")
    p.add_argument("--monitor", action="store_true", help="start aiomonitor inside the target on loopback")
    p.add_argument("--coverage", action="store_true",
                   help="measure which of the target's own lines the scenario ran (coverage.py inside the target)")
    p.add_argument("--gate", help="gate rules TOML (default: shipped rules, or the target's pyproject)")
    p.add_argument("--baseline", help="baseline run directory, directory of repeat-*/ runs, or saved baseline file")
    p.add_argument("--repeat", type=int, default=1, metavar="N",
                   help="run the scenario N times into RUN_DIR/repeat-1..N and gate them together")
    p.add_argument("--save-baseline", metavar="FILE", help="write this run's figures (every repeat's) as a baseline file")
    p.add_argument("--finish", metavar="RUN_DIR", help="analyse, gate and report an existing run directory again")
    p.add_argument("--no-gate", action="store_true", help="report only; verdict from findings")
    p.add_argument("--audit-dir", help="also write the audit Markdown into this folder (e.g. docs/audits)")
    p.add_argument("--quiet", action="store_true", help="no live progress line")
    p.add_argument("--checks", help="post-load checks to run instead of the scenario's, comma-separated "
                                    "(see instrument/checks.py)")
    return p


def compare_compression(args: argparse.Namespace) -> int:
    """The same scenario with permessage-deflate on, then off, side by side."""
    from reports.side_by_side import render

    stamp = dt.datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
    base = Path(args.out) if args.out else PROJECT_ROOT / "runs" / f"{stamp}_{args.scenario}_compression"
    codes, runs = [], []
    for mode in ("on", "off"):
        sub = argparse.Namespace(**{**vars(args), "ws_compression": mode, "out": str(base / f"compression-{mode}")})
        codes.append(execute(sub))
        runs.append((f"deflate {mode}", base / f"compression-{mode}"))
    path = render(runs, base / "compression.md", f"{args.scenario}: permessage-deflate on vs off")
    print(path.read_text())
    print(f"comparison: {path}")
    return max(codes)


def _finish_existing(args: argparse.Namespace) -> int:
    from analysis.rundir import RunDirError, read_run

    run_dir = Path(args.finish)
    try:
        doc = read_run(run_dir)
    except RunDirError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_INVALID
    root = (doc.get("target") or {}).get("root")
    return finish(run_dir, gate_file=args.gate, baseline=args.baseline, no_gate=args.no_gate,
                  audit_dir=args.audit_dir, target_root=Path(root) if root else None)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # matplotlib (the reports' plots) keeps its font cache under $HOME/.cache and
    # $HOME/.config unless told otherwise: the user's HOME is never written
    os.environ.setdefault("MPLCONFIGDIR", str(PROJECT_ROOT / "runs" / ".mplconfig"))
    if args.list_scenarios:
        for s in catalogue.SCENARIOS.values():
            users = ", ".join(f"{n} {c}" for c, n in s.users.items())
            print(f"{s.name:<18} {s.description} [{s.duration_s:.0f} s; {users}]")
        return 0
    if args.list_injections:
        from instrument.reference.injections import INJECTIONS, describe

        for k in INJECTIONS:
            print(f"{k:<22} {describe(k)}")
        return 0
    if args.list_metrics:
        from analysis.metrics_catalogue import render

        try:
            print(render(), flush=True)
        except BrokenPipeError:  # `--list-metrics | head` is a normal use
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    if args.finish:
        return _finish_existing(args)
    if not args.scenario:
        print("error: --scenario is required (see --list-scenarios)", file=sys.stderr)
        return EXIT_INVALID
    install_stop_signals()
    try:
        if args.repeat != 1 or args.save_baseline:
            from . import repeat  # repeats, and saving a baseline, live there

            return repeat.main(args)
        if args.ws_compression == "both":
            return compare_compression(args)
        return execute(args)
    except RunError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt as e:  # before or between runs: nothing of a run to report
        print(f"interrupted by {str(e) or 'Ctrl-C (SIGINT)'}", file=sys.stderr)
        return EXIT_INVALID
    except OSError as e:
        if not is_disk_full(e):
            raise
        print(f"error: {disk_full_message(e)}", file=sys.stderr)
        return EXIT_INVALID
    finally:
        stop_all()


def _exit_now(code: int) -> None:
    """Leave without the interpreter's teardown of scipy and matplotlib
    (seconds on a busy machine, after the report is already out). Safe here:
    every child is stopped and every file of the run closed by then."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:  # a closed pipe (`| head`) must not turn the exit code into a traceback
            pass
    os._exit(code)


if __name__ == "__main__":
    _exit_now(main())
