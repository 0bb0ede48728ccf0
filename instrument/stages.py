"""One run as named stages over one `Run` value:

    prepare  check every input, write the test tracks          (nothing launched yet)
    launch   start the target under the agent, scan the library
    load     drive the scenario with Locust, probe the target's liveness
    checks   the scenario's post-load checks against the still-running target
    analyse  the analysis families over the run directory
    report   gate, renderings, the summary with the verdict last

Each stage records its status, timing and failure in run.json["stages"].
Whatever happens (a target that dies or hangs, Ctrl-C or SIGTERM, a loader
that crashes, a full disk) what was captured is analysed and reported, no
child process survives, and the exit code says what happened:
0 pass, 1 gate failed, 2 invalid run or bad input.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Iterator

from analysis.rundir import RUN_JSON, RUNDIR_SCHEMA_VERSION, RunDirError, dumps, read_run, write_json
from scenarios import catalogue

from . import loadgen
from .errors import EXIT_FAIL, EXIT_INVALID, EXIT_PASS, RunError, Stopped, disk_full_message, is_disk_full
from .cpu_threads import CPU_THREADS, ThreadCpuSampler
from .procs import OwnedProcess, free_port, port_in_use, stop_all, stop_together, wait_for_health
from .sampler import ProcessSampler
from .targets import PROJECT_ROOT, TargetError, auralis_target, reference_target

STAGES = ("prepare", "launch", "load", "checks", "analyse", "report")
# After a signal or a hang the target gets a short grace: the report must be
# out within seconds. Profiles and tracemalloc snapshots are written at
# shutdown, so those runs keep a long one.
TARGET_GRACE_S = {"normal": 10.0, "hurry": 2.0, "profiles": 60.0}
LOADGEN_GRACE_S = 2.0
HANG_AFTER_S = 8.0


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
    """State of one run, written to run.json as it changes. Construction is
    the input check: every RunError here comes before anything launches."""

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
        if args.users is not None and args.users < 1:
            raise RunError(f"--users must be at least 1, not {args.users}")
        self.users = catalogue.scale_users(self.scenario, args.users)
        self.spawn_rate = args.spawn_rate or self.scenario.spawn_rate
        if self.spawn_rate <= 0:
            raise RunError("--spawn-rate must be positive")
        problem = catalogue.placement_problem(self.scenario, self.users, self.duration, self.spawn_rate)
        if problem:
            raise RunError(problem)
        self.options = {**self.scenario.options, **parse_opts(args.scenario_opt)}
        self.injections = self._injections(args.inject)
        self.track_names, self.track_files = _track_selection(self.scenario, args)
        self.checks = _checks_option(getattr(args, "checks", None), self.scenario.checks)
        if args.target == "auralis" and self.injections:
            raise RunError("--inject applies to the reference backend only")
        stamp = dt.datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
        self.dir = Path(args.out) if args.out else PROJECT_ROOT / "runs" / f"{stamp}_{self.scenario.name}"
        check_out_dir(self.dir)
        if args.port and port_in_use(args.port):
            raise RunError(f"port {args.port} on 127.0.0.1 is in use")
        check_gate_inputs(args)
        standin = Path(args.auralis_dsp_standin).resolve() if args.auralis_dsp_standin else None
        try:
            self.target = (auralis_target(args.auralis_root, args.auralis_python, standin=standin)
                           if args.target == "auralis" else reference_target(self.injections))
        except TargetError as e:
            raise RunError(str(e)) from None
        self.standin = standin
        self.hurry = False  # a signal, a hang or a dead target: stop everything fast
        self.doc: dict[str, Any] = {
            "schema_version": RUNDIR_SCHEMA_VERSION, "tool": "earshot", "version": _version(), "scenario": self.scenario.name,
            "scenario_description": self.scenario.description, "started_at": _now(), "status": "running",
            "options": {
                "duration_s": self.duration, "users": self.users, "spawn_rate": self.spawn_rate,
                "scenario_options": self.options, "loop": args.loop, "ws_compression": args.ws_compression,
                "stall_threshold_ms": args.stall_threshold_ms, "trace_memory": args.trace_memory,
                "profile": args.profile, "locust_workers": args.locust_workers, "inject": sorted(self.injections),
                "coverage": bool(getattr(args, "coverage", False)),
                "tracks": self.track_names, "track_files": [Path(f).name for f in self.track_files],
            },
            "target": {"kind": self.target.name, **self.target.info}, "timings": {}, "stages": {},
        }
        # live pieces, stopped by `cleanup` however the run ends
        self.target_proc: OwnedProcess | None = None
        self.sampler: ProcessSampler | None = None
        self.cpu_sampler: ThreadCpuSampler | None = None  # per-thread CPU: who took it during host stalls
        self.load_samplers: list[ProcessSampler] = []
        self.load: loadgen.LoadRun | None = None
        self.probe = None
        self.control = None  # the checks' hook to end or restart the target (instrument.target_control)
        self.base_url = ""
        self.home = self.dir / "home"
        self.tracks: list[dict[str, Any]] = []

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
        write_json(self.dir / RUN_JSON, self.doc)

    def mark(self, key: str, t0: float) -> None:
        self.doc["timings"][key] = round(time.monotonic() - t0, 3)

    def invalid(self, reason: str) -> None:
        """The first cause wins: later ones are usually its consequences."""
        if self.doc.get("status") not in ("invalid", "failed"):
            self.doc["status"] = "invalid"
            self.doc["invalid_reason"] = reason

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        rec: dict[str, Any] = {"status": "running"}
        self.doc["stages"][name] = rec
        t0 = time.monotonic()
        try:
            yield
            rec["status"] = "ok"
        except KeyboardInterrupt as e:
            rec.update(status="interrupted", error=str(e) or "Ctrl-C (SIGINT)")
            raise
        except BaseException as e:
            rec.update(status="failed", error=(str(e).splitlines() or [type(e).__name__])[0])
            raise
        finally:
            rec["s"] = round(time.monotonic() - t0, 3)
            with contextlib.suppress(OSError):
                self.save()


def check_out_dir(path: Path) -> None:
    """`--out` must be a directory we can create and write, and empty."""
    if path.exists() and not path.is_dir():
        raise RunError(f"--out {path} is a file, not a directory")
    if path.is_dir() and any(path.iterdir()):
        raise RunError(f"run directory {path} exists and is not empty")
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise RunError(f"--out {path} cannot be created: {probe} is a file")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise RunError(f"--out {path} cannot be written: no write permission in {probe}")


def check_gate_inputs(args: argparse.Namespace) -> None:
    """A gate or baseline that cannot be used is bad input: say so before an
    hour of load, not after."""
    if getattr(args, "no_gate", False):
        return
    from reports.gate import GateFileError, MeasurementError, find_gate, load_runset

    try:
        if args.gate:
            find_gate(Path(args.gate), None)
        if args.baseline:
            load_runset(Path(args.baseline))
    except (GateFileError, MeasurementError) as e:
        raise RunError(str(e)) from None


# ---------------------------------------------------------------- stages


def prepare(run: Run) -> None:
    from scenarios import tracks as tracks_mod

    t0 = time.monotonic()
    cache = Path(os.environ.get("EARSHOT_TRACK_CACHE", PROJECT_ROOT / "runs" / ".track-cache"))
    run.tracks = tracks_mod.write_tracks(run.track_names, run.home, run.dir,
                                         seconds=run.args.track_seconds, cache_dir=cache)
    run.tracks += tracks_mod.import_track_files(run.track_files, run.home, run.dir, taken=set(run.track_names))
    tracks_mod.save_manifest(run.tracks, run.dir)
    run.mark("tracks_s", t0)


# What the analyse and report stages import. Imported in a thread while the
# target starts (no measurement runs then), so that after Ctrl-C or SIGTERM
# the report is not kept waiting for scipy and matplotlib to load.
WARM_MODULES = ("analysis.pipeline", "analysis.client", "analysis.continuity", "analysis.audio.run",
                "analysis.loop", "analysis.memory", "analysis.checks", "reports", "reports.gate")


def _warm_imports() -> None:
    import importlib

    for name in WARM_MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # the analyse stage reports a family that cannot import
            pass


PORT_ATTEMPTS = 3


def _start_target(run: Run, port: int, monitor_port: int | None) -> tuple[list[str], dict[str, str]]:
    args = run.args
    run.base_url = f"http://127.0.0.1:{port}"
    extra_path = [run.standin] if run.standin else []
    extra_path += _target_tools(run.target.python, args)
    env = run.target.process_env(run.dir, extra_path)
    argv = run.target.agent_argv(port=port, run_dir=run.dir, loop=args.loop, stall_ms=args.stall_threshold_ms,
                                 trace_memory=args.trace_memory, trace_frames=args.trace_frames,
                                 profile=args.profile, monitor_port=monitor_port)
    if getattr(args, "coverage", False):
        argv += ["--coverage"]
    run.doc["target"].update(port=port, base_url=run.base_url, argv=[_shorten(a) for a in argv])
    run.save()
    run.target_proc = OwnedProcess("target", argv, cwd=run.target.app_dir, env=env, log=run.dir / "target.log")
    run.doc["target"]["pid"] = run.target_proc.pid
    return argv, env


def launch(run: Run) -> None:
    from scenarios import tracks as tracks_mod

    warm = threading.Thread(target=_warm_imports, name="warm-imports", daemon=True)
    warm.start()

    args = run.args
    for attempt in range(1, PORT_ATTEMPTS + 1):
        # free_port() closes the port it found before the target binds it, and
        # another process (a parallel run, an outgoing connection) can take it
        # in between: a port we chose that is taken is chosen again
        port = args.port or free_port()
        monitor_port = free_port() if args.monitor else None
        argv, env = _start_target(run, port, monitor_port)
        try:
            waited = wait_for_health(f"{run.base_url}/api/health", run.target_proc, args.startup_timeout)
            break
        except RuntimeError as e:
            tail = run.target_proc.log_tail(12)
            run.target_proc.stop(2.0)
            # with the target gone, a port we chose that is still bound is another process's,
            # whatever words the server or the console used for the failed bind
            ours = {monitor_port} | ({port} if not args.port else set())
            taken = [p for p in ours if p and port_in_use(p)]
            if taken and attempt < PORT_ATTEMPTS:
                print(f"earshot: port {taken[0]} was taken before the target bound it; choosing another",
                      file=sys.stderr)
                continue
            run.invalid(f"target failed to start: {e}")
            raise RunError(f"target failed to start: {e}" + (f"\n--- target.log (tail) ---\n{tail}" if tail else "")) from None
    run.doc["timings"]["startup_s"] = round(waited, 3)
    # wall clock of the first health answer: loop stalls before it are startup, not serving
    run.doc["timings"]["health_answered_at"] = time.time()
    run.doc["target"].update(_agent_info(run.dir))
    if monitor_port:
        print(f"aiomonitor: attach with `python -m aiomonitor.cli -H 127.0.0.1 -p {monitor_port}`", file=sys.stderr)
    run.sampler = ProcessSampler(run.target_proc.pid, run.dir / "samples.jsonl").start()
    run.cpu_sampler = ThreadCpuSampler(run.target_proc.pid, run.dir / CPU_THREADS).start()
    from .target_control import TargetControl

    run.control = TargetControl(run.target_proc, argv=argv, cwd=run.target.app_dir, env=env, log=run.dir / "target.log",
                                health_url=f"{run.base_url}/api/health", samples=run.dir / "samples.jsonl",
                                sampler=run.sampler, startup_timeout_s=args.startup_timeout, run_dir=run.dir)
    t0 = time.monotonic()
    try:
        tracks_mod.scan_and_match(run.base_url, run.tracks, run.home / "Music" / tracks_mod.MUSIC_SUBDIR)
    except tracks_mod.TrackError as e:
        run.invalid(str(e))
        raise RunError(str(e)) from None
    tracks_mod.save_manifest(run.tracks, run.dir)
    run.mark("scan_s", t0)
    warm.join()  # before the load: the imports must not take CPU from the measurement


def load(run: Run) -> None:
    from .liveness import LivenessProbe
    from .progress import Progress

    args = run.args
    assert run.target_proc is not None
    cfg = loadgen.write_config(run.dir, base_url=run.base_url, scenario=run.scenario, users=run.users,
                               options=run.options, tracks=run.tracks, duration_s=run.duration,
                               compression=args.ws_compression == "on", workers=args.locust_workers)
    t0 = time.monotonic()
    run.doc["load_window"] = [time.time(), None]
    run.save()  # the load has begun: say so to whoever watches the run directory
    run.probe = LivenessProbe(run.base_url, run.dir, pid=run.target_proc.pid, hang_s=HANG_AFTER_S).start()
    run.load = loadgen.start(run.dir, base_url=run.base_url, config_path=cfg, users=run.users,
                             spawn_rate=run.spawn_rate, duration_s=run.duration + _stream_allowance(run.options),
                             workers=args.locust_workers, env=env_for_loadgen())
    # every Locust process separately: one saturated worker invalidates its timings
    # (master first, then workers named like their logs: loadgen_samples-worker-0.jsonl)
    run.load_samplers = [ProcessSampler(p.pid, run.dir / "load" /
                                        ("loadgen_samples.jsonl" if i == 0 else f"loadgen_samples-worker-{i - 1}.jsonl")
                                        ).start()
                         for i, p in enumerate(run.load.procs)]
    if run.cpu_sampler is not None:
        run.cpu_sampler.set_load_generator([p.pid for p in run.load.procs])
    target, probe = run.target_proc, run.probe
    with Progress(run.dir, run.duration, quiet=args.quiet) as prog:
        outcome = loadgen.wait(run.load, target_alive=lambda: target.alive() and not probe.hung, tick=prog.tick,
                               timeout_s=run.duration + _stream_allowance(run.options) + 120)
    run.mark("load_s", t0)
    run.doc["load_window"][1] = time.time()
    if outcome == "target_died" and probe.hung:
        outcome = "target_hung"
    run.doc["load_outcome"] = outcome
    if outcome == "target_hung":
        run.hurry = True
        run.invalid(probe.hang)
    elif outcome == "target_died":
        run.hurry = True
        run.invalid(f"target died mid-run (exit code {target.returncode})")
    elif outcome == "loadgen_failed":
        tail = run.load.procs[0].log_tail(8)
        run.invalid(f"load generator failed (exit {run.load.procs[0].returncode}): {tail.splitlines()[-1:] or ''}")
    elif outcome == "timeout":
        run.invalid("load generator did not finish in time")
    _stop_load(run)
    run.doc["ws_extensions"] = _negotiated_extensions(run.dir)
    run.doc["stream_timeouts"] = _stream_timeouts(run.dir)


def checks(run: Run) -> None:
    assert run.target_proc is not None
    if not run.checks or not run.target_proc.alive() or (run.probe and run.probe.hung):
        run.doc["stages"]["checks"]["skipped"] = True
        return
    from . import checks as checks_mod

    if run.probe is not None and set(run.checks) & set(checks_mod.CONTROLS_TARGET):
        # these checks kill, restart or end the target on purpose: its silence
        # then is theirs to judge, not a hang (the probe covered the load)
        _stop_probe(run)
    try:
        run.doc["checks"] = checks_mod.run_checks(run.checks, base_url=run.base_url, run_dir=run.dir,
                                                  tracks=run.tracks, compression=run.args.ws_compression == "on",
                                                  home=run.home, target_kind=run.target.name, target=run.control)
    finally:  # a check may have restarted the target: stop and sample the one that runs now
        if run.control is not None:
            run.target_proc, run.sampler = run.control.proc, run.control.sampler
            run.doc["target"]["restarts"] = run.control.restarts


def _stop_probe(run: Run) -> None:
    if run.probe is None:
        return
    run.probe.stop()
    run.doc["liveness"] = run.probe.record()
    from analysis.validity import hang

    if (h := hang(run.doc)) is not None and run.doc.get("status") == "running":
        run.invalid(h)
    run.probe = None


def _stop_load(run: Run) -> None:
    if run.load is not None:
        run.load.stop(grace_s=LOADGEN_GRACE_S)
    for s in run.load_samplers:
        s.stop()
    run.load_samplers = []


def cleanup(run: Run) -> None:
    """Stop load first, then the target: its agent writes profiles and final
    snapshots on a graceful shutdown. Runs however the run ended."""
    with _ignore_interrupts():
        _stop_probe(run)
        if run.hurry and run.target_proc is not None and not _keeps_profiles(run):
            # seconds count now: the load generator and the target share one short grace
            stop_together([*(run.load.procs if run.load else []), run.target_proc], TARGET_GRACE_S["hurry"])
        _stop_load(run)
        if run.target_proc is not None:
            was_alive = run.target_proc.alive() or bool(run.control is not None and run.control.ended_by_check)
            grace = ("profiles" if _keeps_profiles(run)
                     else "hurry" if run.hurry or (run.probe and run.probe.hung) else "normal")
            t0 = time.monotonic()
            rc = run.target_proc.stop(grace_s=TARGET_GRACE_S[grace])
            run.doc["timings"]["target_stop_s"] = round(time.monotonic() - t0, 3)
            run.doc["target"]["exit_code"] = rc
            if not was_alive and run.doc.get("status") == "running":
                run.invalid(f"target died mid-run (exit code {rc})")
        if run.sampler:
            run.sampler.stop()
        if run.cpu_sampler:
            run.cpu_sampler.stop()
        stop_all()
        cost = _agent_cost(run.dir)
        if cost:
            run.doc["instrumentation"] = cost


def _keeps_profiles(run: Run) -> bool:
    return run.args.profile != "none" or run.args.trace_memory or bool(getattr(run.args, "coverage", False))


def execute(args: argparse.Namespace, *, analyse: bool = True) -> int:
    """One run. `analyse=False` stops after capture (repeats analyse their
    runs afterwards, in parallel, so analysis never overlaps a measurement)."""
    run = Run(args)
    run.save()
    t_start = time.monotonic()
    console = sys.stderr
    disk_full: str | None = None
    stopped_at: float | None = None
    try:
        print(f"run directory: {run.dir}", file=console)
        for name, fn in (("prepare", prepare), ("launch", launch), ("load", load), ("checks", checks)):
            with run.stage(name):
                fn(run)
    except KeyboardInterrupt as e:
        stopped_at = time.monotonic()
        run.hurry = True
        what = str(e) or "Ctrl-C (SIGINT)"
        run.invalid(f"interrupted by {what}")
        print(f"\ninterrupted by {what}: stopping the target and reporting what was captured", file=console)
    except RunError as e:
        run.hurry = True
        run.invalid(str(e).splitlines()[0])
        print(f"error: {e}", file=console)
    except OSError as e:
        run.hurry = True
        if not is_disk_full(e):
            raise
        disk_full = disk_full_message(e)
        run.doc.update(status="failed", invalid_reason=disk_full)
    except Exception as e:  # a bug of ours must still leave a report and no orphans
        run.hurry = True
        run.invalid(f"internal error: {type(e).__name__}: {e}")
        with contextlib.suppress(OSError):
            (run.dir / "wrapper-error.txt").write_text(traceback.format_exc())
        print(f"error: internal error: {type(e).__name__}: {e} (traceback in {run.dir / 'wrapper-error.txt'})",
              file=console)
    finally:
        cleanup(run)
    if run.doc["status"] == "running":
        run.doc["status"] = "ok"
    run.doc["ended_at"] = _now()
    run.doc["timings"]["run_s"] = round(time.monotonic() - t_start, 3)
    if stopped_at is not None:
        run.doc["timings"]["stop_s"] = round(time.monotonic() - stopped_at, 3)
    try:
        run.save()
    except OSError as e:
        if not is_disk_full(e):
            raise
        disk_full = disk_full or disk_full_message(e)
        run.doc.update(status="failed", invalid_reason=disk_full)
    if disk_full:
        _mark_failed_in_place(run)
        print(f"error: {disk_full} (run.json {'marked failed' if _saved_failed(run.dir) else 'could not be written'})",
              file=console)
        return EXIT_INVALID
    if not analyse:
        return EXIT_PASS if run.doc["status"] == "ok" else EXIT_INVALID
    return finish(run.dir, gate_file=args.gate, baseline=args.baseline, no_gate=args.no_gate,
                  audit_dir=args.audit_dir, target_root=Path(run.target.info["root"]) if run.target.info.get("root") else None,
                  quick=stopped_at is not None)


def _mark_failed_in_place(run: Run) -> None:
    """On a full disk the atomic write (a second copy, then rename) has no
    room; overwriting run.json in place first frees its own blocks, so the
    failure can still be recorded."""
    if _saved_failed(run.dir):
        return
    with contextlib.suppress(OSError):
        (run.dir / "run.json.tmp").unlink(missing_ok=True)
        with open(run.dir / RUN_JSON, "w") as fh:
            fh.write(dumps(run.doc))


def _saved_failed(run_dir: Path) -> bool:
    try:
        return json.loads((run_dir / "run.json").read_text()).get("status") == "failed"
    except (OSError, ValueError):
        return False


def finish(run_dir: Path, *, gate_file: str | None = None, baseline: str | None = None, no_gate: bool = False,
           audit_dir: str | None = None, target_root: Path | None = None, quick: bool = False) -> int:
    """The analyse and report stages: analyse, gate and report a run
    directory; print the summary with the verdict last. Shared by a live run
    and by re-running on an old directory. `quick`: a run stopped by a
    signal; its report leaves out the run plots to be out in seconds."""
    try:
        return _finish(run_dir, gate_file, baseline, no_gate, audit_dir, target_root, quick)
    except OSError as e:
        if not is_disk_full(e):
            raise
        msg = disk_full_message(e)
        with contextlib.suppress(OSError, ValueError):
            doc = json.loads((run_dir / RUN_JSON).read_text())
            doc.update(status="failed", invalid_reason=msg)
            with open(run_dir / RUN_JSON, "w") as fh:  # in place: no room for a second copy
                fh.write(dumps(doc))
        print(f"error: {msg}", file=sys.stderr)
        return EXIT_INVALID


def _finish(run_dir, gate_file, baseline, no_gate, audit_dir, target_root, quick=False) -> int:
    from analysis.pipeline import analyse_run

    doc = read_run(run_dir)  # RunDirError: not a run directory of this schema
    stages = doc["stages"]
    t0 = time.monotonic()
    stages["analyse"] = {"status": "running"}
    findings, metrics = analyse_run(run_dir)
    causes = (json.loads((run_dir / "metrics.json").read_text()) or {}).get("invalid_causes") or []
    doc.setdefault("timings", {})["analysis_s"] = round(time.monotonic() - t0, 3)
    stages["analyse"] = {"status": "failed" if metrics.get("analysis_errors") else "ok",
                         "s": doc["timings"]["analysis_s"]}
    doc["invalid_causes"] = causes
    t0 = time.monotonic()
    verdict, code, reason, gate_lines = _gate(run_dir, doc, findings, gate_file, baseline, no_gate, target_root,
                                              causes)
    doc.update(verdict=verdict, exit_code=code, verdict_reason=reason)
    paths = _render(run_dir, audit_dir, plots=not quick)
    stages["report"] = {"status": "ok", "s": round(time.monotonic() - t0, 3)}
    write_json(run_dir / RUN_JSON, doc)
    _print_summary(run_dir, doc, findings, metrics, verdict, reason, gate_lines, paths)
    return code


def _gate(run_dir, doc, findings, gate_file, baseline, no_gate, target_root, causes=()):
    from analysis.model import count_by_severity

    counts = count_by_severity(f for f in findings if f.counts_against_gate)
    if not no_gate:
        from reports import gate

        try:
            res = gate.evaluate(run_dir, gate_file=Path(gate_file) if gate_file else None,
                                baseline=Path(baseline) if baseline else None, target_root=target_root)
            return res.verdict, res.exit_code, res.reason, res.lines()[:-1]
        except OSError as e:
            if is_disk_full(e):
                raise
            return "INVALID", EXIT_INVALID, f"gate: {e}", []
        except Exception as e:  # a bad rules file or baseline is bad input: say so, exit 2
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            return "INVALID", EXIT_INVALID, f"gate: {msg}", []
    if doc.get("status") != "ok":
        return "INVALID", EXIT_INVALID, doc.get("invalid_reason", "run did not complete"), []
    if causes:
        return "INVALID", EXIT_INVALID, "run invalid: " + "; ".join(causes), []
    if counts["CRITICAL"] or counts["HIGH"]:
        return "FAIL", EXIT_FAIL, f"{counts['CRITICAL']} CRITICAL and {counts['HIGH']} HIGH findings", []
    return "PASS", EXIT_PASS, "no CRITICAL or HIGH findings", []


def _render(run_dir: Path, audit_dir: str | None, plots: bool = True) -> list[Path]:
    try:
        import reports

        if hasattr(reports, "render_all"):
            return list(reports.render_all(run_dir, audit_dir=Path(audit_dir) if audit_dir else None, plots=plots))
    except OSError as e:
        if is_disk_full(e):
            raise
        _report_error(run_dir, e)
    except Exception as e:
        _report_error(run_dir, e)
    from reports.minimal import write_minimal_report

    return [write_minimal_report(run_dir)]


def _report_error(run_dir: Path, e: Exception) -> None:
    (run_dir / "report-error.txt").write_text(traceback.format_exc())
    print(f"warning: report rendering failed: {type(e).__name__}: {e}", file=sys.stderr)


def _print_summary(run_dir, doc, findings, metrics, verdict, reason, gate_lines, paths) -> None:
    from analysis.model import count_by_severity

    counts = count_by_severity(f for f in findings if f.counts_against_gate)
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
        env = " (environment, not gated)" if not f.counts_against_gate else ""
        print(f"    {f.id} {f.severity:<8} {f.title} [{f.location.render()}]{env}", file=out)
    if len(findings) > 12:
        print(f"    ... {len(findings) - 12} more in the report", file=out)
    for line in gate_lines:
        print(f"  {line}", file=out)
    for p in paths:
        print(f"  report: {p}", file=out)
    print(f"VERDICT: {verdict} - {reason}", file=out, flush=True)


# ---------------------------------------------------------------- helpers


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("earshot")
    except Exception:
        return "0+unknown"


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
    wanted += ["coverage"] if getattr(args, "coverage", False) else []
    if not wanted:
        return []
    from .target_site import TargetSiteError, ensure

    try:
        site = ensure(python, wanted)
    except TargetSiteError as e:
        raise RunError(str(e)) from None
    return [site] if site else []


def _agent_cost(run_dir: Path) -> dict[str, Any] | None:
    """The agent's own threads' CPU time against the target process's, as the
    agent measured it (agent/cost.json)."""
    try:
        c = json.loads((run_dir / "agent" / "cost.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return {k: c.get(k) for k in ("agent_cpu_s", "process_cpu_s", "agent_cpu_pct", "threads", "not_counted")}


def _track_selection(scenario: catalogue.Scenario, args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """(test track names, user files), checked before anything starts: an
    unknown name or a file soundfile cannot decode is bad input."""
    from scenarios import tracks as tracks_mod

    track_files = list(getattr(args, "track_file", None) or [])
    if getattr(args, "tracks", None) is not None:
        names = [n.strip() for n in args.tracks.split(",") if n.strip()]
    else:
        names = [] if track_files else list(scenario.tracks)
    if not names and not track_files:
        raise RunError("--tracks names no track")
    try:
        tracks_mod.check_names(names)
        for f in track_files:
            tracks_mod.probe_track_file(f)
    except tracks_mod.TrackError as e:
        raise RunError(str(e)) from None
    return list(dict.fromkeys(names)), track_files


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


def _stream_allowance(options: dict[str, Any]) -> float:
    """A scenario that plays each stream to its end may run past its duration
    by up to one per-stream timeout (it ends as soon as its streams do)."""
    return float(options.get("stream_timeout_s", 300)) if options.get("play_to_end") else 0.0


def _stream_timeouts(run_dir: Path) -> list[dict[str, Any]]:
    """Streams whose per-stream timeout fired during the load (load/events.jsonl)."""
    from analysis.rundir import iter_jsonl

    return [{k: e.get(k) for k in ("user", "stream", "timeout_s")}
            for e in iter_jsonl(run_dir / "load" / "events.jsonl") if e.get("kind") == "stream_timeout"]


def env_for_loadgen() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_TOKEN", "GH_TOKEN"))}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class _ignore_interrupts:
    """Cleanup must finish even if the user presses Ctrl-C again or a second
    SIGTERM arrives."""

    def __enter__(self):
        self.old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}

    def __exit__(self, *exc):
        for s, h in self.old.items():
            signal.signal(s, h)
        return False


def install_stop_signals() -> None:
    """Ctrl-C and SIGTERM (a CI runner cancelling us) both stop the run the
    same way, and each is named as what it was."""

    def handler(signum, _frame):
        raise Stopped("Ctrl-C (SIGINT)" if signum == signal.SIGINT else signal.Signals(signum).name)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
