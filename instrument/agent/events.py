"""JSON Lines event files under RUN/agent/, one line per event, flushed per
write so a SIGKILL loses nothing already recorded. Thread-safe: the loop
thread and the watchdog thread both write."""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any


class EventLog:
    def __init__(self, out_dir: Path):
        self.dir = out_dir
        self._files: dict[str, Any] = {}
        self._lock = threading.Lock()

    def write(self, stream: str, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":"), default=str) + "\n"
        with self._lock:
            fh = self._files.get(stream)
            if fh is None:
                fh = self._files[stream] = open(self.dir / f"{stream}.jsonl", "a", encoding="utf-8")
            fh.write(line)
            fh.flush()

    def close(self) -> None:
        with self._lock:
            for fh in self._files.values():
                fh.close()
            self._files.clear()
