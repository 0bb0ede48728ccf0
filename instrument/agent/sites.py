"""Where the target's code is, measured in the running app, for findings to
name: its route table and the code that sends each kind of WebSocket message.

- routes.json: every route of the app the target actually runs (after its
  own imports and router includes): method, path, the endpoint's qualname,
  file relative to the target's root and first line. HTTP findings name the
  endpoint from here.
- ws_sites.jsonl: one record per (message type, call site) the first time
  the app sends such a message from there: the message type ("binary" for
  audio frames), and the target's own frames on the stack, innermost last.
  Deduplicated per call site, so the cost is a short frame walk per send and
  a write only for a site not seen before. A record per site the app reads
  messages at ("receive") names the handler loop for messages that got no
  reply.

Runs inside the target's interpreter: standard library and starlette only.
"""
from __future__ import annotations

import inspect
import json
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from .events import EventLog

_TYPE = re.compile(r'"type"\s*:\s*"([^"]{1,64})"')
MAX_FRAMES = 8


class CodeRoots:
    """Which files are the target's own (under a code root, not a library)."""

    def __init__(self, roots: list[str]):
        self.roots = [os.path.realpath(r) for r in roots]
        self._cache: dict[str, str | None] = {}

    def rel(self, filename: str) -> str | None:
        hit = self._cache.get(filename, "")
        if hit != "":
            return hit
        out = None
        if not filename.startswith("<"):
            real = os.path.realpath(filename)
            if "site-packages" not in real and "dist-packages" not in real:
                for root in self.roots:
                    if real.startswith(root + os.sep):
                        out = os.path.relpath(real, root)
                        break
        self._cache[filename] = out
        return out


def own_frames(roots: CodeRoots, frame: Any, stop: Any = None) -> tuple[list[dict[str, Any]], Any]:
    """The target's own frames from `frame` up, outermost first (at most
    MAX_FRAMES of the next 40), ending at `stop` if it is met (a task's own
    coroutine frame: the event loop's frames above it are not the task's);
    and the innermost own frame's frame object."""
    out: list[dict[str, Any]] = []
    depth, inner = 0, None
    while frame is not None and depth < 40 and len(out) < MAX_FRAMES:
        co = frame.f_code
        rel = roots.rel(co.co_filename)
        if rel is not None:
            out.append({"file": rel, "line": frame.f_lineno,
                        "function": co.co_qualname if hasattr(co, "co_qualname") else co.co_name})
            inner = frame if inner is None else inner
        if frame is stop:
            break
        frame, depth = frame.f_back, depth + 1
    out.reverse()  # outermost first, innermost last
    return out, inner


def write_routes(app: Any, roots: CodeRoots, out: Path) -> int:
    """The app's routes with their endpoints' file:line; returns how many."""
    rows: list[dict[str, Any]] = []

    def walk(routes: Any, prefix: str) -> None:
        for r in routes or []:
            endpoint = getattr(r, "endpoint", None)
            effective = getattr(r, "effective_candidates", None)
            if endpoint is None and callable(effective):
                # newer FastAPI keeps an included router as one nested entry whose
                # effective routes carry their full, prefixed path
                walk(effective(), "")
                continue
            path = prefix + str(getattr(r, "path", "") or "")
            sub = getattr(r, "routes", None)
            if endpoint is None and sub is not None:  # a Mount or an included router
                walk(sub, path)
                continue
            if endpoint is None:
                continue
            fn = inspect.unwrap(endpoint)
            code = getattr(fn, "__code__", None)
            file = roots.rel(code.co_filename) if code else None
            methods = sorted(getattr(r, "methods", None) or []) or (["WS"] if "WebSocket" in type(r).__name__ else [])
            rows.append({"methods": methods, "path": path, "name": getattr(r, "name", None),
                         "endpoint": f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', '')}",
                         "function": getattr(fn, "__qualname__", None), "file": file,
                         "line": code.co_firstlineno if code else None, "own": file is not None})

    walk(getattr(app, "routes", None) or getattr(getattr(app, "router", None), "routes", None), "")
    (out / "routes.json").write_text(json.dumps(rows, indent=1))
    return len(rows)


class WebSocketSites:
    """Hooks starlette's WebSocket.send and receive (every send_text/json/bytes
    goes through send) to record, once per call site, where the target sends
    each message type and where it reads messages."""

    def __init__(self, log: EventLog, roots: CodeRoots):
        self.log = log
        self.roots = roots
        self.seen: set[tuple[str, Any, int]] = set()
        self.lock = threading.Lock()
        self._orig: dict[str, Callable[..., Any]] = {}

    def _own_frames(self, frame: Any) -> list[dict[str, Any]]:
        return own_frames(self.roots, frame)[0]

    def note(self, kind: str, msg_type: str, frame: Any) -> None:
        # the call site: the first frame of the target's own code up the stack
        f, depth = frame, 0
        while f is not None and depth < 40 and self.roots.rel(f.f_code.co_filename) is None:
            f = f.f_back
            depth += 1
        if f is None:
            return
        key = (f"{kind}:{msg_type}", f.f_code, f.f_lineno)
        if key in self.seen:
            return
        with self.lock:
            if key in self.seen:
                return
            self.seen.add(key)
        self.log.write("ws_sites", {"t": time.time(), "kind": kind, "type": msg_type,
                                    "frames": self._own_frames(f)})

    def install(self) -> bool:
        try:
            from starlette.websockets import WebSocket
        except ImportError:
            return False
        sites = self
        orig_send, orig_receive = WebSocket.send, WebSocket.receive

        async def send(ws: Any, message: Any) -> None:
            try:
                if isinstance(message, dict) and message.get("type") == "websocket.send":
                    if message.get("bytes") is not None:
                        mtype = "binary"
                    else:
                        m = _TYPE.search(str(message.get("text") or "")[:400])
                        mtype = m.group(1) if m else "text"
                    sites.note("send", mtype, sys._getframe(1))
            except Exception:  # never let bookkeeping break a send
                pass
            return await orig_send(ws, message)

        async def receive(ws: Any) -> Any:
            msg = await orig_receive(ws)
            try:
                if isinstance(msg, dict) and msg.get("type") == "websocket.receive":
                    sites.note("receive", "message", sys._getframe(1))
            except Exception:
                pass
            return msg

        WebSocket.send = send  # type: ignore[method-assign]
        WebSocket.receive = receive  # type: ignore[method-assign]
        self._orig = {"send": orig_send, "receive": orig_receive}
        return True
