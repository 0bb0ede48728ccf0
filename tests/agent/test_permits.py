"""The permit ledger (instrument/agent/permits.py) on real asyncio code: a
task that ends holding a semaphore permit is recorded with the line it left
its function at; a release in the finally, a hand-over to another task and a
holder still running are not leaks. The ledger patches asyncio.Semaphore for
the process, so each test runs in a child interpreter of its own."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PRELUDE = '''
import asyncio, sys
from pathlib import Path
from instrument.agent.events import EventLog
from instrument.agent.permits import PermitLedger
from instrument.agent.sites import CodeRoots
out = Path(sys.argv[1])
log = EventLog(out)
PermitLedger(log, CodeRoots([str(out)])).install()

async def drain_reraising(task):  # Auralis's drain_cancelled_task since #5083
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        if asyncio.current_task().cancelling() > 0:
            raise
'''


def _run(tmp_path: Path, body: str) -> list[dict]:
    """Run PRELUDE + body as target code (a file under the code root) and
    return the ledger's records."""
    src = tmp_path / "target.py"
    src.write_text(PRELUDE + textwrap.dedent(body) + "\nlog.close()\n")
    r = subprocess.run([sys.executable, str(src), str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                       timeout=60, env={"PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    path = tmp_path / "permits.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def _line(tmp_path: Path, needle: str) -> int:
    return next(i for i, line in enumerate((tmp_path / "target.py").read_text().splitlines(), 1) if needle in line)


STREAM = '''
sem = asyncio.Semaphore(3)

async def stream():
    await sem.acquire()
    look_ahead = asyncio.get_running_loop().create_task(asyncio.sleep(60))
    try:
        await asyncio.sleep(60)
    finally:
        await drain_reraising(look_ahead)  # LEAVES HERE
        sem.release()
'''


def test_a_cancelled_stream_that_raises_in_its_finally_is_a_leak_at_that_line(tmp_path):
    recs = _run(tmp_path, STREAM + '''
async def main():
    tasks = [asyncio.get_running_loop().create_task(stream()) for _ in range(2)]
    await asyncio.sleep(0.05)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(0)
    print(sem._value)
asyncio.run(main())
''')
    assert [r["event"] for r in recs] == ["leaked", "leaked"]
    r = recs[0]
    assert r["ended"] == "cancelled" and r["exception"] == "CancelledError" and r["capacity"] == 3
    assert r["left_at"] == {"file": "target.py", "line": _line(tmp_path, "LEAVES HERE"), "function": "stream"}
    assert r["acquired"][-1]["function"] == "stream" and r["acquired"][-1]["line"] == _line(tmp_path, "sem.acquire()")
    assert r["created"][-1]["line"] == _line(tmp_path, "sem = asyncio.Semaphore(3)")
    assert [f["function"] for f in r["exit"]] == ["stream", "drain_reraising"]
    assert [x["leaked_total"] for x in recs] == [1, 2]


def test_a_caller_that_swallows_the_cancel_still_names_the_line(tmp_path):
    recs = _run(tmp_path, STREAM + '''
async def handler():
    try:
        await stream()
    except asyncio.CancelledError:
        return "cancelled"  # as Auralis's stream_audio does

async def main():
    t = asyncio.get_running_loop().create_task(handler())
    await asyncio.sleep(0.05)
    t.cancel()
    assert await t == "cancelled"
    await asyncio.sleep(0)
asyncio.run(main())
''')
    assert len(recs) == 1 and recs[0]["ended"] == "returned" and recs[0]["exit"] == []
    assert recs[0]["left_at"]["line"] == _line(tmp_path, "LEAVES HERE")


def test_release_first_a_hand_over_and_a_live_holder_are_not_leaks(tmp_path):
    recs = _run(tmp_path, '''
sem = asyncio.Semaphore(2)

async def careful():
    await sem.acquire()
    try:
        await asyncio.sleep(60)
    finally:
        sem.release()

async def grab():
    await sem.acquire()

async def main():
    loop = asyncio.get_running_loop()
    t = loop.create_task(careful())
    await asyncio.sleep(0.05)
    t.cancel()
    await asyncio.gather(t, return_exceptions=True)
    await loop.create_task(grab())  # ends holding: a leak until handed back
    await asyncio.sleep(0)
    sem.release()  # by another task: the hand-over pays it back
    holder = loop.create_task(grab())
    await holder
    await asyncio.sleep(0)
    async with sem:  # with-block: acquired and released in one task
        pass
    live = loop.create_task(careful())
    await asyncio.sleep(0.05)
    print("live", not live.done())
asyncio.run(main())
''')
    assert [r["event"] for r in recs] == ["leaked", "reclaimed", "leaked"]
    assert recs[0]["ended"] == "returned" and recs[0]["left_at"]["function"] == "grab"


def test_two_tasks_ending_together_are_two_records(tmp_path):
    recs = _run(tmp_path, '''
sem = asyncio.Semaphore(10)

async def grab():
    await sem.acquire()

async def main():
    loop = asyncio.get_running_loop()
    await asyncio.gather(*[loop.create_task(grab()) for _ in range(5)])
    await asyncio.sleep(0)
asyncio.run(main())
''')
    assert len(recs) == 5 and [r["leaked_total"] for r in recs] == [1, 2, 3, 4, 5]


def test_a_semaphore_acquired_through_wait_for_is_never_a_false_leak(tmp_path):
    # before Python 3.12 wait_for acquires in a task of its own, which ends at
    # once holding the permit for its caller: that task is not the target's
    recs = _run(tmp_path, '''
sem = asyncio.Semaphore(2)

async def stream():
    await asyncio.wait_for(sem.acquire(), 5)
    try:
        await asyncio.sleep(0.01)
    finally:
        sem.release()

async def main():
    await asyncio.gather(*[asyncio.get_running_loop().create_task(stream()) for _ in range(4)])
    await asyncio.sleep(0)
asyncio.run(main())
''')
    assert recs == []


def test_a_task_taking_a_permit_again_and_again_gets_one_callback(tmp_path):
    recs = _run(tmp_path, """
sem = asyncio.Semaphore(1)

async def worker():
    for _ in range(100):
        async with sem:
            await asyncio.sleep(0)
    await asyncio.sleep(0.5)  # counted here, still running
    await sem.acquire()  # and keeps the last one

async def main():
    loop = asyncio.get_running_loop()
    # the pure-Python Task keeps its done callbacks in a list we can count
    loop.set_task_factory(lambda loop, coro, **kw: asyncio.tasks._PyTask(coro, loop=loop, **kw))
    t = loop.create_task(worker())
    await asyncio.sleep(0.2)
    assert len(t._callbacks) == 1, len(t._callbacks)
    await t
    await asyncio.sleep(0)
asyncio.run(main())
""")
    assert len(recs) == 1 and recs[0]["permits"] == 1 and recs[0]["left_at"]["function"] == "worker"
