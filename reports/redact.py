"""Remove what identifies a person or a machine from anything published.

Everything that leaves the machine (issue titles, bodies, comments, the audit
written into a target checkout) passes through `redact()`: absolute home
paths become `~/...`, user names become `<user>`, and anything shaped like a
GitHub token becomes `<redacted-token>` (a defence in depth: tokens are never
put into text in the first place).
"""
from __future__ import annotations

import getpass
import os
import re
from typing import Any, Iterable

# home folders: Linux (/home/<user>), macOS (/Users/<user>), root's, and Windows C:\Users\<user>
_HOME_PATH = re.compile(r"(?:/home/|/Users/)([A-Za-z0-9._-]+)(?=/|\b)")
_ROOT_PATH = re.compile(r"(?<![\w.~/-])/root(?=/|\b)")
_WIN_HOME = re.compile(r"[A-Za-z]:\\Users\\([A-Za-z0-9._-]+)", re.IGNORECASE)
# GitHub token shapes (the fine-grained prefix is split so this file is not itself flagged as a token)
_TOKEN = re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github" r"_pat_[A-Za-z0-9_]{20,})\b")

# Account names that are also ordinary words in reports ("root cause"): their
# home paths are still redacted, the bare word is left alone.
_COMMON_WORDS = {"root", "admin", "user", "users", "home", "runner", "nobody", "test", "ubuntu", "debian"}


def _local_identity() -> tuple[str | None, str | None]:
    home = os.environ.get("HOME") or None
    try:
        user = getpass.getuser() or None
    except Exception:  # no passwd entry in some containers
        user = os.environ.get("USER") or None
    return home, user


def user_names(texts: Iterable[str] = ()) -> set[str]:
    """The user names to remove: this machine's, and any seen in home paths
    of `texts` (a run recorded on another machine carries its user's paths)."""
    names: set[str] = set()
    home, user = _local_identity()
    if user:
        names.add(user)
    if home:
        base = os.path.basename(home.rstrip("/"))
        if base:
            names.add(base)
    for t in texts:
        names.update(m.group(1) for m in _HOME_PATH.finditer(t))
        names.update(m.group(1) for m in _WIN_HOME.finditer(t))
    return {n for n in names if len(n) >= 3 and n.lower() not in _COMMON_WORDS}


def redact(text: str, *, extra_names: Iterable[str] = ()) -> str:
    if not text:
        return text
    home, _ = _local_identity()
    out = _TOKEN.sub("<redacted-token>", text)
    names = user_names([out]) | {n for n in extra_names if len(n) >= 3 and n.lower() not in _COMMON_WORDS}
    # the current $HOME first: it may live outside /home (e.g. /srv/build)
    if home and home not in ("/", "") and len(home) > 1:
        out = re.sub(re.escape(home.rstrip("/")) + r"(?=/|\b)", "~", out)
    out = _HOME_PATH.sub("~", out)
    out = _WIN_HOME.sub("~", out)
    out = _ROOT_PATH.sub("~", out)
    for name in sorted(names, key=len, reverse=True):
        out = re.sub(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", "<user>", out)
    return out


def redact_obj(obj: Any, *, extra_names: Iterable[str] = ()) -> Any:
    """Redact every string inside a JSON-like structure."""
    names = list(extra_names)
    if isinstance(obj, str):
        return redact(obj, extra_names=names)
    if isinstance(obj, list):
        return [redact_obj(v, extra_names=names) for v in obj]
    if isinstance(obj, tuple):
        return tuple(redact_obj(v, extra_names=names) for v in obj)
    if isinstance(obj, dict):
        return {k: redact_obj(v, extra_names=names) for k, v in obj.items()}
    return obj
