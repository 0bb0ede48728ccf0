"""tests/host_share.py: a run that must have the machine to itself can take
it only when no test holds a share, and a test that lets its share go (to
wait for another file's run) still holds one for any run it makes itself."""
from __future__ import annotations

import fcntl
import os

from tests import host_share


def _another_worker_could_have_it_alone() -> bool:
    with open(host_share._lock_file(), "a") as fh:  # another open file: another holder to flock
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(fh, fcntl.LOCK_UN)
        return True


def test_shares_and_their_release(monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_TESTRUNUID", f"host-share-self-test-{os.getpid()}")
    monkeypatch.setattr(host_share, "_held", None)  # this test's own lock file, not the session's
    with host_share.held_for_test():
        assert not _another_worker_could_have_it_alone()
        with host_share.released():
            assert _another_worker_could_have_it_alone()
            with host_share.share():  # a run made while released takes a share of its own
                assert not _another_worker_could_have_it_alone()
            with host_share.share(exclusive=True):
                assert not _another_worker_could_have_it_alone()
        assert not _another_worker_could_have_it_alone()
        with host_share.share(exclusive=True):  # lets the test's own share go first: no self-deadlock
            assert not _another_worker_could_have_it_alone()
        assert not _another_worker_could_have_it_alone()
    assert _another_worker_could_have_it_alone()
    host_share._lock_file().unlink()


def test_without_xdist_there_is_no_lock(monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_TESTRUNUID", raising=False)
    monkeypatch.setattr(host_share, "_held", None)
    assert host_share._lock_file() is None
    with host_share.held_for_test(), host_share.share(exclusive=True):
        pass


def test_a_waiting_exclusive_taker_closes_the_gate_to_new_shares(monkeypatch):
    """Writer starvation: with three workers one of the other two nearly
    always held a share, and an exclusive run waited 211-219 s. While it
    waits, a new share waits behind it; the running test's share ends, the
    exclusive run goes, then the new share."""
    import threading
    import time

    monkeypatch.setenv("PYTEST_XDIST_TESTRUNUID", f"host-share-gate-test-{os.getpid()}")
    order: list[str] = []
    running = open(host_share._lock_file(), "a")  # a test running on another worker
    fcntl.flock(running, fcntl.LOCK_SH)

    def exclusive():
        with host_share._flock(fcntl.LOCK_EX):
            order.append("exclusive")

    def new_share():
        with host_share._flock(fcntl.LOCK_SH):
            order.append("new share")

    x = threading.Thread(target=exclusive)
    x.start()
    time.sleep(0.3)  # the exclusive taker waits for the running test, the gate closed behind it
    s = threading.Thread(target=new_share)
    s.start()
    time.sleep(0.3)
    assert order == []  # neither got in while the running test holds its share
    fcntl.flock(running, fcntl.LOCK_UN)
    running.close()
    x.join(5)
    s.join(5)
    assert order == ["exclusive", "new share"]
    for p in (host_share._lock_file(), host_share._gate_file(host_share._lock_file())):
        p.unlink()
