"""A bare loop under the watchdog, for tests: `python starved_loop.py OUT_DIR MODE SECONDS`.
MODE "block": the loop blocks in time.sleep (the target's own stall);
MODE "idle": the loop idles (a test starves it from outside)."""
from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from instrument.agent.events import EventLog
from instrument.agent.watchdog import LoopWatchdog


async def main(out: Path, mode: str, seconds: float) -> None:
    log = EventLog(out)
    wd = LoopWatchdog(log, threshold_s=0.05, code_roots=[str(Path(__file__).parent)], busy_sample_hz=0)
    wd.start(asyncio.get_running_loop())
    print("ready", flush=True)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if mode == "block":
            time.sleep(0.2)  # blocking the loop: the target's fault
        await asyncio.sleep(0.3)
    wd.stop()
    log.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])))
