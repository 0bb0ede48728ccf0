"""One audio stream of the reference backend: chunks rendered off the loop,
each sent as audio_chunk_meta + one binary frame per 300 KB, no real-time
pacing (as Auralis: backpressure comes only from the socket), then
audio_stream_end with what was actually delivered."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import numpy as np

from . import mastering
from .geometry import CONTEXT_S, Chunk, chunk_for, plan

FLOATS_PER_FRAME = 300 * 1024 // 4  # 76800 floats: Auralis's 300 KB frames
XFADE_S = 0.5
_EPOCH = [0]  # process-global, as Auralis's stream_epoch


def next_epoch() -> int:
    _EPOCH[0] += 1
    return _EPOCH[0]


@dataclass
class Flow:
    """pause/buffer_full take effect between chunks, as in Auralis."""

    paused: bool = False
    resumed: asyncio.Event = field(default_factory=asyncio.Event)

    def pause(self) -> None:
        self.paused = True
        self.resumed.clear()

    def resume(self) -> None:
        self.paused = False
        self.resumed.set()


def render_chunk(source: np.ndarray, sr: int, chunks: list[Chunk], k: int, enhanced: bool, inj: frozenset[str],
                 *, for_crossfade: bool = False) -> np.ndarray:
    ch = chunks[k]
    last = chunks[-1].index
    if enhanced:
        forced = (0.75 if k % 2 == 0 else -0.75) if "level-step" in inj else None
        out = mastering.render(source, sr, chunks, k, smooth="level-step" not in inj, forced_gain_db=forced)
    else:
        out = source[ch.start:ch.end].copy()
        if "level-step" in inj:
            out *= np.float32(10 ** ((0.75 if k % 2 == 0 else -0.75) / 20))
    if for_crossfade:
        return out
    if "repeat-overlap" in inj and k >= 1:
        extra_start = max(0, ch.start - int(CONTEXT_S * sr))
        prefix = source[extra_start:ch.start] if not enhanced else \
            mastering.render(source, sr, chunks, k - 1, smooth="level-step" not in inj)[-(ch.start - extra_start):]
        out = np.concatenate([prefix, out])
    if "linear-crossfade-dip" in inj:
        x = int(XFADE_S * sr)
        if k >= 1:
            prev_tail = render_chunk(source, sr, chunks, k - 1, enhanced, inj, for_crossfade=True)[-x:]
            n = min(x, out.shape[0], prev_tail.shape[0])
            fade_in = np.linspace(0.0, 1.0, n, dtype=np.float32)[:, None]
            out[:n] = prev_tail[-n:] * (1 - fade_in) + out[:n] * fade_in
        if k < last:
            out = out[:-x]
    if "drop-samples" in inj and k >= 1:
        out = out[64:]
    if "gap" in inj and k >= 1:
        out[: int(0.05 * sr)] = 0.0
    if "boundary-click" in inj and k >= 1:
        out[0] += 0.5
    return out


def send_chunk_blocking(seconds: float = 0.12) -> None:
    """The blocking-send injection: a synchronous sleep ON the event loop."""
    time.sleep(seconds)


def saturate_loop_turn(seconds: float = 0.008) -> None:
    """The loop-saturation injection: one short CPU-bound turn, under the stall threshold."""
    t = time.perf_counter()
    x = 0
    while time.perf_counter() - t < seconds:
        x += 1


_SATURATOR: list[asyncio.Task] = []


def ensure_saturator(active: Callable[[], bool]) -> None:
    """One process-wide task: ~8 ms CPU turns every ~2 ms while any stream runs."""
    if _SATURATOR and not _SATURATOR[0].done():
        return

    async def loop() -> None:
        while True:
            if active():
                saturate_loop_turn()
            await asyncio.sleep(0.002)

    _SATURATOR[:] = [asyncio.get_running_loop().create_task(loop())]


async def run_stream(*, send_json: Callable[[dict], Awaitable[None]], send_pair: Callable[[dict, bytes], Awaitable[None]],
                     track: dict[str, Any], audio: tuple[np.ndarray, int], enhanced: bool, start_position: float,
                     flow: Flow, inj: frozenset[str], preset: str = "adaptive") -> None:
    source, sr = audio
    total = source.shape[0]
    chunks = plan(total, sr, enhanced)
    pos = int(max(0.0, start_position) * sr)
    start_chunk = chunk_for(chunks, min(pos, total - 1)) if pos > 0 else 0
    trim = max(0, pos - chunks[start_chunk].start) if pos > 0 else 0
    epoch = next_epoch()
    start: dict[str, Any] = {
        "track_id": track["id"], "sample_rate": sr, "channels": 2, "total_chunks": len(chunks),
        "chunk_duration": 15.0, "total_duration": round(total / sr - (chunks[start_chunk].start / sr), 3),
        "stream_type": "enhanced" if enhanced else "normal", "stream_epoch": epoch,
        "preset": preset if enhanced else "none",
    }
    if pos > 0:
        start.update(is_seek=True, start_chunk=start_chunk, seek_position=start_position,
                     seek_offset=round(start_position - chunks[start_chunk].start / sr, 6))
    await send_json({"type": "audio_stream_start", "data": start})
    if "slow-start" in inj:
        await asyncio.sleep(2.0)
    prerendered: list[np.ndarray] | None = None
    if "unbounded-buffer" in inj:
        # ignores backpressure: the whole track rendered up front and held per
        # connection for as long as the client takes to read it (float64 work
        # copies and the bytes to send, ~3x the track's float32 size)
        def render_all() -> tuple[list[np.ndarray], list[bytes]]:
            work = [render_chunk(source, sr, chunks, k, enhanced, inj).astype(np.float64)
                    for k in range(start_chunk, len(chunks))]
            return work, [w.astype("<f4").tobytes() for w in work]

        prerendered, held = await asyncio.to_thread(render_all)  # held: kept alive until the stream ends
    seq = 0
    delivered = 0
    for k in range(start_chunk, len(chunks)):
        if flow.paused:
            await flow.resumed.wait()
        if prerendered is not None:
            pcm = prerendered[k - start_chunk].astype(np.float32)
        else:
            pcm = await asyncio.to_thread(render_chunk, source, sr, chunks, k, enhanced, inj)
        if k == start_chunk and trim:
            pcm = pcm[trim:]
        flat = np.ascontiguousarray(pcm, dtype="<f4").reshape(-1)
        n_frames = max(1, -(-flat.size // FLOATS_PER_FRAME))
        for i in range(n_frames):
            part = flat[i * FLOATS_PER_FRAME:(i + 1) * FLOATS_PER_FRAME]
            meta = {"type": "audio_chunk_meta", "data": {
                "seq": seq, "track_id": track["id"], "stream_epoch": epoch, "chunk_index": k,
                "chunk_count": len(chunks), "frame_index": i, "frame_count": n_frames, "sample_count": int(part.size),
                "stream_type": start["stream_type"]}}
            await send_pair(meta, part.tobytes())
            seq += 1
        delivered += pcm.shape[0]
        if "blocking-send" in inj:
            send_chunk_blocking()
    await send_json({"type": "audio_stream_end", "data": {
        "track_id": track["id"], "total_samples": delivered, "duration": round(delivered / sr, 6),
        "stream_type": start["stream_type"], "reason": "completed"}})
