"""Suite-wide: `make test` runs `-n 3 --dist loadfile`: each test file runs
on one worker, so a module-scoped run (one end-to-end run serving several
assertions) is made once, and the files are spread over the machine's two
cores (three workers: much of an end-to-end test is waiting). End-to-end
runs on all workers share the machine; the tool is built to
tell a loaded host from a slow target (run-queue wait, host stalls, the
environment section), and these tests hold it to that."""
import pytest

from tests import host_share


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Each test's shared lock on the machine (tests/host_share.py) over its
    whole protocol: a run that must have it to itself waits for the other
    worker's test to end. The whole protocol, not the test's own fixture:
    module-scoped fixtures are set up before any function-scoped one, and
    one that renders a minute of dense music or starts a server in process
    ran beside an exclusive run unlocked. concurrent-tracks' clean run,
    alone by the lock, saw other processes take 1.6 of the 2 cores for its
    first 4 s and read TTFA p95 1.9 s."""
    with host_share.held_for_test():
        yield


def pytest_collection_modifyitems(session, config, items):
    """The slow files first. `-n 3 --dist loadfile --no-loadscope-reorder`
    hands whole files to whichever worker is free, in this order; by default
    xdist orders the files by their number of tests, which queues the
    end-to-end files (few tests, each a run of a minute) last, and one worker
    then ran them alone for the suite's last minutes while the other was
    idle. Longest first, many short files last, keeps both busy to the end."""
    def slow(item) -> bool:
        return item.get_closest_marker("slow") is not None

    slow_files = {item.path for item in items if slow(item)}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: each file keeps its own order
