"""The reference backend's FastAPI app: REST library endpoints and the /ws
protocol of Auralis (see AURALIS.md). `uvicorn instrument.reference.app:app`
builds it from the environment:
  EARSHOT_REF_INJECT         comma list of injections (injections.py); empty = clean
  EARSHOT_REF_PING_INTERVAL  seconds between server JSON pings (30)
  EARSHOT_REF_PONG_TIMEOUT   seconds a pong may take before close 1001 (10)
  EARSHOT_REF_MAX_STREAMS    concurrent streams before "Server busy" (10)
  EARSHOT_REF_ACQUIRE_TIMEOUT seconds a stream waits for a slot (5)"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import dataclasses
import os
from typing import Any

import fastapi.routing
from fastapi import FastAPI, HTTPException, Query, WebSocket
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field

from .injections import parse_injections
from .library import Library, ScanError
from .store import Store
from .session import Options, Session, Shared, allowed_origins, options_from_env

class ScanRequest(BaseModel):
    directories: list[str]


# Declared response schemas, so the openapi check has a contract to hold the
# answers to (schema-violation breaks it)
class Track(BaseModel):
    id: int
    title: str
    filepath: str
    duration: float
    sample_rate: int
    channels: int
    format: str


class TrackPage(BaseModel):
    tracks: list[Track]
    total: int
    has_more: bool


# the file routes answer audio, as their OpenAPI entry says (the openapi check holds them to it)
FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the audio file", "content": {"audio/x-wav": {}, "audio/wav": {}, "audio/flac": {}}}}

EXECUTOR_THREADS = 8


@contextlib.asynccontextmanager
async def _warm_executor(app: FastAPI):
    """Start every worker thread of the default executor, and build the
    OpenAPI document, before serving.
    Executor threads are otherwise created lazily, on the loop, by the first
    to_thread that finds none idle; on a loaded machine starting a thread took
    68 ms and showed as a loop stall in a clean run."""
    loop = asyncio.get_running_loop()
    pool = concurrent.futures.ThreadPoolExecutor(EXECUTOR_THREADS, thread_name_prefix="reference")
    loop.set_default_executor(pool)
    barrier = threading.Barrier(EXECUTOR_THREADS)
    await asyncio.gather(*[loop.run_in_executor(pool, barrier.wait) for _ in range(EXECUTOR_THREADS)])
    # FastAPI builds its OpenAPI document lazily, on the loop, at the first
    # GET /openapi.json (pydantic's schema generation: 18 ms here, a 114 ms
    # loop stall on a loaded CI host when the openapi and path checks asked
    # for it); a clean backend builds it before it answers anyone
    app.openapi()
    # and, at the first request to each endpoint, FastAPI reads and tokenizes
    # the endpoint's source (fastapi.routing._extract_endpoint_context, cached
    # per endpoint): 5 ms here, a 344 ms loop stall in a clean --trace-memory
    # CI run. Done here where this FastAPI has it; a private helper, so only
    # if present
    extract = getattr(fastapi.routing, "_extract_endpoint_context", None)
    if callable(extract):
        for route in app.routes:
            if callable(getattr(route, "endpoint", None)):
                extract(route.endpoint)
    yield
    # renders still running for streams that uvicorn closed finish before we exit
    await loop.shutdown_default_executor()
    store = getattr(app.state, "store", None)
    if store is not None:  # commit and checkpoint the settings database at shutdown
        store.close()


class SettingsUpdate(BaseModel):
    theme: str | None = None
    volume: float | None = Field(None, ge=0.0, le=1.0)
    default_preset: str | None = None


class Preset(BaseModel):
    name: str = Field(..., min_length=1, max_length=200)
    intensity: float = Field(1.0, ge=0.0, le=1.0)
    eq_gain_db: float = Field(0.0, ge=-12.0, le=12.0)


def _helper_process(tmp: str) -> None:
    """shutdown-leaks-children: a helper started in its own session (so
    neither the server's exit nor a signal to its process group reaches it),
    living 120 s past the server (its argv names TMPDIR, so a run finds it)."""
    import subprocess
    import sys

    subprocess.Popen([sys.executable, "-c", "import time,sys; time.sleep(120)", tmp],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)


def create_app(injections: frozenset[str] = frozenset(), options: dict[str, Any] | None = None) -> FastAPI:
    """The app; `options` overrides session.Options fields (ping_interval,
    pong_timeout, rate_per_s, max_streams, acquire_timeout, send_queue_frames)
    and may carry `home`, the folder whose Music/Documents may be scanned."""
    injections = parse_injections(",".join(injections))  # unknown names fail here, not mid-run
    opts = dict(options or {})
    home = opts.pop("home", None)
    unknown = set(opts) - {f.name for f in dataclasses.fields(Options)}
    if unknown:
        raise ValueError(f"unknown option {sorted(unknown)[0]!r}")
    o = Options(**opts)
    shared = Shared(lib=Library(home), opts=o, injections=injections, slots=asyncio.Semaphore(o.max_streams))
    app = FastAPI(title="earshot reference backend", version="1", lifespan=_warm_executor)
    app.state.store = store = Store(shared.lib.home, injections)
    helpers: list[bool] = []
    if "cors-wildcard-credentials" in injections:
        app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_credentials=True, allow_methods=["*"],
                           allow_headers=["*"])
    else:
        @app.middleware("http")
        async def origin_check(request, call_next):
            """As Auralis's OriginCheckMiddleware: a state-changing request from
            a page of another site runs without a CORS preflight (a "simple
            request"), so a foreign Origin is refused before any handler."""
            origin = (request.headers.get("origin") or "").lower()
            if request.method in ("POST", "PUT", "PATCH", "DELETE") and request.url.path.startswith("/api") \
                    and origin and origin not in allowed_origins(request.url.port):
                return JSONResponse({"detail": "Untrusted origin"}, status_code=403)
            return await call_next(request)

    @app.get("/api/health")
    async def health() -> dict[str, Any]:
        return {"status": "healthy", "backend": "earshot-reference", "injections": sorted(injections),
                "active_streams": shared.active_streams}

    @app.post("/api/library/scan")
    async def scan(req: ScanRequest) -> dict[str, Any]:
        try:
            return await asyncio.to_thread(shared.lib.scan, req.directories)
        except ScanError as e:
            raise HTTPException(status_code=e.status, detail=str(e)) from None

    @app.get("/api/library/tracks", response_model=TrackPage)
    async def tracks(limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0)) -> Any:
        page = shared.lib.page(limit, offset)
        if "schema-violation" in injections:
            if offset > page["total"]:
                raise IndexError("offset past the end")  # uncaught: Starlette answers a plain-text 500
            return JSONResponse({**page, "total": str(page["total"])})  # bypasses the response model
        return page

    @app.get("/api/library/tracks/{track_id}", response_model=Track)
    async def track(track_id: int) -> Any:
        t = shared.lib.get(track_id)
        if t is None:
            if "schema-violation" in injections:
                return JSONResponse({"error": "not_found", "message": "Track not found"}, status_code=404)
            raise HTTPException(status_code=404, detail="Track not found")
        return t

    @app.get("/api/settings")
    async def get_settings() -> dict[str, Any]:
        return await asyncio.to_thread(store.settings)

    @app.put("/api/settings")
    async def put_settings(req: SettingsUpdate) -> dict[str, Any]:
        return await asyncio.to_thread(store.update_settings, req.model_dump())

    @app.get("/api/presets")
    async def get_presets() -> list[dict[str, Any]]:
        return await asyncio.to_thread(store.presets)

    @app.post("/api/presets")
    async def post_preset(req: Preset) -> dict[str, Any]:
        return await asyncio.to_thread(store.add_preset, req.model_dump())

    @app.get("/api/library/tracks/{track_id}/file", response_class=FileResponse, responses=FILE_RESPONSES)
    async def track_file(track_id: int) -> Any:
        t = shared.lib.get(track_id)
        if t is None:
            raise HTTPException(status_code=404, detail="Track not found")
        return FileResponse(t["filepath"])

    @app.get("/api/library/file", response_class=FileResponse, responses=FILE_RESPONSES)
    async def library_file(path: str = Query(..., description="a file's path relative to the library (~/Music)")) -> Any:
        music = shared.lib.home / "Music"
        if "\x00" in path:
            raise HTTPException(status_code=400, detail="bad path")
        target = music / path
        if "path-traversal" not in injections:
            # resolve symlinks and .., then refuse anything outside the library
            target = target.resolve()
            if not target.is_relative_to(music.resolve()):
                raise HTTPException(status_code=403, detail="path outside the library")
        try:
            found = target.is_file()
        except OSError:  # a name too long for the filesystem
            found = False
        if not found:
            raise HTTPException(status_code=404, detail="file not found")
        return FileResponse(str(target))

    @app.websocket("/ws")
    async def ws_endpoint(ws: WebSocket) -> None:
        if "shutdown-leaks-children" in injections and not helpers:
            helpers.append(True)
            _helper_process(os.environ.get("TMPDIR", "/tmp"))
        session = Session(ws, shared)
        if "cors-wildcard-credentials" in injections:
            await ws.accept()  # any Origin, as the wildcard CORS policy
            await session.run()
        elif await session.admit():
            await session.run()

    return app


app = create_app(parse_injections(os.environ.get("EARSHOT_REF_INJECT", "")), options_from_env())
