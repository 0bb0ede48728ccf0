"""Out-of-process sampling of a process and its children with psutil: no
code runs inside the target for it. A thread of the wrapper appends one line
per sample to a JSON Lines file, flushed; it stops quietly when the process
is gone."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import psutil


class ProcessSampler:
    def __init__(self, pid: int, out_path: Path, hz: float = 5.0, uss_every: int = 5):
        try:
            self.proc: psutil.Process | None = psutil.Process(pid)
        except psutil.NoSuchProcess:  # died before sampling began: nothing to record
            self.proc = None
        self.out_path = Path(out_path)
        self.period = 1.0 / hz
        self.uss_every = uss_every  # USS reads /proc/<pid>/smaps: costly on a big process, so less often
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sampler-{pid}", daemon=True)
        self._cpu: dict[int, psutil.Process] = {}

    def start(self) -> "ProcessSampler":
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _procs(self) -> list[psutil.Process]:
        procs = [self.proc]
        try:
            procs += self.proc.children(recursive=True)
        except psutil.Error:
            pass
        # keep Process objects across samples: cpu_percent() measures since the previous call
        out = []
        for p in procs:
            out.append(self._cpu.setdefault(p.pid, p))
        return out

    def _run(self) -> None:
        if self.proc is None:
            return
        n = 0
        with open(self.out_path, "a", encoding="utf-8", buffering=1) as fh:
            while not self._stop.is_set():
                t = time.time()
                rec = {"t": t, "pid": self.proc.pid, "rss": 0, "cpu_percent": 0.0, "threads": 0, "fds": 0,
                       "procs": 0}
                alive = False
                for p in self._procs():
                    try:
                        with p.oneshot():
                            rec["rss"] += p.memory_info().rss
                            rec["cpu_percent"] += p.cpu_percent(interval=None)
                            rec["threads"] += p.num_threads()
                            rec["fds"] += p.num_fds()
                            if n % self.uss_every == 0:
                                rec["uss"] = rec.get("uss", 0) + p.memory_full_info().uss
                        rec["procs"] += 1
                        alive = alive or p.pid == self.proc.pid
                    except psutil.Error:
                        continue
                if not alive or rec["rss"] == 0:  # gone, or a zombie awaiting its parent
                    return
                if n > 0:  # the first cpu_percent() of a process is meaningless
                    fh.write(json.dumps(rec) + "\n")
                n += 1
                self._stop.wait(max(0.0, self.period - (time.time() - t)))
