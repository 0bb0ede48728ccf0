"""The bisect log: OUT/bisect-log.jsonl, one JSON object a line, appended
and fsync'd as each step is decided, so an interrupted bisect resumes where
it stopped (`python -m instrument.bisect ... --out OUT` again).

  {"kind": "start", "params": {...}}     what is being bisected; a resume must match it
  {"kind": "step", "commit": SHA, ...}   one decided commit: verdict, reason, runs, wall time

A step cut short (Ctrl-C, a crash) is not in the log; its run directories are
kept, renamed `*.interrupted-N`, and the commit is tested again.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

LOG_NAME = "bisect-log.jsonl"


class LogMismatch(Exception):
    """The directory holds a bisect of other parameters."""


class BisectLog:
    def __init__(self, out: Path):
        self.path = Path(out) / LOG_NAME
        self.params: dict[str, Any] | None = None
        self.steps: list[dict[str, Any]] = []

    def load(self) -> bool:
        """Read an existing log; False when there is none. A torn last line
        (killed mid-write) is dropped: that step runs again."""
        if not self.path.exists():
            return False
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if rec.get("kind") == "start":
                self.params = rec.get("params")
            elif rec.get("kind") == "step":
                self.steps.append(rec)
        return self.params is not None

    def start(self, params: dict[str, Any]) -> bool:
        """Begin, or resume when the log holds the same bisect. Returns True on
        a resume; raises LogMismatch when the log is of another bisect."""
        if self.load():
            if self.params != params:
                diff = sorted(k for k in set(params) | set(self.params or {})
                              if params.get(k) != (self.params or {}).get(k))
                raise LogMismatch(f"{self.path.parent} holds a bisect with other parameters ({', '.join(diff)}); "
                                  "use a new --out directory")
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._append({"kind": "start", "params": params})
        self.params = params
        return False

    def add_step(self, step: dict[str, Any]) -> None:
        rec = {"kind": "step", **step}
        self._append(rec)
        self.steps.append(rec)

    def _append(self, rec: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
