"""A real reference server in a subprocess (fresh HOME/TMPDIR, a free
loopback port) and a plain websocket-client that collects one stream."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import requests
import soundfile as sf
import websocket

ROOT = Path(__file__).resolve().parents[2]
SR = 44100


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_tracks(music: Path, seconds: float = 40.0, seed: int = 1) -> dict[str, np.ndarray]:
    """a_noise.wav (stereo noise) and b_sine.wav (stereo 440/660 Hz sines), float32."""
    music.mkdir(parents=True, exist_ok=True)
    n = int(seconds * SR)
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    tracks = {
        "a_noise": (0.1 * rng.standard_normal((n, 2))).astype(np.float32),
        "b_sine": np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 660 * t)],
                           axis=1).astype(np.float32),
    }
    for name, x in tracks.items():
        sf.write(music / f"{name}.wav", x, SR, subtype="FLOAT")
    return tracks


@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    home: Path
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_server(tmp: Path, inject: str = "", env: dict[str, str] | None = None, loop: str = "asyncio") -> Server:
    home = tmp / "home"
    (home / "Music").mkdir(parents=True, exist_ok=True)
    (tmp / "tmp").mkdir(exist_ok=True)
    port = free_port()
    e = {k: v for k, v in os.environ.items() if not k.startswith("EARSHOT_REF_")}
    e.update(HOME=str(home), TMPDIR=str(tmp / "tmp"), EARSHOT_REF_INJECT=inject, PYTHONUNBUFFERED="1", **(env or {}))
    log = tmp / f"server-{port}.log"
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "instrument.reference.app:app", "--host", "127.0.0.1",
                             "--port", str(port), "--loop", loop, "--ws-per-message-deflate", "false"],
                            cwd=ROOT, env=e, stdout=log.open("w"), stderr=subprocess.STDOUT)
    srv = Server(proc, port, home, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if requests.get(srv.base + "/api/health", timeout=1).ok:
                return srv
        except requests.RequestException:
            time.sleep(0.1)
    srv.stop()
    raise RuntimeError("server did not become healthy in 30 s")


def scan(srv: Server) -> list[dict]:
    r = requests.post(srv.base + "/api/library/scan", json={"directories": [str(srv.home / "Music")]}, timeout=60)
    r.raise_for_status()
    return requests.get(srv.base + "/api/library/tracks", params={"limit": 50}, timeout=10).json()["tracks"]


@dataclass
class Stream:
    start: dict[str, Any] | None = None
    metas: list[dict[str, Any]] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list)
    frame_t: list[float] = field(default_factory=list)
    end: dict[str, Any] | None = None
    other: list[dict[str, Any]] = field(default_factory=list)

    def audio(self) -> np.ndarray:
        return np.concatenate(self.frames).reshape(-1, 2) if self.frames else np.zeros((0, 2), np.float32)

    def chunk_frames(self) -> dict[int, int]:
        """sample frames delivered per chunk_index, from the metas"""
        out: dict[int, int] = {}
        for m in self.metas:
            out[m["chunk_index"]] = out.get(m["chunk_index"], 0) + m["sample_count"] // 2
        return out

    def boundaries(self) -> list[int]:
        """frame offsets where a new chunk_index begins, from the metas"""
        out, pos, last = [], 0, None
        for m in self.metas:
            if last is not None and m["chunk_index"] != last:
                out.append(pos)
            last = m["chunk_index"]
            pos += m["sample_count"] // 2
        return out


class Client:
    def __init__(self, srv: Server, timeout: float = 20.0, **kw: Any):
        self.ws = websocket.create_connection(srv.ws_url, timeout=timeout, **kw)
        self.hello = [self.recv_json(), self.recv_json()]

    def send(self, kind: str, data: dict | None = None) -> None:
        self.ws.send(json.dumps({"type": kind, "data": data or {}}))

    def recv(self) -> tuple[int, Any]:
        op, data = self.ws.recv_data()
        if op == websocket.ABNF.OPCODE_TEXT:
            return op, json.loads(data)
        return op, data

    def recv_json(self) -> dict:
        op, msg = self.recv()
        assert op == websocket.ABNF.OPCODE_TEXT, "expected a text message"
        return msg

    def until(self, kind: str, limit: int = 200) -> dict:
        for _ in range(limit):
            op, msg = self.recv()
            if op == websocket.ABNF.OPCODE_TEXT and msg.get("type") == kind:
                return msg
        raise AssertionError(f"no {kind} in {limit} messages")

    def stream(self, kind: str, data: dict, *, max_messages: int = 5000, stop_after_frames: int | None = None,
               read_delay: float = 0.0) -> Stream:
        """Send a play/seek and collect its stream until audio_stream_end (or
        until `stop_after_frames` binary frames)."""
        self.send(kind, data)
        s = Stream()
        epoch = None
        last_meta: dict | None = None  # any epoch: a superseded stream's frames are dropped, as clients must
        for _ in range(max_messages):
            op, msg = self.recv()
            if op == websocket.ABNF.OPCODE_BINARY:
                assert last_meta is not None, "binary frame without a preceding meta"
                if epoch is None or last_meta["stream_epoch"] != epoch:
                    last_meta = None
                    continue
                last_meta = None
                arr = np.frombuffer(msg, dtype="<f4")
                assert arr.size == s.metas[-1]["sample_count"]
                s.frames.append(arr)
                s.frame_t.append(time.monotonic())
                if stop_after_frames is not None and len(s.frames) >= stop_after_frames:
                    return s
                if read_delay:
                    time.sleep(read_delay)
                continue
            t, d = msg.get("type"), msg.get("data") or {}
            assert last_meta is None, f"{t} arrived between a meta and its frame"
            if t == "audio_stream_start":
                s.start, epoch = d, d["stream_epoch"]
            elif t == "audio_chunk_meta":
                last_meta = d
                if d.get("stream_epoch") == epoch:
                    s.metas.append(d)
            elif t == "audio_stream_end" and s.start is not None:
                s.end = d
                return s
            elif t in ("audio_stream_error", "error"):
                s.other.append(msg)
                if s.start is None:
                    return s
            else:
                s.other.append(msg)
        raise AssertionError(f"stream did not end in {max_messages} messages")

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:
            pass
