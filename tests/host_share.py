"""The machine's share between this test session's xdist workers.

Every test holds a shared flock on one file per test run while it runs
(tests/conftest.py), and so does every wrapper run a module fixture makes;
a run that must have the machine to itself takes the lock exclusively, and
the other workers' tests wait for it between tests. Exclusive is for a
clean run whose gate judges latency under a load sized for a two-core
machine: concurrent-tracks' six streams read TTFA p95 0.9 s on their own,
and 1.6-1.7 s - over the gate's 1.5 s, a clean target failed - when the
other worker had the second core busy: first with its own wrapper run,
and, once only wrapper runs were kept apart, with in-process analysis tests.
The cause is the suite putting two loads on a machine the scenario is sized
to have, so the suite stops doing that; the gate's threshold stays.

No cycles: a test's own shared lock is let go while it waits for a run
another file shares (shared_run's per-run lock, whose holder may be waiting
for the exclusive lock) and while it takes the exclusive lock itself. A test
never holds a second share while it waits: taking its share back passes the
gate an exclusive taker holds while it waits for every share to go.
Without xdist nothing runs beside a test, and there is no lock."""
from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path

_held = None  # this worker's test's shared-lock file, while a test runs


def _lock_file() -> Path | None:
    uid = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    return Path(tempfile.gettempdir()) / f"earshot-host-{uid}.lock" if uid else None


@contextlib.contextmanager
def flocked(path: Path, mode: int = fcntl.LOCK_EX):
    """A flock on a file for the block's length (released by the kernel if
    the holder dies, so a killed worker leaves no stale lock); the open file."""
    with open(path, "a") as fh:
        fcntl.flock(fh, mode)
        try:
            yield fh
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _gate_file(path: Path) -> Path:
    return path.with_name(path.name + ".gate")


@contextlib.contextmanager
def _through_the_gate():
    """Shares pass a turnstile an exclusive taker closes while it waits:
    without it, with three workers one of the other two nearly always held a
    share, and concurrent-tracks' clean run waited 211-219 s for the machine."""
    path = _lock_file()
    if path is None:
        yield
        return
    with flocked(_gate_file(path), fcntl.LOCK_SH):
        yield


@contextlib.contextmanager
def _flock(mode: int):
    path = _lock_file()
    if path is None:
        yield None
        return
    if mode == fcntl.LOCK_EX:
        with flocked(_gate_file(path), fcntl.LOCK_EX), flocked(path, mode) as fh:
            yield fh
        return
    with open(path, "a") as fh:
        with _through_the_gate():
            fcntl.flock(fh, mode)
        try:
            yield fh
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def held_for_test():
    """A test's shared lock for as long as it runs (the conftest's autouse fixture)."""
    global _held
    with _flock(fcntl.LOCK_SH) as fh:
        _held = fh
        try:
            yield
        finally:
            _held = None


@contextlib.contextmanager
def released():
    """This worker's test's shared lock let go, and taken again after."""
    global _held
    fh = _held
    if fh is None:
        yield
        return
    fcntl.flock(fh, fcntl.LOCK_UN)
    _held = None  # so that a run inside takes a share of its own (share)
    try:
        yield
    finally:
        with _through_the_gate():
            fcntl.flock(fh, fcntl.LOCK_SH)
        _held = fh


@contextlib.contextmanager
def share(exclusive: bool = False):
    """A wrapper run's share: the machine to itself when ``exclusive``;
    otherwise shared, which a running test already holds."""
    if exclusive:
        with released(), _flock(fcntl.LOCK_EX):
            yield
    elif _held is not None:
        yield
    else:
        with _flock(fcntl.LOCK_SH):
            yield
