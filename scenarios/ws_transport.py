"""A blocking WebSocket client on wsproto over a plain socket.

Why not websocket-client: it cannot offer permessage-deflate, and every real
client of Auralis is a browser that does; a load client without the extension
measures a server no user ever meets. wsproto is sans-IO, so a plain blocking
socket drives it, and under Locust's gevent monkey-patching that socket is
cooperative without any change here.
"""
from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Union
from urllib.parse import urlparse

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.extensions import PerMessageDeflate


class BrowserLikeDeflate(PerMessageDeflate):
    """Offer permessage-deflate exactly as Chromium and Firefox do:
    `permessage-deflate; client_max_window_bits` (no value, context takeover
    on both sides), and accept whatever window the server picks."""

    def offer(self) -> str:  # type: ignore[override]
        return "client_max_window_bits"


class WSClosed(Exception):
    def __init__(self, code: int | None, reason: str = ""):
        super().__init__(f"websocket closed ({code}) {reason}".strip())
        self.code = code
        self.reason = reason


class WSRejected(Exception):
    def __init__(self, status: int, body: bytes = b""):
        super().__init__(f"websocket handshake rejected with HTTP {status}")
        self.status = status
        self.body = body


@dataclass
class Text:
    data: str
    t: float


@dataclass
class Binary:
    data: bytes
    t: float


Message = Union[Text, Binary]


class WSClient:
    """One connection. `recv()` returns whole messages, text or binary, each
    stamped with the wall time its last byte arrived."""

    def __init__(
        self,
        url: str,
        *,
        compression: bool = True,
        origin: str | None = None,
        timeout: float = 30.0,
        recv_bytes: int = 1 << 20,
    ):
        self.url = url
        self.compression = compression
        self.origin = origin
        self.timeout = timeout
        self.recv_bytes = recv_bytes
        self.sock: socket.socket | None = None
        self.conn = WSConnection(ConnectionType.CLIENT)
        self.extensions: list[str] = []
        self.closed: WSClosed | None = None
        self._pending: list[Message] = []
        self._text_parts: list[str] = []
        self._bin_parts: list[bytes] = []

    # -- connection -------------------------------------------------------
    def connect(self) -> "WSClient":
        u = urlparse(self.url)
        host, port = u.hostname or "127.0.0.1", u.port or 80
        self.sock = socket.create_connection((host, port), timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        headers = []
        if self.origin:  # the loopback rule: no Origin unless asked
            headers.append((b"Origin", self.origin.encode()))
        exts = [BrowserLikeDeflate()] if self.compression else []
        self._send(
            Request(
                host=f"{host}:{port}",
                target=u.path + (f"?{u.query}" if u.query else "") or "/",
                extensions=exts,
                extra_headers=headers,
            )
        )
        deadline = time.monotonic() + self.timeout
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError("websocket handshake timed out")
            data = self.sock.recv(65536)
            if not data:
                raise WSClosed(None, "connection closed during handshake")
            self.conn.receive_data(data)
            status = None
            body = b""
            for ev in self.conn.events():
                if isinstance(ev, AcceptConnection):
                    self.extensions = [
                        getattr(x, "name", str(x)) + self._ext_params(x) for x in (ev.extensions or [])
                    ]
                    status = 101
                elif isinstance(ev, RejectConnection):
                    status = ev.status_code
                elif isinstance(ev, RejectData):
                    body += ev.data
                else:
                    self._absorb(ev, time.time())
            if status == 101:
                return self
            if status is not None:
                raise WSRejected(status, body)

    @staticmethod
    def _ext_params(ext) -> str:
        if isinstance(ext, PerMessageDeflate):
            return f"; client_max_window_bits={ext.client_max_window_bits}; server_max_window_bits={ext.server_max_window_bits}"
        return ""

    def _send(self, event) -> None:
        assert self.sock is not None
        self.sock.sendall(self.conn.send(event))

    # -- messages ---------------------------------------------------------
    def send_text(self, text: str) -> None:
        if self.closed:  # the peer's close frame came with the last read
            raise self.closed
        self._send(TextMessage(data=text))

    def recv(self, timeout: float | None = None) -> Message:
        """Next whole message. Raises WSClosed when the peer closed,
        TimeoutError when nothing complete arrived in `timeout` seconds."""
        assert self.sock is not None
        if self._pending:
            return self._pending.pop(0)
        if self.closed:
            raise self.closed
        self.sock.settimeout(timeout if timeout is not None else self.timeout)
        while not self._pending:
            try:
                data = self.sock.recv(self.recv_bytes)
            except socket.timeout:
                raise TimeoutError("no message within timeout") from None
            except OSError as e:
                self.closed = WSClosed(None, f"socket error: {e}")
                raise self.closed from None
            now = time.time()
            if not data:
                self.closed = WSClosed(None, "connection dropped without close frame")
                if self._pending:
                    break
                raise self.closed
            self.conn.receive_data(data)
            for ev in self.conn.events():
                self._absorb(ev, now)
            if self.closed and not self._pending:
                raise self.closed
        return self._pending.pop(0)

    def _absorb(self, ev, now: float) -> None:
        if isinstance(ev, TextMessage):
            self._text_parts.append(ev.data)
            if ev.message_finished:
                self._pending.append(Text("".join(self._text_parts), now))
                self._text_parts = []
        elif isinstance(ev, BytesMessage):
            self._bin_parts.append(bytes(ev.data))
            if ev.message_finished:
                data = self._bin_parts[0] if len(self._bin_parts) == 1 else b"".join(self._bin_parts)
                self._pending.append(Binary(data, now))
                self._bin_parts = []
        elif isinstance(ev, Ping):
            try:
                self._send(ev.response())
            except OSError:
                pass
        elif isinstance(ev, CloseConnection):
            self.closed = WSClosed(ev.code, ev.reason or "")
            try:
                self._send(ev.response())
            except Exception:
                pass

    def close(self, *, abrupt: bool = False) -> None:
        """Close politely, or `abrupt=True`: drop the TCP connection mid-stream
        without a close frame, as a crashed tab or a lost network does."""
        if self.sock is None:
            return
        try:
            if abrupt:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            elif not self.closed:
                self._send(CloseConnection(code=1000))
        except Exception:
            pass
        finally:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None
