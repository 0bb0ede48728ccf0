"""Semaphore permits the target's tasks took and never gave back.

A server that limits concurrent work with an asyncio.Semaphore (Auralis's
stream slots) loses a slot for good when a task that acquired a permit ends
without releasing it: for example an `await` in the `finally` ahead of the
release raises CancelledError because the task is being cancelled. Once every
permit is lost the server refuses all work with nobody holding it, until it
restarts. Nothing in the client's view says why.

The ledger patches asyncio.Semaphore's acquire and release (BoundedSemaphore
inherits them) before the app is imported, and counts permits per
(semaphore, task). When a task ends still holding permits it writes a record
to permits.jsonl:
- the semaphore's capacity and where the target created it;
- where the task acquired (the target's own frames, innermost last);
- the line the task left the acquiring function at (its frame's last line:
  the code that skipped the release, also when a caller caught the
  exception and the task returned), how the task ended (cancelled, raised,
  returned) and the target's own frames of the traceback it ended with.
A release by a task that holds none (a hand-over to another task) pays back
the oldest leak record first ("reclaimed"), then the oldest live holder, so a
hand-over is never called a leak.

Runs inside the target's interpreter: standard library only. The cost is one
short frame walk per acquire (a stream's one slot), nothing per send.
"""
from __future__ import annotations

import asyncio
import sys
import time
from typing import Any, Callable

from .events import EventLog
from .sites import MAX_FRAMES, CodeRoots, own_frames

_ATTR = "_earshot_permits"


class _State:
    """Per semaphore: capacity, creation site, live holders, unpaid leaks."""

    __slots__ = ("capacity", "created", "held", "leaks", "sid", "watched")

    def __init__(self, sid: int, capacity: int | None, created: list[dict[str, Any]]):
        self.sid, self.capacity, self.created = sid, capacity, created
        # task -> (permits, own frames at its first acquire, the acquiring
        # function's frame object: once the task ends its f_lineno is the line
        # it left that function at, even when a caller swallowed the exception)
        self.held: dict[asyncio.Task, tuple[int, list[dict[str, Any]], Any]] = {}
        self.leaks = 0
        # tasks with our done callback: one each, however often a task takes
        # and gives back a permit (a worker loop must not pile callbacks up)
        self.watched: set[asyncio.Task] = set()


class PermitLedger:
    def __init__(self, log: EventLog, roots: CodeRoots):
        self.log, self.roots = log, roots
        self._next = 0
        self._orig: dict[str, Callable[..., Any]] = {}

    def _tb_frames(self, exc: BaseException | None) -> list[dict[str, Any]]:
        if exc is None or exc.__traceback__ is None:
            return []
        out = []
        tb = exc.__traceback__
        while tb is not None:  # outermost first; the code object for its qualname
            co = tb.tb_frame.f_code
            rel = self.roots.rel(co.co_filename)
            if rel is not None:
                out.append({"file": rel, "line": tb.tb_lineno, "function": co.co_qualname})
            tb = tb.tb_next
        return out[-MAX_FRAMES:]

    def _state(self, sem: Any, capacity: int | None = None, created: list | None = None) -> _State:
        st = sem.__dict__.get(_ATTR)
        if st is None:
            self._next += 1
            # a semaphore made before the ledger: its capacity is unknown, and what is free at first sight stands in
            st = _State(self._next, capacity if capacity is not None else getattr(sem, "_value", None),
                        created or [])
            sem.__dict__[_ATTR] = st
        return st

    def on_init(self, sem: Any, value: int) -> None:
        self._state(sem, value, own_frames(self.roots, sys._getframe(2))[0])

    def on_acquired(self, sem: Any, frame: Any) -> None:
        task = asyncio.current_task()
        if task is None:
            return
        st = self._state(sem)
        n, where, owner = st.held.get(task, (0, None, None))
        if where is None:
            where, owner = own_frames(self.roots, frame, getattr(task.get_coro(), "cr_frame", None))
            if not where:
                # not the target's own acquire: a library's, or an older
                # wait_for's wrapper task (its own task, ending at once)
                return
            if task not in st.watched:
                st.watched.add(task)
                task.add_done_callback(lambda t, st=st: self.on_task_done(st, t))
        st.held[task] = (n + 1, where, owner)

    def on_released(self, sem: Any) -> None:
        st = sem.__dict__.get(_ATTR)
        if st is None:
            return
        try:
            task = asyncio.current_task()
        except RuntimeError:  # released from a thread: no task of its own
            task = None
        if task in st.held:
            n, where, owner = st.held[task]
            if n > 1:
                st.held[task] = (n - 1, where, owner)
            else:
                del st.held[task]
            return
        if st.leaks:  # a hand-over paying back a permit an ended task kept
            st.leaks -= 1
            self.log.write("permits", {"t": time.time(), "event": "reclaimed", "semaphore": st.sid})
            return
        if st.held:  # a hand-over from a live holder: the oldest one's permit
            oldest = next(iter(st.held))
            n, where, owner = st.held[oldest]
            if n > 1:
                st.held[oldest] = (n - 1, where, owner)
            else:
                del st.held[oldest]

    def on_task_done(self, st: _State, task: asyncio.Task) -> None:
        st.watched.discard(task)
        n, where, owner = st.held.pop(task, (0, None, None))
        if n <= 0:
            return
        left = None
        if owner is not None and where:
            left = {**where[-1], "line": owner.f_lineno}
        st.leaks += n
        exc: BaseException | None = None
        if task.cancelled():
            how = "cancelled"
            try:
                task.result()
            except BaseException as e:  # the CancelledError the coroutine ended with, traceback and all
                exc = e
        else:
            exc = task.exception()
            how = "raised" if exc is not None else "returned"
        coro = task.get_coro()
        self.log.write("permits", {
            "t": time.time(), "event": "leaked", "semaphore": st.sid, "permits": n, "capacity": st.capacity,
            "created": st.created, "acquired": where or [], "ended": how, "left_at": left,
            "exception": type(exc).__name__ if exc is not None else None, "exit": self._tb_frames(exc),
            "task": task.get_name(), "coro": getattr(coro, "__qualname__", None),
            "still_held": sum(k for k, _, _ in st.held.values()), "leaked_total": st.leaks})

    def install(self) -> None:
        sem_cls = asyncio.Semaphore
        if getattr(sem_cls.acquire, "_earshot", False):
            return
        ledger = self
        orig_init, orig_acquire, orig_release = sem_cls.__init__, sem_cls.acquire, sem_cls.release

        def __init__(sem: Any, value: int = 1, *args: Any, **kwargs: Any) -> None:
            orig_init(sem, value, *args, **kwargs)
            try:
                ledger.on_init(sem, value)
            except Exception:  # never let bookkeeping break the app
                pass

        async def acquire(sem: Any) -> bool:
            got = await orig_acquire(sem)
            try:
                # from this frame: a task whose root it is (an older wait_for's) is not the target's
                ledger.on_acquired(sem, sys._getframe(0))
            except Exception:
                pass
            return got

        def release(sem: Any) -> None:
            orig_release(sem)
            try:
                ledger.on_released(sem)
            except Exception:
                pass

        acquire._earshot = True  # type: ignore[attr-defined]
        sem_cls.__init__ = __init__  # type: ignore[method-assign]
        sem_cls.acquire = acquire  # type: ignore[method-assign]
        sem_cls.release = release  # type: ignore[method-assign]
        self._orig = {"__init__": orig_init, "acquire": orig_acquire, "release": orig_release}

    def uninstall(self) -> None:
        """Put asyncio.Semaphore back (the benchmark's bare rounds)."""
        for name, fn in self._orig.items():
            setattr(asyncio.Semaphore, name, fn)
        self._orig = {}
