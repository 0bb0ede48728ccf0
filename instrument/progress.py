"""One live line on the terminal while a run goes: elapsed/total, users,
active streams, MB received, errors, latest loop stall. On a terminal it is a
rich live line; in a log (CI) a plain line every 10 s."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.text import Text

from . import loadgen


class StallTail:
    """Reads new lines of agent/stalls.jsonl without re-reading the file."""

    def __init__(self, path: Path):
        self.path = path
        self.pos = 0
        self.latest: dict[str, Any] | None = None
        self.count = 0

    def poll(self) -> None:
        try:
            with open(self.path, "r", encoding="utf-8") as fh:
                fh.seek(self.pos)
                for line in fh:
                    if not line.endswith("\n"):
                        break
                    self.pos += len(line.encode("utf-8"))
                    try:
                        self.latest = json.loads(line)
                        self.count += 1
                    except json.JSONDecodeError:
                        pass
        except FileNotFoundError:
            pass


class Progress:
    def __init__(self, run_dir: Path, total_s: float, *, quiet: bool = False):
        self.run_dir = run_dir
        self.total_s = total_s
        self.t0 = time.monotonic()
        self.stalls = StallTail(run_dir / "agent" / "stalls.jsonl")
        self.console = Console(stderr=True)
        self.live: Live | None = None
        self.quiet = quiet
        self.last_plain = 0.0

    def __enter__(self) -> "Progress":
        if not self.quiet and self.console.is_terminal:
            self.live = Live(Text(""), console=self.console, refresh_per_second=4, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live:
            self.tick()
            self.live.__exit__(*exc)

    def line(self) -> str:
        p = loadgen.progress(self.run_dir)
        self.stalls.poll()
        elapsed = time.monotonic() - self.t0
        stall = ""
        if self.stalls.latest:
            s = self.stalls.latest
            loc = s.get("location") or {}
            where = f"{Path(str(loc.get('file') or '?')).name}:{loc.get('line') or '?'}"
            stall = f" | stalls {self.stalls.count}, last {s.get('duration_ms', 0):.0f} ms @ {where}"
        return (f"{elapsed:5.0f}/{self.total_s:.0f} s | users {p['users']} | streams {p['active_streams']} active, "
                f"{p['streams']} total | {p['bytes'] / 1e6:8.1f} MB | errors {p['errors']}"
                + (f" | cycles {p['cycles']}" if p["cycles"] else "") + stall)

    def tick(self) -> None:
        if self.quiet:
            return
        if self.live:
            self.live.update(Text(self.line()))
        elif time.monotonic() - self.last_plain >= 10:
            self.last_plain = time.monotonic()
            print(self.line(), file=sys.stderr, flush=True)
