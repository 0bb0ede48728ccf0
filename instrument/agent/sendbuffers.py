"""What the server holds for its WebSocket clients, measured directly.

RSS cannot tell bytes queued for a reader from a heap the allocator keeps
after they were sent: a server that queued a whole track for a stalled
reader and freed it on close may never give the memory back. So, inside the
target, this samples every ``interval_s``:

- each connection's transport write buffer (``transport.get_write_buffer_size()``
  of the protocol objects in uvicorn's ``server_state.connections``): bytes
  the app has "sent" that the kernel would not take, which is where they pile
  up when the server's send() does not wait on a full socket;
- the server's own send queues: every ``asyncio.Queue`` the process creates is
  registered (weakly) with the file:line that created it, and a queue whose
  items carry bytes is measured (items, bytes): a producer that renders ahead
  into an unbounded queue shows here, with its creation site as the location.

Reading a transport from another thread races with its close (uvloop frees
the handle), so the reading is one short callback on the loop (microseconds
for a few connections and queues); writing the file is left to a thread, so
the loop never waits on the disk. Written to agent/sendbuffers.jsonl only
while a WebSocket connection is open or a send queue holds bytes.
"""
from __future__ import annotations

import asyncio
import os
import queue as queue_mod
import sys
import threading
import time
import weakref
from typing import Any

from .events import EventLog

STREAM = "sendbuffers"
_QUEUES: "weakref.WeakKeyDictionary[asyncio.Queue, str]" = weakref.WeakKeyDictionary()
_orig_queue_init = asyncio.Queue.__init__
_AGENT_DIR = os.path.dirname(os.path.abspath(__file__))


def _queue_init(self: asyncio.Queue, *args: Any, **kwargs: Any) -> None:
    _orig_queue_init(self, *args, **kwargs)
    # the first frame outside asyncio (and us): the code that made the queue
    f = sys._getframe(1)
    while f is not None and (f.f_code.co_filename.startswith(os.path.dirname(asyncio.__file__))
                             or f.f_code.co_filename.startswith(_AGENT_DIR)):
        f = f.f_back
    site = f"{f.f_code.co_filename}:{f.f_lineno}" if f is not None else "?"
    try:
        _QUEUES[self] = site
    except TypeError:
        pass


def install_queue_registry() -> None:
    """Before the app is imported, so every queue it makes is seen."""
    if asyncio.Queue.__init__ is not _queue_init:
        asyncio.Queue.__init__ = _queue_init  # type: ignore[method-assign]


def _payload_bytes(item: Any, seen: set[int], depth: int = 0) -> int:
    """Bytes carried by one queued item: bytes-like objects and numpy arrays,
    and those inside tuples/lists/dicts (two levels, enough for (meta, data)).
    Each buffer counts once per reading (`seen`): several queued frames may
    share one array, and a numpy view counts as the array it views."""
    if isinstance(item, (bytes, bytearray, memoryview)):
        if id(item) in seen:
            return 0
        seen.add(id(item))
        return item.nbytes if isinstance(item, memoryview) else len(item)
    nbytes = getattr(item, "nbytes", None)
    if isinstance(nbytes, int) and type(item).__module__.startswith("numpy"):
        root = item
        while getattr(root, "base", None) is not None and type(root.base).__module__.startswith("numpy"):
            root = root.base
        if id(root) in seen:
            return 0
        seen.add(id(root))
        return int(getattr(root, "nbytes", nbytes))
    if depth >= 2:
        return 0
    if isinstance(item, (tuple, list)):
        return sum(_payload_bytes(x, seen, depth + 1) for x in item[:16])
    if isinstance(item, dict):
        return sum(_payload_bytes(x, seen, depth + 1) for x in list(item.values())[:16])
    return 0


def _is_websocket(proto: Any) -> bool:
    # uvicorn.protocols.websockets.{websockets_impl,websockets_sansio_impl,wsproto_impl}
    return "websocket" in type(proto).__module__.lower()


def display_path(path: str, code_roots: list[str]) -> str:
    """Relative to the target's root when inside it; from the package name
    when in site-packages (no absolute paths in what is published)."""
    for root in code_roots:
        r = root.rstrip("/") + "/"
        if path.startswith(r):
            return path[len(r):]
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1]
    return os.path.basename(path)


class SendBufferSampler:
    def __init__(self, log: EventLog, server_state: Any, *, interval_s: float = 0.5,
                 code_roots: list[str] | None = None):
        self.code_roots = list(code_roots or [])
        self.log = log
        self.state = server_state
        self.interval_s = interval_s
        self._out: "queue_mod.SimpleQueue[dict[str, Any] | None]" = queue_mod.SimpleQueue()
        self._writer = threading.Thread(target=self._write, name="earshot-sendbuffers", daemon=True)
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._writer.start()
        self._handle = loop.call_later(self.interval_s, self._tick)

    def stop(self) -> None:
        self._stopped = True
        if self._handle is not None:
            self._handle.cancel()
        self._out.put(None)
        if self._writer.is_alive():
            self._writer.join(timeout=2.0)

    def sample(self) -> dict[str, Any] | None:
        """One reading; on the loop thread."""
        conns = []
        for proto in list(getattr(self.state, "connections", ()) or ()):
            if not _is_websocket(proto):
                continue
            tr = getattr(proto, "transport", None)
            try:
                size = int(tr.get_write_buffer_size()) if tr is not None and not tr.is_closing() else 0
            except Exception:
                size = 0
            client = getattr(proto, "client", None)
            conns.append({"conn": id(proto), "peer_port": client[1] if isinstance(client, tuple) and len(client) > 1
                          else None, "buffer_bytes": size})
        sites: dict[str, dict[str, int]] = {}
        seen: set[int] = set()
        for q, site in list(_QUEUES.items()):
            items = list(getattr(q, "_queue", ()) or ())
            if not items:
                continue
            b = sum(_payload_bytes(x, seen) for x in items)
            if b <= 0:
                continue
            s = sites.setdefault(display_path(site, self.code_roots), {"queues": 0, "items": 0, "bytes": 0})
            s["queues"] += 1
            s["items"] += len(items)
            s["bytes"] += b
        if not conns and not sites:
            return None
        transport = sum(c["buffer_bytes"] for c in conns)
        queued = sum(s["bytes"] for s in sites.values())
        proto_file = None
        for proto in list(getattr(self.state, "connections", ()) or ()):
            if _is_websocket(proto):
                proto_file = getattr(sys.modules.get(type(proto).__module__), "__file__", None)
                proto_file = display_path(proto_file, self.code_roots) if proto_file else None
                break
        return {"t": time.time(), "ws_connections": len(conns), "transport_bytes": transport,
                "queue_bytes": queued, "held_bytes": transport + queued, "connections": conns,
                "queue_sites": [{"site": k, **v} for k, v in sorted(sites.items(), key=lambda kv: -kv[1]["bytes"])],
                "transport_protocol": proto_file}

    def _tick(self) -> None:
        if self._stopped:
            return
        try:
            rec = self.sample()
            if rec is not None:
                self._out.put(rec)
        except Exception as e:  # never let a reading break the target's loop
            self._out.put({"t": time.time(), "error": f"{type(e).__name__}: {e}"})
        if self._loop is not None and not self._stopped:
            self._handle = self._loop.call_later(self.interval_s, self._tick)

    def _write(self) -> None:
        while True:
            rec = self._out.get()
            if rec is None:
                return
            self.log.write(STREAM, rec)
