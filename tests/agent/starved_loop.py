"""A bare loop under the watchdog, for tests: `python starved_loop.py OUT_DIR MODE SECONDS`.
MODE "block": the loop blocks in time.sleep (the target's own stall);
MODE "idle": the loop idles (a test starves it from outside);
MODE "agent-work": the loop idles while another thread holds the GIL for
~200 ms at a time inside AGENT_WORK (as a tracemalloc snapshot does)."""
from __future__ import annotations

import asyncio
import sys
import threading
import time
from pathlib import Path

from instrument.agent.events import EventLog
from instrument.agent.watchdog import AGENT_WORK, LoopWatchdog


def _hold_gil_as_the_agent(stop: threading.Event) -> None:
    n, took = 1 << 16, 0.0
    # calibrate: one C call that holds the GIL for ~200 ms of this thread's
    # CPU. Not wall time: with the other test worker busy, preemption made a
    # small call look 200 ms long, and once that worker went idle the calls
    # held the GIL under the 50 ms threshold and stalled nothing
    while took < 0.2:
        n *= 2
        with AGENT_WORK:
            t = time.thread_time()
            sum(range(n))
            took = time.thread_time() - t
    while not stop.wait(0.3):
        with AGENT_WORK:
            sum(range(n))


async def main(out: Path, mode: str, seconds: float) -> None:
    log = EventLog(out)
    wd = LoopWatchdog(log, threshold_s=0.05, code_roots=[str(Path(__file__).parent)], busy_sample_hz=0)
    wd.start(asyncio.get_running_loop())
    stop = threading.Event()
    if mode == "agent-work":
        threading.Thread(target=_hold_gil_as_the_agent, args=(stop,), name="earshot-test-work", daemon=True).start()
    print("ready", flush=True)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if mode == "block":
            time.sleep(0.2)  # blocking the loop: the target's fault
        await asyncio.sleep(0.3)
    stop.set()
    wd.stop()
    log.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])))
