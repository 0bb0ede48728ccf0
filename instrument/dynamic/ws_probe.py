"""A raw /ws connection for the dynamic checks: sends whatever text it is
given (valid or not, unthrottled) and reads replies with deadlines.

The load scenarios use AuralisSession, which never sends a bad message and
keeps under the rate limit; these checks need the opposite, so they drive
the same browser-like transport (no Origin from loopback, as the web client)
directly. Server JSON pings are answered so a probe is never closed for
missing a pong."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from scenarios.ws_transport import Binary, WSClient, WSClosed, WSRejected

# Messages any connection may receive at any time, unrelated to what it sent.
BROADCASTS = frozenset({"mastering_recommendation", "player_state", "enhancement_settings_changed",
                        "fingerprint_progress"})
EXCERPT = 400  # characters of a message kept as evidence


def excerpt(obj: Any, limit: int = EXCERPT) -> str:
    text = obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[:limit] + f"...(+{len(text) - limit} chars)"


@dataclass
class Received:
    t: float
    msg: dict[str, Any] | None  # parsed text message, None for binary
    raw: str = ""  # text as received when it was not a JSON object
    binary_bytes: int = 0

    @property
    def kind(self) -> str:
        if self.msg is None:
            return "binary" if self.binary_bytes else "unparsed"
        return str(self.msg.get("type"))


@dataclass
class Probe:
    ws_url: str
    compression: bool = False
    log: list[Received] = field(default_factory=list)
    ws: WSClient | None = None
    closed: str | None = None  # "closed <code> <reason>" once the server closed

    @classmethod
    def open(cls, base_url: str, *, compression: bool = False, timeout: float = 10.0) -> "Probe":
        p = cls(base_url.replace("http://", "ws://").rstrip("/") + "/ws", compression)
        p.ws = WSClient(p.ws_url, compression=compression, timeout=timeout).connect()
        return p

    def send_text(self, text: str) -> None:
        assert self.ws is not None
        self.ws.send_text(text)

    def send(self, type_: str, data: dict[str, Any] | None = None) -> None:
        self.send_text(json.dumps({"type": type_, "data": data or {}}))

    def recv(self, timeout: float) -> Received | None:
        """One message, or None when nothing came in `timeout` seconds or the
        connection is closed (then `closed` says how)."""
        if self.ws is None or self.closed:
            return None
        try:
            m = self.ws.recv(timeout=max(0.01, timeout))
        except TimeoutError:
            return None
        except WSClosed as e:
            self.closed = f"closed {e.code} {e.reason}".strip()
            return None
        if isinstance(m, Binary):
            r = Received(m.t, None, binary_bytes=len(m.data))
        else:
            try:
                obj = json.loads(m.data)
            except json.JSONDecodeError:
                obj = None
            r = Received(m.t, obj if isinstance(obj, dict) else None, raw="" if isinstance(obj, dict) else m.data)
            if r.kind == "ping":  # the server's heartbeat: answer it, as every client must
                try:
                    self.send("pong")
                except OSError:
                    pass
        self.log.append(r)
        return r

    def wait_for(self, match: Callable[[Received], bool], timeout: float) -> Received | None:
        """The first message `match` accepts within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r = self.recv(left)
            if r is None:
                if self.closed:
                    return None
                continue
            if match(r):
                return r

    def drain(self, seconds: float) -> list[Received]:
        """Everything that arrives in the next `seconds`."""
        out: list[Received] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            r = self.recv(left)
            if r is None:
                if self.closed:
                    break
                continue
            out.append(r)
        return out

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close()
            self.ws = None


def kind_is(*kinds: str) -> Callable[[Received], bool]:
    return lambda r: r.kind in kinds


def reply(r: Received) -> bool:
    """A message that answers a command: not audio, not a heartbeat, not a broadcast."""
    return r.kind not in BROADCASTS and r.kind not in ("binary", "ping", "audio_chunk_meta")


def try_open(base_url: str, *, compression: bool = False, timeout: float = 10.0) -> tuple[Probe | None, str | None]:
    """(probe, None) or (None, why the handshake failed)."""
    try:
        return Probe.open(base_url, compression=compression, timeout=timeout), None
    except WSRejected as e:
        return None, f"handshake rejected with HTTP {e.status}"
    except (OSError, TimeoutError, WSClosed) as e:
        return None, f"{type(e).__name__}: {e}"
