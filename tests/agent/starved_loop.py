"""A bare loop under the watchdog, for tests: `python starved_loop.py OUT_DIR MODE SECONDS`.
MODE "block": the loop blocks in time.sleep (the target's own stall);
MODE "idle": the loop idles (a test starves it from outside);
MODE "agent-work": the loop idles while another thread holds the GIL for
~200 ms at a time inside AGENT_WORK (as a tracemalloc snapshot does);
MODE "target-gil": the same, by a thread of "the target", outside AGENT_WORK;
MODE "worker": the loop runs short Python turns beside a thread of "the
target" that computes in Python (it holds the GIL between switches; a test
starves it of CPU); MODE "worker-block": the same, and the loop blocks in
time.sleep.
The worker's native id follows "ready", for a test to pin and nice it; the
loop starts its turns at the next line on stdin."""
from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from pathlib import Path

from instrument.agent.events import EventLog
from instrument.agent.watchdog import AGENT_WORK, LoopWatchdog


def _hold_gil_as_the_agent(stop: threading.Event) -> None:
    _hold_gil(stop, AGENT_WORK)


def _hold_gil(stop: threading.Event, work) -> None:
    n, took = 1 << 16, 0.0
    # calibrate: one C call that holds the GIL for ~200 ms of this thread's
    # CPU. Not wall time: with the other test worker busy, preemption made a
    # small call look 200 ms long, and once that worker went idle the calls
    # held the GIL under the 50 ms threshold and stalled nothing
    while took < 0.2:
        n *= 2
        with work:
            t = time.thread_time()
            sum(range(n))
            took = time.thread_time() - t
    while not stop.wait(0.3):
        with work:
            sum(range(n))


def _compute(stop: threading.Event) -> None:
    while not stop.is_set():
        sum(i * i for i in range(20000))  # Python bytecode: it gives up the GIL only when asked, and running


def _turn() -> None:
    end = time.perf_counter() + 0.001
    while time.perf_counter() < end:  # Python bytecode, well under the stall threshold
        pass


async def main(out: Path, mode: str, seconds: float) -> None:
    log = EventLog(out)
    wd = LoopWatchdog(log, threshold_s=0.05, code_roots=[str(Path(__file__).parent)], busy_sample_hz=0)
    wd.start(asyncio.get_running_loop())
    stop = threading.Event()
    if mode == "agent-work":
        threading.Thread(target=_hold_gil_as_the_agent, args=(stop,), name="earshot-test-work", daemon=True).start()
    elif mode == "target-gil":
        threading.Thread(target=_hold_gil, args=(stop, contextlib.nullcontext()), name="render-worker",
                         daemon=True).start()
    worker = None
    if mode.startswith("worker"):
        await asyncio.to_thread(int)  # the executor's import and first thread, before the test starts to watch
        worker = threading.Thread(target=_compute, args=(stop,), name="render-worker", daemon=True)
        worker.start()
    print("ready", worker.native_id if worker else "", flush=True)
    if worker is not None:  # the test pins and nices the worker first: its moving is not the loop's stall
        await asyncio.to_thread(sys.stdin.readline)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if mode in ("block", "worker-block"):
            time.sleep(0.2)  # blocking the loop: the target's fault
        if mode.startswith("worker"):
            for _ in range(50):
                _turn()
                await asyncio.sleep(0.005)
        else:
            await asyncio.sleep(0.3)
    stop.set()
    wd.stop()
    log.close()


def run(tmp: Path, mode: str, seconds: float) -> list[dict]:
    """For a test: this script in MODE under a watchdog with a 50 ms
    threshold, writing into tmp/agent; the stalls it recorded."""
    import json
    import os
    import subprocess

    agent = tmp / "agent"
    agent.mkdir(parents=True, exist_ok=True)
    (agent / "agent.json").write_text(json.dumps({"stall_threshold_ms": 50}))
    p = subprocess.run([sys.executable, __file__, str(agent), mode, str(seconds)],
                       env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2])),
                       capture_output=True, text=True, timeout=seconds + 60)
    assert p.returncode == 0, p.stderr
    path = agent / "stalls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])))
