from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, timeout: float = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """env: added to this process's environment (the wrapper passes it on to the target)."""
    # 40 s tracks keep three enhanced boundaries (15, 25, 35 s) and halve the suite's time
    return subprocess.run([sys.executable, "-m", "instrument.run", "--quiet", "--track-seconds", "40", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **env} if env else None)


def verdict_line(r: subprocess.CompletedProcess) -> str:
    lines = r.stdout.strip().splitlines()
    assert lines, r.stderr
    return lines[-1]


def leftovers(run_dir: Path) -> list[str]:
    """Processes still running that belong to this run (their command line
    names its directory)."""
    out = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(p.info.get("cmdline") or [])
        if str(run_dir) in cmd:
            out.append(f"{p.info['pid']}: {cmd[:160]}")
    return out


def fake_auralis(root: Path, main_py: str) -> Path:
    """A directory shaped like an Auralis checkout whose backend is `main_py`."""
    backend = root / "auralis-web" / "backend"
    backend.mkdir(parents=True)
    (backend / "main.py").write_text(main_py)
    return root


def run_json(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())
