"""Child processes the wrapper owns: each in its own process group, all
killed (TERM, then KILL of the whole group) however the run ends, so no
orphan outlives a run, including on Ctrl-C or an exception."""
from __future__ import annotations

import atexit
import errno
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO, Sequence

_OWNED: list["OwnedProcess"] = []


class OwnedProcess:
    def __init__(self, name: str, argv: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
                 log: Path | None = None):
        self.name = name
        self.log_path = log
        self._log: IO[bytes] | None = open(log, "ab", buffering=0) if log else None
        self.proc = subprocess.Popen(
            list(argv), cwd=str(cwd) if cwd else None, env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log if self._log else subprocess.DEVNULL,
            stderr=subprocess.STDOUT if self._log else subprocess.DEVNULL,
            start_new_session=True,  # its own process group: we can kill it and all it spawns
        )
        self.pid = self.proc.pid
        _OWNED.append(self)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_exit(self, timeout_s: float) -> bool:
        """Wait up to timeout_s for the leader to exit; True once it has. A
        poll loop's sleep would let a finished process wait out the interval."""
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def send(self, sig: int) -> None:
        """Signal the whole group without waiting."""
        if self.alive():
            _signal_group(self.pid, sig)

    def stop(self, grace_s: float = 10.0, sig: int = signal.SIGTERM) -> int | None:
        """Ask the group to stop, then kill it. Returns the exit code."""
        if self.alive():
            _signal_group(self.pid, sig)
            try:
                self.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                pass
        # whatever the leader did, nothing of its group may survive
        _signal_group(self.pid, signal.SIGKILL)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        if self._log:
            self._log.close()
            self._log = None
        if self in _OWNED:
            _OWNED.remove(self)
        return self.proc.returncode

    def log_tail(self, lines: int = 15) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 16384))
            text = fh.read().decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        pass


def stop_together(procs: list["OwnedProcess"], grace_s: float) -> None:
    """SIGTERM every group at once and share one grace, then stop each (a
    SIGKILL for whatever is left): n processes cost one grace, not n."""
    for p in procs:
        p.send(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(p.alive() for p in procs):
        time.sleep(0.05)
    for p in procs:
        p.stop(grace_s=0.0)


def stop_all(grace_s: float = 5.0) -> None:
    for p in list(reversed(_OWNED)):
        p.stop(grace_s)


atexit.register(stop_all, 2.0)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as e:
            return e.errno in (errno.EADDRINUSE, errno.EACCES)
    return False


def wait_for_health(url: str, proc: OwnedProcess, timeout_s: float) -> float:
    """Poll the health URL until it answers 200. Returns seconds waited.
    Raises RuntimeError naming why (process exited, or timed out)."""
    import requests

    t0 = time.monotonic()
    while True:
        if not proc.alive():
            raise RuntimeError(f"target exited with code {proc.returncode} before it became healthy")
        try:
            r = requests.get(url, timeout=2)
            if r.status_code == 200:
                return time.monotonic() - t0
        except requests.RequestException:
            pass
        if time.monotonic() - t0 > timeout_s:
            raise RuntimeError(f"target not healthy after {timeout_s:.0f} s ({url})")
        time.sleep(0.2)
