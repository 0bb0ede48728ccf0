"""The agent's measured locations: the app's route table with each
endpoint's file and line, and the call sites that send each WebSocket
message type (recorded once per site)."""
from __future__ import annotations

import asyncio
import inspect
import json
import sys
from pathlib import Path

from fastapi import APIRouter, FastAPI

from instrument.agent.events import EventLog
from instrument.agent.sites import CodeRoots, WebSocketSites, write_routes

HERE = Path(__file__).resolve().parent


def get_album(album_id: int) -> dict:
    return {}


def test_routes_name_each_endpoints_file_and_line(tmp_path):
    app = FastAPI()
    router = APIRouter(prefix="/api/albums")
    router.get("/{album_id}")(get_album)
    app.include_router(router)
    n = write_routes(app, CodeRoots([str(HERE.parents[1])]), tmp_path)
    rows = json.loads((tmp_path / "routes.json").read_text())
    assert n == len(rows)
    [row] = [r for r in rows if r["path"] == "/api/albums/{album_id}"]
    assert row["methods"] == ["GET"] and row["function"] == "get_album"
    assert row["file"] == "tests/agent/test_sites.py" and row["line"] == inspect.getsourcelines(get_album)[1]
    assert all(r["file"] is None for r in rows if r["path"].startswith("/docs"))  # FastAPI's own: not the target's


class FakeSocket:
    """Stands in for starlette's WebSocket only as the class the hook patches."""


def test_sends_are_recorded_once_per_call_site_with_the_targets_frames(tmp_path, monkeypatch):
    import starlette.websockets as sw

    sent: list[dict] = []

    async def original_send(ws, message):
        sent.append(message)

    monkeypatch.setattr(sw.WebSocket, "send", original_send)
    monkeypatch.setattr(sw.WebSocket, "receive", original_send)
    log = EventLog(tmp_path)
    assert WebSocketSites(log, CodeRoots([str(HERE)])).install()

    async def send_chunk(ws):  # the target's code: this file is under the code root
        for _ in range(3):
            await sw.WebSocket.send(ws, {"type": "websocket.send", "bytes": b"\0" * 8})
        await sw.WebSocket.send(ws, {"type": "websocket.send", "text": json.dumps({"type": "audio_chunk_meta"})})

    asyncio.run(send_chunk(FakeSocket()))
    log.close()
    rows = [json.loads(x) for x in (tmp_path / "ws_sites.jsonl").read_text().splitlines()]
    assert [r["type"] for r in rows] == ["binary", "audio_chunk_meta"] and len(sent) == 4
    assert rows[0]["frames"][-1]["function"].endswith("send_chunk") and rows[0]["frames"][-1]["file"] == "test_sites.py"
    assert sys.modules["starlette.websockets"].WebSocket.send is not original_send
