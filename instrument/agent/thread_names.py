"""The target's thread names by native id, for the out-of-process per-thread
CPU sampler (instrument/cpu_threads.py): /proc shows every Python thread as
"python", while threading knows "ThreadPoolExecutor-2_3" or "asyncio_0".
A daemon thread records the mapping when it changes (a few lines a run)."""
from __future__ import annotations

import threading
import time

from .events import EventLog


def _snapshot() -> dict[str, str]:
    return {str(t.native_id): t.name for t in threading.enumerate() if t.native_id is not None}


def start(log: EventLog, period_s: float = 1.0) -> threading.Thread:
    def run() -> None:
        last: dict[str, str] = {}
        while True:
            now = _snapshot()
            new = {k: v for k, v in now.items() if last.get(k) != v}
            if new:
                log.write("threads", {"t": time.time(), "names": new})
                last.update(new)
            time.sleep(period_s)

    t = threading.Thread(target=run, name="earshot-thread-names", daemon=True)
    t.start()
    return t
