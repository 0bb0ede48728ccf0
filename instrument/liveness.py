"""Is the target still answering? A thread probes it once a second, all
through the load: GET /api/health, and a WebSocket ping on one /ws
connection kept open for the purpose (a pong comes from the server's event
loop, so a blocked or stopped loop cannot answer it). When neither has
answered for `hang_s`, the target has stopped answering: the wrapper ends the
load early and the run is INVALID naming the hang, instead of running on to
its normal end and judging the timeouts of a frozen backend as data.

Every probe goes to liveness.jsonl in the run directory.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import requests
from wsproto.events import Ping, Pong

from scenarios.ws_transport import WSClient

PROBE_EVERY_S = 1.0
PROBE_TIMEOUT_S = 2.0


def process_state(pid: int) -> str | None:
    """The kernel's state letter and name for a pid (Linux /proc), e.g.
    'T (stopped)' for a SIGSTOPped process."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("State:"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


class LivenessProbe:
    def __init__(self, base_url: str, run_dir: Path, *, pid: int, hang_s: float = 8.0):
        self.base_url = base_url.rstrip("/")
        self.ws_url = self.base_url.replace("http://", "ws://") + "/ws"
        self.path = Path(run_dir) / "liveness.jsonl"
        self.pid = pid
        self.hang_s = hang_s
        self.t0 = time.time()
        self.last_answer = time.monotonic()
        self.unanswered_max_s = 0.0
        self.hang: str | None = None
        self._hang_t = float("inf")
        self.state: str | None = None
        self._stop = threading.Event()
        self._ws: WSClient | None = None
        self._thread = threading.Thread(target=self._loop, name="liveness", daemon=True)

    def start(self) -> "LivenessProbe":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=PROBE_TIMEOUT_S * 2 + 1)
        self._close_ws()

    @property
    def hung(self) -> bool:
        return self.hang is not None

    def record(self) -> dict[str, Any]:
        """What run.json keeps: the longest silence and, if any, the hang."""
        out: dict[str, Any] = {"unanswered_max_s": round(self.unanswered_max_s, 1), "hang_after_s": self.hang_s}
        if self.hang:
            out.update(hang=self.hang, since_s=round(self._since_s, 1), process_state=self.state,
                       stopped=bool(self.state and self.state.startswith("T")),
                       recovered=self.last_answer > self._hang_t)
        return out

    # -- probes -----------------------------------------------------------
    def _health(self) -> float | None:
        t = time.monotonic()
        try:
            r = requests.get(f"{self.base_url}/api/health", timeout=PROBE_TIMEOUT_S)
            return (time.monotonic() - t) * 1000 if r.status_code == 200 else None
        except requests.RequestException:
            return None

    def _ws_ping(self) -> float | None:
        t = time.monotonic()
        try:
            if self._ws is None:
                self._ws = WSClient(self.ws_url, compression=False, timeout=PROBE_TIMEOUT_S).connect()
            ws = self._ws
            payload = os.urandom(4)
            ws._send(Ping(payload=payload))
            ws.sock.settimeout(PROBE_TIMEOUT_S)
            deadline = t + PROBE_TIMEOUT_S
            while time.monotonic() < deadline:
                data = ws.sock.recv(65536)
                if not data:
                    raise OSError("closed")
                ws.conn.receive_data(data)
                for ev in ws.conn.events():
                    if isinstance(ev, Pong) and bytes(ev.payload) == payload:
                        ws._pending.clear()  # messages the server pushed are not ours to keep
                        return (time.monotonic() - t) * 1000
                    if not isinstance(ev, Pong):
                        ws._absorb(ev, time.time())
                ws._pending.clear()
            return None
        except (OSError, socket.timeout, TimeoutError, Exception):
            self._close_ws()
            return None

    def _request_stacks(self) -> None:
        """SIGUSR1: the agent's faulthandler writes every thread's stack to
        agent/faulthandler.log (the hang finding quotes it)."""
        try:
            os.kill(self.pid, signal.SIGUSR1)
        except OSError:
            return
        time.sleep(0.5)  # the dump is a few kB written by a C handler

    def _close_ws(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            ws.close(abrupt=True)

    def _loop(self) -> None:
        with open(self.path, "a", encoding="utf-8") as log:
            while not self._stop.is_set():
                t = time.monotonic()
                health = self._health()
                ping = self._ws_ping() if not self._stop.is_set() else None
                now = time.monotonic()
                if health is not None or ping is not None:
                    self.last_answer = now
                silent = now - self.last_answer
                self.unanswered_max_s = max(self.unanswered_max_s, silent)
                log.write(json.dumps({"t": time.time(), "health_ms": _r(health), "ws_ping_ms": _r(ping),
                                      "unanswered_s": round(silent, 2)}) + "\n")
                log.flush()
                if silent >= self.hang_s and self.hang is None:
                    self.state = process_state(self.pid)
                    self._hang_t = now
                    self._since_s = time.time() - silent - self.t0
                    is_stopped = bool(self.state and self.state.startswith("T"))
                    if not is_stopped:
                        self._request_stacks()
                    stopped = " (the process is stopped, e.g. SIGSTOP: it runs no code, so the agent "\
                              "could not dump its stacks)" if is_stopped else ""
                    self.hang = (f"target stopped answering: no health or WebSocket ping answer for "
                                 f"{silent:.0f} s{stopped}")
                self._stop.wait(max(0.0, PROBE_EVERY_S - (time.monotonic() - t)))


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 1)
