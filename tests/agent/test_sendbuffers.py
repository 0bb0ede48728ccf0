"""The agent's send-buffer sampler, in-process: queues are registered with
the line that made them, queued bytes count once per buffer, transports are
read from uvicorn's connection set, and nothing is written while nothing is
held."""
from __future__ import annotations

import asyncio
import json

import numpy as np

from instrument.agent import sendbuffers
from instrument.agent.events import EventLog


class _Transport:
    def __init__(self, size):
        self.size = size

    def get_write_buffer_size(self):
        return self.size

    def is_closing(self):
        return False


def _ws_protocol_class():
    # named like uvicorn's: the sampler knows a WebSocket protocol by its module
    return type("WebSocketsSansIOProtocol", (), {"__module__": "uvicorn.protocols.websockets.websockets_sansio_impl"})


class _State:
    def __init__(self, *protos):
        self.connections = set(protos)


def test_queued_bytes_and_transport_buffers_with_their_sites(tmp_path):
    sendbuffers.install_queue_registry()
    Proto = _ws_protocol_class()
    a, b = Proto(), Proto()
    a.transport, a.client = _Transport(3 * 1024 * 1024), ("127.0.0.1", 5001)
    b.transport, b.client = _Transport(1024), ("127.0.0.1", 5002)
    http = type("HttpToolsProtocol", (), {"__module__": "uvicorn.protocols.http.httptools_impl"})()
    http.transport = _Transport(10 ** 9)  # not a WebSocket: not counted

    async def main():
        q = asyncio.Queue()  # this line is the queue's site
        line = main.__code__.co_firstlineno + 1
        work = np.zeros(1000, dtype=np.float64)  # 8000 bytes, shared by every frame of its chunk
        for i in range(4):
            q.put_nowait(({"seq": i}, bytes([i]) * 100, work[i * 10:(i + 1) * 10]))
        asyncio.Queue().put_nowait({"type": "websocket.receive", "text": "hi"})  # no bytes: not a send queue
        s = sendbuffers.SendBufferSampler(EventLog(tmp_path), _State(a, b, http), code_roots=[str(tmp_path)])
        return s.sample(), line

    rec, line = asyncio.run(main())
    assert rec["ws_connections"] == 2
    assert rec["transport_bytes"] == 3 * 1024 * 1024 + 1024
    (site,) = rec["queue_sites"]
    assert site["site"].endswith(f"test_sendbuffers.py:{line}")
    assert site["items"] == 4 and site["bytes"] == 4 * 100 + 8000  # the shared array once
    assert rec["held_bytes"] == rec["transport_bytes"] + rec["queue_bytes"]


def test_nothing_is_written_while_nothing_is_held(tmp_path):
    async def main():
        log = EventLog(tmp_path)
        s = sendbuffers.SendBufferSampler(log, _State(), interval_s=0.05)
        s.start(asyncio.get_running_loop())
        await asyncio.sleep(0.3)
        s.stop()
        log.close()
    asyncio.run(main())
    assert not (tmp_path / "sendbuffers.jsonl").exists()


def test_a_sampler_on_the_loop_writes_readings_off_it(tmp_path):
    Proto = _ws_protocol_class()
    p = Proto()
    p.transport, p.client = _Transport(4096), ("127.0.0.1", 1)

    async def main():
        log = EventLog(tmp_path)
        s = sendbuffers.SendBufferSampler(log, _State(p), interval_s=0.05)
        s.start(asyncio.get_running_loop())
        await asyncio.sleep(0.4)
        s.stop()
        log.close()
    asyncio.run(main())
    lines = [json.loads(x) for x in (tmp_path / "sendbuffers.jsonl").read_text().splitlines()]
    assert len(lines) >= 3 and all(r["transport_bytes"] == 4096 for r in lines)


def test_display_paths_carry_no_absolute_location():
    assert sendbuffers.display_path("/srv/app/core/q.py:12", ["/srv/app"]) == "core/q.py:12"
    assert sendbuffers.display_path("/x/lib/python3.13/site-packages/uvicorn/p.py", []) == "uvicorn/p.py"
    assert sendbuffers.display_path("/srv/someone/x.py", []) == "x.py"
