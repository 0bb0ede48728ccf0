"""Optional in-target tools (pyinstrument, yappi, aiomonitor, coverage) for a target
interpreter that lacks them.

A user's Auralis environment has only Auralis's requirements. Rather than
install into it (we never touch the user's environment), the tools go into a
cache folder of ours keyed by that interpreter's version, installed with its
own pip (`pip install --target`), and that folder is appended to the target's
PYTHONPATH for the run.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

# import name -> pip requirement
TOOLS = {"pyinstrument": "pyinstrument>=4.6", "yappi": "yappi>=1.6", "aiomonitor": "aiomonitor>=0.7",
         "coverage": "coverage>=7.6"}


class TargetSiteError(Exception):
    pass


def cache_root() -> Path:
    base = os.environ.get("EARSHOT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "earshot")
    return Path(base) / "target-site"


def _tag(python: str) -> str:
    r = subprocess.run([python, "-c", "import sys,sysconfig;print(sys.implementation.cache_tag+'-'+sysconfig.get_platform())"],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise TargetSiteError(f"cannot query {python}: {r.stderr.strip()[-200:]}")
    return r.stdout.strip()


def _missing(python: str, modules: list[str], extra_path: Path | None) -> list[str]:
    env = dict(os.environ)
    if extra_path:
        env["PYTHONPATH"] = str(extra_path)
    code = "import importlib.util,sys;print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))"
    r = subprocess.run([python, "-c", code, *modules], capture_output=True, text=True, timeout=60, env=env)
    return r.stdout.split()


def ensure(python: str, modules: list[str]) -> Path | None:
    """Make `modules` importable by `python`. Returns a folder to append to
    its PYTHONPATH, or None when it already has them all."""
    modules = [m for m in modules if m in TOOLS]
    if not modules or not _missing(python, modules, None):
        return None
    site = cache_root() / _tag(python)
    missing = _missing(python, modules, site)
    if missing:
        site.mkdir(parents=True, exist_ok=True)
        r = subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target",
                            str(site), *[TOOLS[m] for m in missing]], capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            last = (r.stderr.strip().splitlines() or ["pip failed"])[-1]
            raise TargetSiteError(f"could not install {', '.join(missing)} for the target's Python: {last}")
        still = _missing(python, modules, site)
        if still:
            raise TargetSiteError(f"{', '.join(still)} still not importable by {python} after install")
    return site
