"""`python -m instrument.agent --app MODULE:ATTR ...`: run a target ASGI app
under uvicorn with our instrumentation installed before its loop runs.

This runs inside the TARGET's interpreter (for Auralis, the user's own venv),
so it imports only the standard library and what a FastAPI + uvicorn app
already has; optional tools are imported only when asked for.
"""
from __future__ import annotations

import argparse
import asyncio
import faulthandler
import importlib
import ipaddress
import json
import os
import signal
import sys
import time
from pathlib import Path

from .cost import CostMeter
from .events import EventLog
from .watchdog import AGENT_WORK, LoopWatchdog


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m instrument.agent")
    p.add_argument("--app", required=True, help="MODULE:ATTR of the ASGI app")
    p.add_argument("--app-dir", default=".", help="made the cwd and first on sys.path")
    p.add_argument("--code-root", action="append", default=[], help="what counts as the target's own code")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--run-dir", required=True)
    p.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    p.add_argument("--stall-threshold-ms", type=float, default=50.0)
    p.add_argument("--busy-sample-hz", type=float, default=50.0, help="stack samples per second while busy")
    p.add_argument("--trace-memory", action="store_true")
    p.add_argument("--trace-frames", type=int, default=10)  # each frame costs every traced allocation
    # a snapshot holds the GIL while it copies every trace (a second or more on a
    # loaded target): few of them, the last one at shutdown off the loop
    p.add_argument("--trace-interval-s", type=float, default=60.0)
    p.add_argument("--profile", choices=["none", "pyinstrument", "yappi"], default="none")
    p.add_argument("--monitor-port", type=int)
    p.add_argument("--coverage", action="store_true", help="coverage.py over the code roots while the load runs")
    p.add_argument("--report-module", action="append", default=[])
    p.add_argument("--ws-deflate", choices=["on", "off"], default="on",
                   help="whether the server accepts permessage-deflate (uvicorn's default: on, as Auralis runs)")
    return p.parse_args(argv)


def _fail(msg: str) -> "NoReturn":  # noqa: F821
    print(f"agent error: {msg}", file=sys.stderr, flush=True)
    sys.exit(2)


def _versions() -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {}
    for name in ("uvicorn", "starlette", "fastapi", "numpy", "uvloop", "websockets"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    try:
        if not ipaddress.ip_address(a.host).is_loopback:
            _fail(f"refusing to bind {a.host}: targets bind to loopback only")
    except ValueError:
        if a.host != "localhost":
            _fail(f"refusing to bind {a.host}: targets bind to loopback only")
    if a.stall_threshold_ms < 10:
        _fail("--stall-threshold-ms must be >= 10")
    run_dir = Path(a.run_dir).resolve()
    out = run_dir / "agent"
    out.mkdir(parents=True, exist_ok=True)
    app_dir = Path(a.app_dir).resolve()
    os.chdir(app_dir)
    sys.path.insert(0, str(app_dir))
    roots = [str(Path(r).resolve()) for r in (a.code_root or [str(app_dir)])]

    fh_log = open(out / "faulthandler.log", "w")
    faulthandler.enable(file=fh_log, all_threads=True)
    # the wrapper's liveness probe asks for every thread's stack when the target
    # stops answering: a C-level handler, so it works while the loop is blocked
    faulthandler.register(signal.SIGUSR1, file=fh_log, all_threads=True, chain=False)
    log = EventLog(out)
    meter = CostMeter(out)
    watchdog = LoopWatchdog(log, threshold_s=a.stall_threshold_ms / 1000.0, code_roots=roots,
                            busy_sample_hz=a.busy_sample_hz, faulthandler_file=fh_log, periodic=meter.write)
    watchdog.install_gc_callbacks()

    profiler = None
    if a.profile != "none":
        from .profiling import start_profiler

        try:
            profiler = start_profiler(a.profile, out)
        except ImportError as e:
            _fail(f"--profile {a.profile} needs module '{e.name}' in the target's Python")

    run_cov = None
    if a.coverage:  # before the app's import: its module-level lines count
        from .runcoverage import RunCoverage

        try:
            run_cov = RunCoverage(out, roots)
        except ImportError as e:
            _fail(f"--coverage needs module '{e.name}' in the target's Python")

    # every asyncio.Queue the app makes is registered with its creation site,
    # so the send-buffer sampler can measure the server's own send queues
    from .sendbuffers import SendBufferSampler, install_queue_registry

    install_queue_registry()

    # semaphore permits a task kept when it ended (a server's slots leaking):
    # before the app's import, so its module-level semaphores are seen made
    from .permits import PermitLedger
    from .sites import CodeRoots

    code_roots = CodeRoots(roots)
    PermitLedger(log, code_roots).install()

    module_name, _, attr = a.app.partition(":")
    try:
        app = getattr(importlib.import_module(module_name), attr or "app")
    except Exception as e:  # the target's own import error: say it, exit like a crashed target
        import traceback

        traceback.print_exc()
        _fail(f"cannot import {a.app}: {type(e).__name__}: {e}")

    # measured locations: the route table the app runs, where it sends each
    # WebSocket message type (instrument/agent/sites.py)
    from .sites import WebSocketSites, write_routes

    WebSocketSites(log, code_roots).install()
    from .thread_names import start as record_thread_names

    record_thread_names(log)

    # Everything the server would import lazily on its first turns (the HTTP and
    # WebSocket protocol classes, the lifespan handler) is imported now, before
    # the loop runs and before tracemalloc: done on the loop, under tracing or a
    # profiler, those imports were the run's worst "stalls" and were the tool's.
    import uvicorn

    config = uvicorn.Config(app, host=a.host, port=a.port, loop="none", lifespan="auto", log_level="info",
                            ws_per_message_deflate=a.ws_deflate == "on")
    config.load()
    server = uvicorn.Server(config)

    tracer = None
    if a.trace_memory:
        # after the app's imports (tracing every allocation of numpy/scipy/fastapi
        # imports made start-up take over a minute), before the loop runs
        from .memtrace import MemTracer

        tracer = MemTracer(log, frames=a.trace_frames, interval_s=a.trace_interval_s, code_roots=roots)
        tracer.start()

    if a.loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            _fail("--loop uvloop but uvloop is not installed in the target's Python")
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    modules = {}
    for name in a.report_module:
        mod = sys.modules.get(name)
        if mod is None:
            try:
                mod = importlib.import_module(name)
            except Exception:
                mod = None
        modules[name] = {"present": mod is not None, "file": getattr(mod, "__file__", None) if mod else None}
    info = {
        "pid": os.getpid(), "python": sys.version.split()[0], "executable": sys.executable,
        "loop": f"{type(loop).__module__}.{type(loop).__qualname__}", "app": a.app, "code_roots": roots,
        "stall_threshold_ms": a.stall_threshold_ms, "versions": _versions(), "report_modules": modules,
        "options": {"trace_memory": a.trace_memory, "profile": a.profile, "monitor_port": a.monitor_port,
                    "ws_deflate": a.ws_deflate, "coverage": a.coverage},
        "started_t": time.time(),
    }
    if tracer is not None:  # tracemalloc's factor on this process's Python, measured at its start
        info["tracemalloc_slowdown"] = tracer.slowdown
    (out / "agent.json").write_text(json.dumps(info, indent=1))

    # the console's imports (aiohttp, yarl, prompt_toolkit) and its UI thread's
    # start-up happen here, before the loop runs: done on the loop they were a
    # 0.7 s "stall" of the target
    monitor = None
    if a.monitor_port:
        from .console import start_monitor

        try:
            monitor = start_monitor(loop, a.monitor_port, out)
        except ImportError as e:
            _fail(f"--monitor needs module '{e.name}' in the target's Python")
        meter.register(getattr(monitor, "_ui_thread", None))

    sendbuffers = SendBufferSampler(log, server.server_state, code_roots=roots)
    from .lifecycle import watch_shutdown  # imported before the loop runs: an import on it is a stall


    async def serve() -> None:
        watchdog.start(loop)
        sendbuffers.start(loop)

        async def routes_once_started() -> None:
            # an app may include its routers during startup (lifespan): read
            # the table once uvicorn says the app has started
            while not server.started and not server.should_exit:
                await asyncio.sleep(0.2)
            try:
                write_routes(app, code_roots, out)
            except Exception as e:  # a route table we cannot read costs locations, never the run
                print(f"agent: could not read the app's routes: {type(e).__name__}: {e}", file=sys.stderr, flush=True)

        routes_task = asyncio.ensure_future(routes_once_started())  # noqa: F841 (kept referenced until serve ends)
        shutdown_watch = asyncio.ensure_future(watch_shutdown(server, out, roots))  # the shutdown check's evidence
        try:
            await server.serve()
        finally:
            shutdown_watch.cancel()
            sendbuffers.stop()
            meter.snapshot()  # the watchdog's CPU, read while its thread still runs (a short run may have no periodic one)
            watchdog.stop()

    # uvicorn re-raises the SIGTERM it handled once it has shut down, with the
    # handlers it found installed; with the default ones that kills us before the
    # profiles and the last tracemalloc snapshot are written
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    meter.start()
    try:
        loop.run_until_complete(serve())
        from .lifecycle import record_threads, watch_exit

        record_threads(out, roots)  # what still runs once the server has shut down (the shutdown check)
        watch_exit(out)
    finally:
        meter.write()  # before the profilers' own shutdown work, which is not the target's
        if monitor is not None:
            monitor.close()
        with AGENT_WORK:
            if tracer is not None:
                tracer.stop()
            if profiler is not None:
                profiler.stop()
            if run_cov is not None:
                # the route table as it ended up (an app may add routes in its lifespan)
                run_cov.record_routes(app)
                run_cov.stop()
        log.close()
        faulthandler.disable()
        fh_log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
