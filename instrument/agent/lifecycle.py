"""What is still running inside the target when its server has shut down:
every live thread, whether it is an idle worker of a thread pool, and its
innermost frames (the target's own code first). Written once, after
uvicorn's serve() returned (lifespan shutdown done), to
RUN/agent/threads_at_exit.json; the shutdown check judges it. Standard
library only: this runs in the target's interpreter."""
from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
from pathlib import Path

# the innermost frame of a pool worker waiting for work
_IDLE_WAITS = (("threading.py", "wait"), ("queue.py", "get"), ("concurrent/futures/thread.py", "_worker"))
_POOL_LOOPS = ("concurrent/futures/thread.py", "anyio/_backends/_asyncio.py", "asyncio/base_events.py")


def _frames(frame, limit: int = 40) -> list[dict[str, object]]:
    return [{"file": f.filename, "line": f.lineno, "function": f.name}
            for f in traceback.extract_stack(frame, limit=limit)][::-1]  # innermost first


def _idle(frames: list[dict[str, object]]) -> bool:
    """A pool worker blocked waiting for its next work item (not running any)."""
    if not frames:
        return False
    top = frames[0]
    waiting = any(str(top["file"]).endswith(f) and top["function"] == fn for f, fn in _IDLE_WAITS)
    in_pool = any(any(str(f["file"]).endswith(p) for p in _POOL_LOOPS) for f in frames)
    # a pool worker's stack is the pool loop plus the wait; deeper means it is running a job
    own = [f for f in frames if not any(s in str(f["file"]) for s in ("threading.py", "queue.py") + _POOL_LOOPS)]
    return waiting and in_pool and not own


def record_threads(out_dir: Path, code_roots: list[str]) -> None:
    try:
        current = sys._current_frames()
        me = threading.get_ident()
        threads = []
        for t in threading.enumerate():
            if t.ident == me or t.ident not in current or t.name.startswith("earshot-"):
                continue  # the agent's own threads are ours, not what the target left running
            frames = _frames(current[t.ident])
            own = [f for f in frames if any(str(f["file"]).startswith(r + os.sep) for r in code_roots)]
            threads.append({"name": t.name, "daemon": t.daemon, "idle_pool_worker": _idle(frames),
                            "own_frames": own[:6], "frames": frames[:8]})
        doc = {"t": time.time(), "pid": os.getpid(), "code_roots": code_roots, "threads": threads}
        (Path(out_dir) / "threads_at_exit.json").write_text(json.dumps(doc, indent=1, default=str))
    except Exception as e:  # never break the target's shutdown for a diagnostic
        try:
            (Path(out_dir) / "threads_at_exit.json").write_text(json.dumps({"error": repr(e)}))
        except OSError:
            pass


_exit_log = None  # kept open until the process ends: faulthandler writes to it from its own thread


def watch_exit(out_dir: Path, after_s: float = 5.0) -> None:
    """If the process is still alive `after_s` after its server shut down,
    dump every thread's stack to RUN/agent/exit_stacks.log (what holds the
    exit: a non-daemon thread, an atexit handler)."""
    global _exit_log
    import faulthandler

    try:
        _exit_log = open(Path(out_dir) / "exit_stacks.log", "w")
        faulthandler.dump_traceback_later(after_s, repeat=False, file=_exit_log, exit=False)
    except (OSError, ValueError):
        pass


def _request_of(coro) -> str | None:
    """'METHOD /path' of a uvicorn connection task (its protocol cycle's scope)."""
    try:
        scope = coro.cr_frame.f_locals["self"].scope
        return f"{scope.get('method') or scope.get('type', '').upper()} {scope.get('path')}"
    except Exception:
        return None


def _await_chain(coro, limit: int = 60) -> list[dict[str, object]]:
    """The frames of a suspended coroutine and of everything it awaits,
    outermost first (Task.get_stack gives only the outermost frame)."""
    frames = []
    c = coro
    while c is not None and len(frames) < limit:
        f = getattr(c, "cr_frame", None) or getattr(c, "gi_frame", None) or getattr(c, "ag_frame", None)
        if f is not None:
            frames.append({"file": f.f_code.co_filename, "line": f.f_lineno, "function": f.f_code.co_name})
        c = getattr(c, "cr_await", None) or getattr(c, "gi_yieldfrom", None) or getattr(c, "ag_await", None)
    return frames


async def watch_shutdown(server, out_dir: Path, code_roots: list[str], after_s: float = 3.0) -> None:
    """Once the server was told to exit (SIGTERM), wait `after_s`, then write
    every asyncio task still pending, with its coroutine stack, to
    RUN/agent/shutdown_tasks.json: what a shutdown that does not finish is
    waiting for, named by the target's own handler."""
    import asyncio

    try:
        while not getattr(server, "should_exit", False):
            await asyncio.sleep(0.2)
        await asyncio.sleep(after_s)
        me = asyncio.current_task()
        tasks = []
        for t in asyncio.all_tasks():
            if t is me or t.done():
                continue
            coro = t.get_coro()
            frames = _await_chain(coro)
            tasks.append({"name": t.get_name(), "coro": getattr(coro, "__qualname__", repr(coro))[:120],
                          "request": _request_of(coro),
                          # a connection uvicorn waits for before it can finish shutting down
                          "connection": any(f["function"] == "run_asgi" for f in frames),
                          "frames": frames[-10:],
                          "own_frames": [f for f in frames if any(f["file"].startswith(r + os.sep) for r in code_roots)][-6:]})
        doc = {"t": time.time(), "after_s": after_s, "pid": os.getpid(), "code_roots": code_roots, "tasks": tasks}
        (Path(out_dir) / "shutdown_tasks.json").write_text(json.dumps(doc, indent=1, default=str))
    except asyncio.CancelledError:
        raise
    except Exception:
        pass  # a diagnostic never breaks the target's shutdown
