"""The backends a run can launch: our reference backend, or a user's Auralis
checkout with the Python of its environment. Both start through our agent
(instrument.agent), which installs the instrumentation before the loop runs."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STANDIN = PROJECT_ROOT.parent / "shared" / "lab"


class TargetError(Exception):
    """A target that cannot be launched; the message is the one-line error."""


# Import names of the modules Auralis's backend needs at start, checked before
# launch so a wrong interpreter is named precisely instead of failing in a log.
AURALIS_REQUIRED_MODULES = (
    "fastapi", "uvicorn", "starlette", "pydantic", "numpy", "scipy", "soundfile",
    "sqlalchemy", "mutagen", "psutil", "multipart",
)


@dataclass
class Target:
    name: str
    python: str
    app: str
    app_dir: Path
    code_roots: list[Path]
    env: dict[str, str] = field(default_factory=dict)
    report_modules: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    ws_deflate: str = "on"  # uvicorn's default, which is how Auralis runs itself

    def agent_argv(self, *, port: int, run_dir: Path, loop: str, stall_ms: float, trace_memory: bool,
                   trace_frames: int, profile: str, monitor_port: int | None) -> list[str]:
        argv = [self.python, "-m", "instrument.agent", "--app", self.app, "--app-dir", str(self.app_dir)]
        for r in self.code_roots:
            argv += ["--code-root", str(r)]
        argv += ["--host", "127.0.0.1", "--port", str(port), "--run-dir", str(run_dir), "--loop", loop,
                 "--stall-threshold-ms", f"{stall_ms:g}", "--profile", profile]
        if trace_memory:
            argv += ["--trace-memory", "--trace-frames", str(trace_frames)]
        if monitor_port:
            argv += ["--monitor-port", str(monitor_port)]
        for m in self.report_modules:
            argv += ["--report-module", m]
        return argv + ["--ws-deflate", self.ws_deflate]

    def process_env(self, run_dir: Path, extra_pythonpath: list[Path] | None = None) -> dict[str, str]:
        """A fresh HOME/TMPDIR/caches inside the run directory: the user's real
        library and caches are never read or written, and caches start cold."""
        home = run_dir / "home"
        tmp = run_dir / "tmp"
        for d in (home, tmp, home / ".cache", home / ".cache" / "numba"):
            d.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_TOKEN", "GH_TOKEN"))}
        env.pop("PYTHONHOME", None)
        env.update(HOME=str(home), TMPDIR=str(tmp), XDG_CACHE_HOME=str(home / ".cache"),
                   NUMBA_CACHE_DIR=str(home / ".cache" / "numba"), PYTHONUNBUFFERED="1",
                   PYTHONDONTWRITEBYTECODE="1")
        paths = [str(p) for p in (extra_pythonpath or [])] + [str(PROJECT_ROOT)]
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env.update(self.env)
        return env


def reference_target(injections: frozenset[str]) -> Target:
    return Target(
        name="reference",
        python=sys.executable,
        app="instrument.reference.app:app",
        app_dir=PROJECT_ROOT,
        code_roots=[PROJECT_ROOT / "instrument" / "reference"],
        env={"EARSHOT_REF_INJECT": ",".join(sorted(injections))},
        info={"injections": sorted(injections), "ws_deflate": "off"},
        # a correct PCM server declines permessage-deflate: float PCM hardly
        # compresses, and websockets deflates every frame on the event loop
        # (measured: 60-120 ms stalls per 300 KB frame on this machine)
        ws_deflate="off",
    )


MIN_AURALIS_PYTHON = (3, 11)


def _check_python_version(py: str, shown: str) -> None:
    """The interpreter must say it is a Python >= 3.11: `/bin/true` exits 0
    and prints nothing, and must not pass for one."""
    try:
        out = subprocess.run([py, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True,
                             text=True, timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise TargetError(f"cannot run Auralis Python {shown}: {e}") from None
    m = re.fullmatch(r"\((\d+), (\d+)\)", out.stdout.strip())
    if out.returncode != 0 or not m:
        said = (out.stdout.strip() or out.stderr.strip() or "nothing").splitlines()[0][:80]
        raise TargetError(f"Auralis Python {shown} is not a Python interpreter (asked for its version, "
                          f"it said {said!r}, exit {out.returncode})")
    got = (int(m.group(1)), int(m.group(2)))
    if got < MIN_AURALIS_PYTHON:
        raise TargetError(f"Auralis Python {shown} is Python {got[0]}.{got[1]}; Auralis needs "
                          f"{MIN_AURALIS_PYTHON[0]}.{MIN_AURALIS_PYTHON[1]} or later")


def auralis_target(root: str | None, python: str | None, *, standin: Path | None = None) -> Target:
    if not root:
        raise TargetError("--target auralis needs --auralis-root PATH (or AURALIS_ROOT)")
    if not python:
        raise TargetError("--target auralis needs --auralis-python PATH (or AURALIS_PYTHON)")
    root_p = Path(root).expanduser().resolve()
    backend = root_p / "auralis-web" / "backend"
    if not root_p.is_dir():
        raise TargetError(f"Auralis root {root} does not exist")
    if not (backend / "main.py").is_file():
        raise TargetError(f"{root} is not an Auralis checkout (no auralis-web/backend/main.py)")
    py = Path(python).expanduser()
    if not py.exists() or not os.access(py, os.X_OK):
        raise TargetError(f"Auralis Python {python} is not an executable")
    _check_python_version(str(py), python)
    check = (
        "import importlib.util,sys\n"
        f"mods={AURALIS_REQUIRED_MODULES!r}\n"
        "missing=[m for m in mods if importlib.util.find_spec(m) is None]\n"
        "print(' '.join(missing))\n"
    )
    try:
        out = subprocess.run([str(py), "-c", check], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise TargetError(f"cannot run Auralis Python {python}: {e}") from None
    if out.returncode != 0:
        raise TargetError(f"Auralis Python {python} failed to start: {out.stderr.strip().splitlines()[-1:]}")
    missing = out.stdout.split()
    if missing:
        raise TargetError(
            f"Auralis Python {python} lacks module '{missing[0]}' of auralis-web/backend/requirements.txt"
            + (f" (also: {', '.join(missing[1:])})" if len(missing) > 1 else ""))
    # Dev mode serves /api/openapi.json, which the openapi check drives the API
    # from. Otherwise it only adds the docs routes, widens the origin
    # allowlists by the Vite ports 3000-3006 (the origins check probes other
    # origins) and does not mount the built SPA: nothing a run measures.
    extra: dict[str, str] = {"AURALIS_DEV_MODE": "1"}
    if standin is not None:
        if not (standin / "auralis_dsp.py").is_file() and not (standin / "auralis_dsp").is_dir():
            raise TargetError(f"DSP stand-in not found: {standin} has no auralis_dsp")
    t = Target(
        name="auralis",
        python=str(py),
        app="main:app",
        app_dir=backend,
        code_roots=[root_p],
        env=extra,
        report_modules=["auralis_dsp"],
        info={"root": str(root_p), "standin": str(standin) if standin else None, "dev_mode": True},
    )
    t.info.update(describe_checkout(root_p, str(py)))
    return t


def describe_checkout(root: Path, python: str) -> dict[str, Any]:
    """What ran: commit, dirty state, interpreter and package versions."""
    info: dict[str, Any] = {}

    def git(*args: str) -> str:
        try:
            r = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=20)
            return r.stdout.strip() if r.returncode == 0 else ""
        except (OSError, subprocess.TimeoutExpired):
            return ""

    info["git_commit"] = git("rev-parse", "HEAD") or None
    status = git("status", "--porcelain", "--untracked-files=no")
    info["git_dirty"] = bool(status) if info["git_commit"] else None
    info["git_dirty_files"] = len(status.splitlines()) if status else 0
    probe = (
        "import json,sys,importlib.metadata as m\n"
        "v={}\n"
        "for p in ('uvicorn','starlette','fastapi','numpy','uvloop','websockets','scipy'):\n"
        "    try: v[p]=m.version(p)\n"
        "    except Exception: v[p]=None\n"
        "print(json.dumps({'python':sys.version.split()[0],'packages':v}))\n"
    )
    try:
        r = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=60)
        info.update(json.loads(r.stdout))
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError):
        pass
    return info
