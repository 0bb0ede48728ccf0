"""`python -m instrument.run --scenario NAME`: one whole run.

Launch the target under the agent, load test tracks through its own API,
drive the scenario with Locust, stop everything, analyse, gate, report, and
print the verdict last. Whatever happens (a target that dies, Ctrl-C, a
loader that crashes) what was captured is analysed and reported, no child
process survives, and the exit code says what happened:
0 pass, 1 gate failed, 2 invalid run or bad input.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from scenarios import catalogue

from . import loadgen
from .procs import OwnedProcess, free_port, port_in_use, stop_all, wait_for_health
from .sampler import ProcessSampler
from .targets import DEFAULT_STANDIN, PROJECT_ROOT, TargetError, auralis_target, reference_target

EXIT_PASS, EXIT_FAIL, EXIT_INVALID = 0, 1, 2


class RunError(Exception):
    """Bad input or a failed run; the message is the one-line error."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m instrument.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", help="scenario name (see --list-scenarios)")
    p.add_argument("--list-scenarios", action="store_true", help="list scenarios and exit")
    p.add_argument("--list-injections", action="store_true", help="list the reference backend's injections")
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
    p.add_argument("--locust-workers", type=int, default=0, help="run Locust as a master with N local workers")
    p.add_argument("--ws-compression", choices=["on", "off", "both"], default="on",
                   help="offer permessage-deflate as browsers do (default on); 'both' runs the scenario with it "
                        "on and off and reports them side by side")
    p.add_argument("--out", help="run directory (default runs/<timestamp>_<scenario>)")
    p.add_argument("--port", type=int, help="target port (default: a free loopback port)")
    p.add_argument("--startup-timeout", type=float, default=90.0, help="seconds to wait for the target's health")
    p.add_argument("--stall-threshold-ms", type=float, default=50.0, help="loop stall threshold (>= 10)")
    p.add_argument("--trace-memory", action="store_true", help="tracemalloc snapshots inside the target")
    p.add_argument("--trace-frames", type=int, default=25)
    p.add_argument("--profile", choices=["none", "pyinstrument", "yappi"], default="none")
    p.add_argument("--monitor", action="store_true", help="start aiomonitor inside the target on loopback")
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


def parse_opts(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for it in items:
        if "=" not in it:
            raise RunError(f"--scenario-opt needs KEY=VALUE, got '{it}'")
        k, v = it.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out


class Run:
    """State of one run, written to run.json as it changes."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        try:
            self.scenario = catalogue.get(args.scenario)
        except ValueError as e:
            raise RunError(str(e)) from None
        self.duration = float(args.duration if args.duration is not None else self.scenario.duration_s)
        if self.duration <= 0:
            raise RunError("--duration must be positive")
        if args.track_seconds is not None and not 20 <= args.track_seconds <= 3600:
            raise RunError("--track-seconds must be between 20 and 3600")
        if not 10 <= args.stall_threshold_ms <= 10000:
            raise RunError("--stall-threshold-ms must be between 10 and 10000")
        self.users = catalogue.scale_users(self.scenario, args.users)
        self.options = {**self.scenario.options, **parse_opts(args.scenario_opt)}
        self.injections = self._injections(args.inject)
        self.checks = _checks_option(getattr(args, "checks", None), self.scenario.checks)
        if args.target == "auralis" and self.injections:
            raise RunError("--inject applies to the reference backend only")
        stamp = dt.datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
        self.dir = Path(args.out) if args.out else PROJECT_ROOT / "runs" / f"{stamp}_{self.scenario.name}"
        if self.dir.exists() and any(self.dir.iterdir()):
            raise RunError(f"run directory {self.dir} exists and is not empty")
        if args.port and port_in_use(args.port):
            raise RunError(f"port {args.port} on 127.0.0.1 is in use")
        standin = Path(args.auralis_dsp_standin).resolve() if args.auralis_dsp_standin else None
        try:
            self.target = (auralis_target(args.auralis_root, args.auralis_python, standin=standin)
                           if args.target == "auralis" else reference_target(self.injections))
        except TargetError as e:
            raise RunError(str(e)) from None
        self.standin = standin
        self.doc: dict[str, Any] = {
            "tool": "earshot", "version": _version(), "scenario": self.scenario.name,
            "scenario_description": self.scenario.description, "started_at": _now(), "status": "running",
            "options": {
                "duration_s": self.duration, "users": self.users, "spawn_rate": args.spawn_rate or self.scenario.spawn_rate,
                "scenario_options": self.options, "loop": args.loop, "ws_compression": args.ws_compression,
                "stall_threshold_ms": args.stall_threshold_ms, "trace_memory": args.trace_memory,
                "profile": args.profile, "locust_workers": args.locust_workers, "inject": sorted(self.injections),
            },
            "target": {"kind": self.target.name, **self.target.info}, "timings": {},
        }

    @staticmethod
    def _injections(text: str) -> frozenset[str]:
        if not text:
            return frozenset()
        from instrument.reference.injections import parse_injections

        try:
            return parse_injections(text)
        except ValueError as e:
            raise RunError(str(e)) from None

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / "run.json.tmp"
        tmp.write_text(json.dumps(self.doc, indent=1, default=str))
        os.replace(tmp, self.dir / "run.json")

    def mark(self, key: str, t0: float) -> None:
        self.doc["timings"][key] = round(time.monotonic() - t0, 3)


def _checks_option(text: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    """--checks a,b: those checks instead of the scenario's (unknown names are bad input)."""
    if not text:
        return tuple(default)
    from .checks import CHECKS

    names = tuple(x.strip() for x in text.split(",") if x.strip())
    unknown = [n for n in names if n not in CHECKS]
    if unknown or not names:
        raise RunError(f"unknown check '{unknown[0] if unknown else text}' (known: {', '.join(CHECKS)})")
    return names


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("earshot")
    except Exception:
        return "0+unknown"


def _invalid(run: Run, reason: str) -> None:
    if run.doc.get("status") != "invalid":
        run.doc["status"] = "invalid"
        run.doc["invalid_reason"] = reason


def execute(args: argparse.Namespace, *, analyse: bool = True) -> int:
    """One run. `analyse=False` stops after capture (repeats analyse their
    runs afterwards, in parallel, so analysis never overlaps a measurement)."""
    run = Run(args)
    run.save()
    t_start = time.monotonic()
    target_proc: OwnedProcess | None = None
    sampler = None
    load_samplers: list[ProcessSampler] = []
    load: loadgen.LoadRun | None = None
    control = None  # the checks' hook to end or restart the target (instrument.target_control)
    console = sys.stderr
    try:
        print(f"run directory: {run.dir}", file=console)
        # -- tracks -----------------------------------------------------------
        from scenarios import tracks as tracks_mod

        t0 = time.monotonic()
        home = run.dir / "home"
        tracks = tracks_mod.write_tracks(list(run.scenario.tracks), home, run.dir, seconds=args.track_seconds,
                                         cache_dir=Path(os.environ.get("EARSHOT_TRACK_CACHE", PROJECT_ROOT / "runs" / ".track-cache")))
        tracks_mod.save_manifest(tracks, run.dir)
        run.mark("tracks_s", t0)
        # -- target -----------------------------------------------------------
        port = args.port or free_port()
        base_url = f"http://127.0.0.1:{port}"
        monitor_port = free_port() if args.monitor else None
        extra_path = [run.standin] if run.standin else []
        extra_path += _target_tools(run.target.python, args)
        env = run.target.process_env(run.dir, extra_path)
        argv = run.target.agent_argv(port=port, run_dir=run.dir, loop=args.loop, stall_ms=args.stall_threshold_ms,
                                     trace_memory=args.trace_memory, trace_frames=args.trace_frames,
                                     profile=args.profile, monitor_port=monitor_port)
        run.doc["target"].update(port=port, base_url=base_url, argv=[_shorten(a) for a in argv])
        run.save()
        t0 = time.monotonic()
        target_proc = OwnedProcess("target", argv, cwd=run.target.app_dir, env=env, log=run.dir / "target.log")
        run.doc["target"]["pid"] = target_proc.pid
        try:
            waited = wait_for_health(f"{base_url}/api/health", target_proc, args.startup_timeout)
        except RuntimeError as e:
            tail = target_proc.log_tail(12)
            _invalid(run, f"target failed to start: {e}")
            raise RunError(f"target failed to start: {e}" + (f"\n--- target.log (tail) ---\n{tail}" if tail else "")) from None
        run.doc["timings"]["startup_s"] = round(waited, 3)
        run.doc["target"].update(_agent_info(run.dir))
        if monitor_port:
            print(f"aiomonitor: attach with `python -m aiomonitor.cli -H 127.0.0.1 -p {monitor_port}`", file=console)
        sampler = ProcessSampler(target_proc.pid, run.dir / "samples.jsonl").start()
        from .target_control import TargetControl

        control = TargetControl(target_proc, argv=argv, cwd=run.target.app_dir, env=env, log=run.dir / "target.log",
                                health_url=f"{base_url}/api/health", samples=run.dir / "samples.jsonl",
                                sampler=sampler, startup_timeout_s=args.startup_timeout)
        # -- library ----------------------------------------------------------
        t0 = time.monotonic()
        try:
            tracks_mod.scan_and_match(base_url, tracks, home / "Music" / tracks_mod.MUSIC_SUBDIR)
        except tracks_mod.TrackError as e:
            _invalid(run, str(e))
            raise RunError(str(e)) from None
        tracks_mod.save_manifest(tracks, run.dir)
        run.mark("scan_s", t0)
        run.save()
        # -- load -------------------------------------------------------------
        cfg = loadgen.write_config(run.dir, base_url=base_url, scenario=run.scenario, users=run.users,
                                   options=run.options, tracks=tracks, duration_s=run.duration,
                                   compression=args.ws_compression == "on", workers=args.locust_workers)
        t0 = time.monotonic()
        run.doc["load_window"] = [time.time(), None]
        load = loadgen.start(run.dir, base_url=base_url, config_path=cfg, users=run.users,
                             spawn_rate=args.spawn_rate or run.scenario.spawn_rate, duration_s=run.duration,
                             workers=args.locust_workers, env=env_for_loadgen())
        # every Locust process separately: one saturated worker invalidates its timings
        # (master first, then workers named like their logs: loadgen_samples-worker-0.jsonl)
        load_samplers = [ProcessSampler(p.pid, run.dir / "load" /
                                        ("loadgen_samples.jsonl" if i == 0 else f"loadgen_samples-worker-{i - 1}.jsonl")
                                        ).start()
                         for i, p in enumerate(load.procs)]
        from .progress import Progress

        with Progress(run.dir, run.duration, quiet=args.quiet) as prog:
            outcome = loadgen.wait(load, target_alive=target_proc.alive, tick=prog.tick,
                                   timeout_s=run.duration + 120)
        run.mark("load_s", t0)
        run.doc["load_window"][1] = time.time()
        run.doc["load_outcome"] = outcome
        if outcome == "target_died":
            _invalid(run, f"target died mid-run (exit code {target_proc.returncode})")
        elif outcome == "loadgen_failed":
            tail = load.procs[0].log_tail(8)
            _invalid(run, f"load generator failed (exit {load.procs[0].returncode}): {tail.splitlines()[-1:] or ''}")
        elif outcome == "timeout":
            _invalid(run, "load generator did not finish in time")
        load.stop()
        for s in load_samplers:
            s.stop()
        load_samplers = []
        run.doc["ws_extensions"] = _negotiated_extensions(run.dir)
        # -- post-load checks -------------------------------------------------
        if target_proc.alive() and run.checks:
            from . import checks

            try:
                run.doc["checks"] = checks.run_checks(run.checks, base_url=base_url, run_dir=run.dir,
                                                      tracks=tracks, compression=args.ws_compression == "on",
                                                      home=home, target_kind=run.target.name, target=control)
            finally:  # a check may have restarted the target: stop and sample the one that runs now
                target_proc, sampler = control.proc, control.sampler
                run.doc["target"]["restarts"] = control.restarts
    except KeyboardInterrupt:
        _invalid(run, "interrupted (Ctrl-C)")
        print("\ninterrupted: stopping the target and reporting what was captured", file=console)
    except RunError as e:
        _invalid(run, str(e).splitlines()[0])
        print(f"error: {e}", file=console)
    except Exception as e:  # a bug of ours must still leave a report and no orphans
        _invalid(run, f"internal error: {type(e).__name__}: {e}")
        (run.dir / "wrapper-error.txt").write_text(traceback.format_exc())
        print(f"error: internal error: {type(e).__name__}: {e} (traceback in {run.dir / 'wrapper-error.txt'})",
              file=console)
    finally:
        # stop load first, then the target; give the agent a graceful shutdown
        # so profiles and final snapshots are written
        with _ignore_interrupts():
            if load is not None:
                load.stop()
            for s in load_samplers:
                s.stop()
            if target_proc is not None:
                was_alive = target_proc.alive() or bool(control is not None and control.ended_by_check)
                # profiles and the last tracemalloc snapshot are written at shutdown
                rc = target_proc.stop(grace_s=60.0 if (args.profile != "none" or args.trace_memory) else 15.0)
                run.doc["target"]["exit_code"] = rc
                if not was_alive and run.doc.get("status") == "running":
                    _invalid(run, f"target died mid-run (exit code {rc})")
            if sampler:
                sampler.stop()
            stop_all()
    if run.doc["status"] == "running":
        run.doc["status"] = "ok"
    run.doc["ended_at"] = _now()
    run.doc["timings"]["run_s"] = round(time.monotonic() - t_start, 3)
    run.save()
    if not analyse:
        return EXIT_PASS if run.doc["status"] == "ok" else EXIT_INVALID
    return finish(run.dir, gate_file=args.gate, baseline=args.baseline, no_gate=args.no_gate,
                  audit_dir=args.audit_dir, target_root=Path(run.target.info["root"]) if run.target.info.get("root") else None)


def finish(run_dir: Path, *, gate_file: str | None = None, baseline: str | None = None, no_gate: bool = False,
           audit_dir: str | None = None, target_root: Path | None = None) -> int:
    """Analyse, gate and report a run directory; print the summary with the
    verdict last. Shared by a live run and by re-running on an old directory."""
    from analysis.pipeline import analyse_run

    doc = json.loads((run_dir / "run.json").read_text())
    t0 = time.monotonic()
    findings, metrics = analyse_run(run_dir)
    doc.setdefault("timings", {})["analysis_s"] = round(time.monotonic() - t0, 3)
    verdict, code, reason, gate_lines = _gate(run_dir, doc, findings, gate_file, baseline, no_gate, target_root)
    doc.update(verdict=verdict, exit_code=code, verdict_reason=reason)
    (run_dir / "run.json").write_text(json.dumps(doc, indent=1, default=str))
    paths = _render(run_dir, audit_dir)
    _print_summary(run_dir, doc, findings, metrics, verdict, reason, gate_lines, paths)
    return code


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


def _gate(run_dir, doc, findings, gate_file, baseline, no_gate, target_root):
    from analysis.model import count_by_severity

    counts = count_by_severity(findings)
    if not no_gate:
        try:
            from reports import gate
        except ImportError:
            gate = None
        if gate is not None and hasattr(gate, "evaluate"):
            try:
                res = gate.evaluate(run_dir, gate_file=Path(gate_file) if gate_file else None,
                                    baseline=Path(baseline) if baseline else None, target_root=target_root)
                return res.verdict, res.exit_code, res.reason, res.lines()[:-1]
            except Exception as e:  # a broken rules file is bad input: say so, exit 2
                msg = str(e).splitlines()[0] if str(e) else type(e).__name__
                return "INVALID", EXIT_INVALID, f"gate: {msg}", []
    if doc.get("status") != "ok":
        return "INVALID", EXIT_INVALID, doc.get("invalid_reason", "run did not complete"), []
    if counts["CRITICAL"] or counts["HIGH"]:
        return "FAIL", EXIT_FAIL, f"{counts['CRITICAL']} CRITICAL and {counts['HIGH']} HIGH findings", []
    return "PASS", EXIT_PASS, "no CRITICAL or HIGH findings", []


def _render(run_dir: Path, audit_dir: str | None) -> list[Path]:
    try:
        import reports

        if hasattr(reports, "render_all"):
            return list(reports.render_all(run_dir, audit_dir=Path(audit_dir) if audit_dir else None))
    except Exception as e:
        (run_dir / "report-error.txt").write_text(traceback.format_exc())
        print(f"warning: report rendering failed: {type(e).__name__}: {e}", file=sys.stderr)
    from reports.minimal import write_minimal_report

    return [write_minimal_report(run_dir)]


def _print_summary(run_dir, doc, findings, metrics, verdict, reason, gate_lines, paths) -> None:
    from analysis.model import count_by_severity

    counts = count_by_severity(findings)
    out = sys.stdout
    print("", file=out)
    print(f"scenario {doc.get('scenario')} on {doc.get('target', {}).get('kind')}"
          + (f" (inject: {','.join(doc['options']['inject'])})" if doc.get("options", {}).get("inject") else "")
          + f" - {doc.get('timings', {}).get('run_s', 0):.0f} s", file=out)
    figs = [("streams", metrics.get("streams_total")), ("TTFA p50", _ms(metrics.get("ttfa_p50_ms"))),
            ("TTFA p95", _ms(metrics.get("ttfa_p95_ms"))), ("underruns", metrics.get("underruns")),
            ("stalls", metrics.get("loop_stall_count")), ("max stall", _ms(metrics.get("loop_stall_max_ms"))),
            ("RSS peak", f"{metrics['rss_peak_mb']:.0f} MB" if metrics.get("rss_peak_mb") else None)]
    print("  " + ", ".join(f"{k} {v}" for k, v in figs if v is not None), file=out)
    print("  findings: " + ", ".join(f"{counts[s]} {s}" for s in counts), file=out)
    for f in findings[:12]:
        print(f"    {f.id} {f.severity:<8} {f.title} [{f.location.render()}]", file=out)
    if len(findings) > 12:
        print(f"    ... {len(findings) - 12} more in the report", file=out)
    for line in gate_lines:
        print(f"  {line}", file=out)
    for p in paths:
        print(f"  report: {p}", file=out)
    print(f"VERDICT: {verdict} - {reason}", file=out, flush=True)


def _ms(v: Any) -> str | None:
    return None if v is None else f"{float(v):.0f} ms"


def _shorten(a: str) -> str:
    home = os.path.expanduser("~")
    return a.replace(home, "~") if home and home != "/" else a


def _agent_info(run_dir: Path) -> dict[str, Any]:
    """Loop implementation and DSP module state as the agent saw them."""
    path = run_dir / "agent" / "agent.json"
    for _ in range(20):  # the agent writes it as the app starts
        if path.exists():
            break
        time.sleep(0.1)
    try:
        a = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    info: dict[str, Any] = {"loop_impl": a.get("loop") or a.get("loop_implementation"), "agent_pid": a.get("pid")}
    mods = a.get("report_modules") or a.get("modules") or {}
    dsp = mods.get("auralis_dsp") if isinstance(mods, dict) else None
    if dsp is not None:
        f = str(dsp.get("file") or "")
        state = "absent" if not dsp.get("present") else ("stand-in" if "shared/lab" in f or f.endswith("lab/auralis_dsp.py") else "native")
        info["dsp_state"] = state
    return info


def _negotiated_extensions(run_dir: Path) -> dict[str, int]:
    """WebSocket extensions the server accepted, per connection (counted)."""
    from collections import Counter

    from analysis.rundir import iter_jsonl

    seen: Counter[str] = Counter()
    for p in (run_dir / "load" / "connections").glob("*.jsonl"):
        for e in iter_jsonl(p):
            if e.get("kind") == "connected":
                seen["; ".join(e.get("extensions") or []) or "none"] += 1
                break
    return dict(seen)


def _target_tools(python: str, args: argparse.Namespace) -> list[Path]:
    """Profilers and the console the target's own interpreter may lack."""
    wanted = ([args.profile] if args.profile != "none" else []) + (["aiomonitor"] if args.monitor else [])
    if not wanted:
        return []
    from .target_site import TargetSiteError, ensure

    try:
        site = ensure(python, wanted)
    except TargetSiteError as e:
        raise RunError(str(e)) from None
    return [site] if site else []


def env_for_loadgen() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_TOKEN", "GH_TOKEN"))}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class _ignore_interrupts:
    """Cleanup must finish even if the user presses Ctrl-C again."""

    def __enter__(self):
        self.old = signal.signal(signal.SIGINT, signal.SIG_IGN)

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self.old)
        return False


def _finish_existing(args: argparse.Namespace) -> int:
    run_dir = Path(args.finish)
    try:
        doc = json.loads((run_dir / "run.json").read_text())
    except (OSError, json.JSONDecodeError):
        print(f"error: {run_dir} is not a run directory (no readable run.json)", file=sys.stderr)
        return EXIT_INVALID
    root = (doc.get("target") or {}).get("root")
    return finish(run_dir, gate_file=args.gate, baseline=args.baseline, no_gate=args.no_gate,
                  audit_dir=args.audit_dir, target_root=Path(root) if root else None)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_scenarios:
        for s in catalogue.SCENARIOS.values():
            users = ", ".join(f"{n} {c}" for c, n in s.users.items())
            print(f"{s.name:<18} {s.description} [{s.duration_s:.0f} s; {users}]")
        return 0
    if args.list_injections:
        from instrument.reference.injections import INJECTIONS

        for k, v in INJECTIONS.items():
            print(f"{k:<22} {v}")
        return 0
    if args.finish:
        return _finish_existing(args)
    if not args.scenario:
        print("error: --scenario is required (see --list-scenarios)", file=sys.stderr)
        return EXIT_INVALID
    # matplotlib (the reports' plots) keeps its font cache under $HOME/.cache and
    # $HOME/.config unless told otherwise: the user's HOME is never written
    os.environ.setdefault("MPLCONFIGDIR", str(PROJECT_ROOT / "runs" / ".mplconfig"))
    # SIGTERM (a CI runner cancelling us) is handled like Ctrl-C
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
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
    finally:
        stop_all()


if __name__ == "__main__":
    sys.exit(main())
