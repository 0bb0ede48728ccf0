"""What the agent's permit ledger (instrument/agent/permits.py) costs a
semaphore: a task's acquire and release, bare and under the ledger, in
interleaved rounds in one process (the patch is undone between rounds), so
machine drift hits both alike. Each round: TASKS tasks each take and give
back a permit of a Semaphore(10) CYCLES times, as a stream does once, with a
frame stack a few own frames deep. Printed: microseconds per acquire+release
pair, bare and with the ledger, and their ratio per round (median and range).
A stream takes its slot once, so even a large ratio here is nanoseconds per
stream; this shows it.

    python benchmarks/permit_ledger.py [--rounds 7] [--tasks 200] [--cycles 50]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from instrument.agent.events import EventLog  # noqa: E402
from instrument.agent.permits import PermitLedger  # noqa: E402
from instrument.agent.sites import CodeRoots  # noqa: E402


async def _round(tasks: int, cycles: int) -> float:
    sem = asyncio.Semaphore(10)

    async def stream() -> None:
        for _ in range(cycles):
            await sem.acquire()
            try:
                await asyncio.sleep(0)
            finally:
                sem.release()

    async def handler() -> None:  # a few frames deep, as a server's stream is
        await stream()

    t0 = time.perf_counter()
    await asyncio.gather(*[asyncio.get_running_loop().create_task(handler()) for _ in range(tasks)])
    return (time.perf_counter() - t0) / (tasks * cycles) * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--tasks", type=int, default=200)
    ap.add_argument("--cycles", type=int, default=50)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = EventLog(Path(tmp))
        # this file is the "target's own code", so the ledger walks its frames as it would a server's
        ledger = PermitLedger(log, CodeRoots([str(ROOT / "benchmarks")]))
        bare, ledg, ratio = [], [], []
        for _ in range(a.rounds):
            b = asyncio.run(_round(a.tasks, a.cycles))
            ledger.install()
            w = asyncio.run(_round(a.tasks, a.cycles))
            ledger.uninstall()
            bare.append(b)
            ledg.append(w)
            ratio.append(w / b)
        log.close()
        leaks = (Path(tmp) / "permits.jsonl").exists()
    print(f"acquire+release pair, {a.tasks} tasks x {a.cycles} cycles, {a.rounds} interleaved rounds")
    print(f"  bare       {statistics.median(bare):7.2f} us (median)")
    print(f"  ledger     {statistics.median(ledg):7.2f} us (median)")
    print(f"  ratio      {statistics.median(ratio):7.2f}x (range {min(ratio):.2f}-{max(ratio):.2f})")
    print(f"  extra      {statistics.median(ledg) - statistics.median(bare):7.2f} us per pair; leak records: "
          f"{'some (a bug)' if leaks else 'none'}")
    return 1 if leaks else 0


if __name__ == "__main__":
    raise SystemExit(main())
