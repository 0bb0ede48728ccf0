"""The WebSocket transport over real loopback sockets against a real server
(the `websockets` library): browser-like deflate negotiation, large binary
frames intact, the no-Origin rule, abrupt disconnects."""
from __future__ import annotations

import asyncio
import threading

import pytest

from scenarios.ws_transport import Binary, Text, WSClient, WSClosed


@pytest.fixture
def server():
    from websockets.asyncio.server import serve

    seen = {}
    loop = asyncio.new_event_loop()
    started = threading.Event()
    state = {}

    async def handler(ws):
        seen["origin"] = ws.request.headers.get("Origin")
        seen["extensions"] = ws.request.headers.get("Sec-WebSocket-Extensions")
        async for msg in ws:
            if msg == "big":
                await ws.send(bytes(range(256)) * 1200)  # 300 KB
            elif msg == "close":
                await ws.close(1001, "going away")
            else:
                await ws.send(msg)

    async def main():
        async with serve(handler, "127.0.0.1", 0, compression="deflate", max_size=None) as srv:
            state["port"] = srv.sockets[0].getsockname()[1]
            started.set()
            state["stop"] = asyncio.Event()
            await state["stop"].wait()

    th = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    th.start()
    assert started.wait(10)
    yield state["port"], seen
    loop.call_soon_threadsafe(state["stop"].set)
    th.join(5)


@pytest.mark.parametrize("compression", [True, False])
def test_round_trip_and_large_binary(server, compression):
    port, seen = server
    c = WSClient(f"ws://127.0.0.1:{port}/ws", compression=compression).connect()
    c.send_text("hello")
    m = c.recv(5)
    assert isinstance(m, Text) and m.data == "hello"
    c.send_text("big")
    m = c.recv(5)
    assert isinstance(m, Binary) and m.data == bytes(range(256)) * 1200
    if compression:
        # offered exactly as browsers do, and negotiated
        assert seen["extensions"] == "permessage-deflate; client_max_window_bits"
        assert c.extensions and c.extensions[0].startswith("permessage-deflate")
    else:
        assert seen["extensions"] is None and c.extensions == []
    assert seen["origin"] is None  # loopback rule: no Origin header unless asked
    c.close()


def test_server_close_is_reported_with_code(server):
    port, _ = server
    c = WSClient(f"ws://127.0.0.1:{port}/ws").connect()
    c.send_text("close")
    with pytest.raises(WSClosed) as e:
        c.recv(5)
    assert e.value.code == 1001


def test_abrupt_close_drops_connection_without_close_frame(server):
    port, _ = server
    c = WSClient(f"ws://127.0.0.1:{port}/ws").connect()
    c.close(abrupt=True)
    assert c.sock is None
