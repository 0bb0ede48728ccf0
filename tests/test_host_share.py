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
