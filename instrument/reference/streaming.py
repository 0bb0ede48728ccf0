"""One audio stream of the reference backend: chunks rendered off the loop,
each sent as audio_chunk_meta + one binary frame per 300 KB through a
bounded send queue (4 frames, as Auralis's AURALIS_SEND_QUEUE_MAXSIZE), no
real-time pacing: backpressure comes only from the socket. Ends with
audio_stream_end, except when cancelled by a seek, a new play or stop."""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np

from . import mastering
from .geometry import CHUNK_S, CONTEXT_S, Chunk, StartPoint, plan, start_point

FLOATS_PER_FRAME = 300 * 1024 // 4  # 76800 floats: Auralis's 300 KB frames
SEND_QUEUE_FRAMES = 4
XFADE_S = 0.5
BOUNDARY_FADE_S = 0.2  # Auralis's boundary crossfade (#3186, #3514): 200 ms, sin^2 / cos^2
CHANNELS = 2
_EPOCH = [0]  # process-global, as Auralis's stream_epoch


def next_epoch() -> int:
    _EPOCH[0] += 1
    return _EPOCH[0]


class Sender:
    """A connection's writer. A meta and its binary frame go out under one lock,
    so another message can arrive between pairs but never inside one."""

    def __init__(self, ws: Any):
        self.ws = ws
        self.lock = asyncio.Lock()

    async def json(self, msg: dict) -> None:
        async with self.lock:
            await self.ws.send_text(json.dumps(msg))

    async def pair(self, meta: dict, frame: bytes) -> None:
        # shielded: a stream cancelled by a new play or seek while its meta is
        # out would release the lock before the frame, and the new stream's
        # audio_stream_start would land inside the pair; the cancel takes
        # effect here at once, the pair finishes under the lock first
        await asyncio.shield(self._pair(meta, frame))

    async def _pair(self, meta: dict, frame: bytes) -> None:
        async with self.lock:
            await self.ws.send_text(json.dumps(meta))
            await self.ws.send_bytes(frame)


@dataclass
class Gates:
    """Auralis's two per-stream events: `pause`/`resume` (the user) and
    `buffer_full`/`buffer_ready` (the client's flow control). Either one
    closed holds the stream before its next chunk, never inside one."""

    play: asyncio.Event = field(default_factory=asyncio.Event)
    flow: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.play.set()
        self.flow.set()

    async def wait(self) -> None:
        await self.play.wait()
        await self.flow.wait()


def _gain(db: float) -> np.float32:
    return np.float32(10.0 ** (db / 20.0))


def render_chunk(source: np.ndarray, sr: int, chunks: list[Chunk], k: int, enhanced: bool, inj: frozenset[str],
                 *, for_crossfade: bool = False) -> np.ndarray:
    """Chunk k as delivered, float32 (frames, 2), with boundary injections applied.

    Boundary injections act at every boundary k >= 1 on both paths; on the
    normal path `level-step` is a plain per-chunk gain."""
    ch = chunks[k]
    last = chunks[-1].index
    step_db = (0.75 if k % 2 == 0 else -0.75) if "level-step" in inj else None
    if enhanced:
        out = mastering.render(source, sr, chunks, k, smooth=step_db is None, forced_gain_db=step_db)
    else:
        out = source[ch.start:ch.end].copy()
        if step_db is not None:
            out *= _gain(step_db)
    if for_crossfade:
        return out
    if "repeat-overlap" in inj and k >= 1:
        extra_start = max(0, ch.start - int(CONTEXT_S * sr))
        if enhanced:  # the predecessor's own rendering of those 5 s, sent again
            prefix = mastering.render(source, sr, chunks, k - 1, smooth=step_db is None,
                                      forced_gain_db=(0.75 if (k - 1) % 2 == 0 else -0.75) if step_db is not None
                                      else None)[-(ch.start - extra_start):]
        else:
            prefix = source[extra_start:ch.start]
        out = np.concatenate([prefix, out])
    if "linear-crossfade-dip" in inj:
        x = int(XFADE_S * sr)
        if k >= 1:
            prev_tail = render_chunk(source, sr, chunks, k - 1, enhanced, inj, for_crossfade=True)[-x:]
            n = min(x, out.shape[0], prev_tail.shape[0])
            fade_in = np.linspace(0.0, 1.0, n, dtype=np.float32)[:, None]
            out[:n] = prev_tail[-n:] * (1 - fade_in) + out[:n] * fade_in
        if k < last:
            out = out[:-x]  # the tail goes out inside the next chunk's fade
    if "pre-echo" in inj and k >= 1:
        # Auralis before 48a038ee: the previous chunk, already sent whole, has
        # its last 200 ms mixed again into this chunk's head (equal-power fade)
        n = min(int(BOUNDARY_FADE_S * sr), out.shape[0])
        tail = render_chunk(source, sr, chunks, k - 1, enhanced, inj, for_crossfade=True)[-n:]
        fade = np.sin(np.linspace(0.0, np.pi / 2, n))[:, None] ** 2
        out[:n] = (tail[-n:] * (1.0 - fade) + out[:n] * fade).astype(np.float32)
    if "fade-in-dip" in inj and k >= 1:
        # Auralis from 48a038ee to 86da9e75: every chunk's first 200 ms faded in from silence
        n = min(int(BOUNDARY_FADE_S * sr), out.shape[0])
        out[:n] *= (np.sin(np.linspace(0.0, np.pi / 2, n)) ** 2).astype(np.float32)[:, None]
    if "drop-samples" in inj and k >= 1:
        out = out[64:]
    if "gap" in inj and k >= 1:
        out[: int(0.05 * sr)] = 0.0
    if "boundary-click" in inj and k >= 1 and out.shape[0]:
        out[0] += 0.5
    if "attenuate-after-silence" in inj:
        out = attenuate_after_silence(out, source, sr, ch.start)
    return np.ascontiguousarray(out, dtype=np.float32)


ATTENUATE_S = 3.0
ATTENUATE_DB = -30.0
_LEAD: dict[int, int] = {}


def leading_silence(source: np.ndarray) -> int:
    """Frames of digital silence the track opens with (cached per array)."""
    key = id(source)
    if key not in _LEAD:
        loud = np.flatnonzero(np.abs(source).max(axis=1) > 0) if source.ndim == 2 else np.flatnonzero(source)
        _LEAD[key] = int(loud[0]) if len(loud) else len(source)
    return _LEAD[key]


def attenuate_after_silence(out: np.ndarray, source: np.ndarray, sr: int, first: int) -> np.ndarray:
    """The attenuate-after-silence injection: the ATTENUATE_S after a leading
    silence of >= 1 s sent ATTENUATE_DB quieter. `first`: the source frame of
    out[0] (a gain made from a silent chunk, carried into the music)."""
    lead = leading_silence(source)
    if lead < sr or lead >= len(source):
        return out
    a, b = max(lead - first, 0), min(lead + int(ATTENUATE_S * sr) - first, out.shape[0])
    if b > a:
        out = out.copy()
        out[a:b] *= _gain(ATTENUATE_DB)
    return out


def short_track_plan(chunks: list[Chunk], total: int, sr: int) -> list[Chunk]:
    """The short-track-trim injection: a track shorter than two chunks gets its
    last chunk cut as a full chunk ending at the track's end."""
    c = int(CHUNK_S * sr)
    if len(chunks) < 2 or total >= 2 * c:
        return chunks
    last = chunks[-1]
    start = max(0, total - c)
    return chunks[:-1] + [Chunk(last.index, start, total, max(0, start - int(CONTEXT_S * sr)))]


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
    """One process-wide task: ~8 ms CPU turns every ~2 ms while active() holds
    (~80% of the loop's time, no single turn near a 50 ms stall threshold)."""
    if _SATURATOR and not _SATURATOR[0].done():
        return

    async def loop() -> None:
        while True:
            if active():
                saturate_loop_turn()
            await asyncio.sleep(0.002)

    _SATURATOR[:] = [asyncio.get_running_loop().create_task(loop())]


def _frames(pcm: np.ndarray, *, seq0: int, base: dict[str, Any]) -> Iterator[tuple[dict, bytes, int, bool]]:
    """(meta, payload, sample frames, last of chunk), each payload made only when
    the queue takes it, so a stalled stream holds its chunk plus <= 4 frames."""
    flat = np.ascontiguousarray(pcm, dtype="<f4").reshape(-1)
    n = max(1, -(-flat.size // FLOATS_PER_FRAME))
    for i in range(n):
        part = flat[i * FLOATS_PER_FRAME:(i + 1) * FLOATS_PER_FRAME]
        meta = {"type": "audio_chunk_meta", "data": {**base, "seq": seq0 + i, "frame_index": i, "frame_count": n,
                                                     "sample_count": int(part.size)}}
        yield meta, part.tobytes(), int(part.size) // CHANNELS, i == n - 1


def frame_count(pcm: np.ndarray) -> int:
    return max(1, -(-pcm.size // FLOATS_PER_FRAME))


async def run_stream(sender: Sender, *, track: dict[str, Any], audio: tuple[np.ndarray, int], enhanced: bool,
                     position: float, is_seek: bool, gates: Gates, inj: frozenset[str], preset: str = "adaptive",
                     intensity: float = 1.0, queue_frames: int = SEND_QUEUE_FRAMES,
                     audio_shift_s: float = 0.0, from_chunk_start: bool = False,
                     stale_chunk: tuple[bool, int] | None = None,
                     progress: dict[str, Any] | None = None) -> None:
    """audio_shift_s, from_chunk_start, stale_chunk: position injections (the
    session decides when they apply): the audio starts audio_shift_s after
    `position`, or at its chunk's start, while the announcement stays that of
    `position`; stale_chunk = (enhanced, chunk index) of the interrupted
    stream's next chunk, whose first frame goes out on this epoch first.
    progress: updated with the chunk being sent, for the session."""
    source, sr = audio
    total = source.shape[0]
    chunks = plan(total, sr, enhanced)
    if "short-track-trim" in inj:
        chunks = short_track_plan(chunks, total, sr)
    sp = start_point(chunks, sr, position, enhanced)
    audio_sp = sp
    if audio_shift_s:
        audio_sp = start_point(chunks, sr, position + audio_shift_s, enhanced)
    if from_chunk_start:
        audio_sp = StartPoint(sp.chunk, 0.0, chunks[sp.chunk].start / sr, 0)
    stype = "enhanced" if enhanced else "normal"
    epoch = next_epoch()
    start: dict[str, Any] = {
        "track_id": track["id"], "preset": preset if enhanced else "none", "intensity": intensity if enhanced else 1.0,
        "sample_rate": sr, "channels": CHANNELS, "total_chunks": len(chunks), "chunk_duration": CHUNK_S,
        # as Auralis: the enhanced path announces the whole track, the normal
        # path what remains from the start of its first chunk
        "total_duration": total / sr if enhanced else total / sr - sp.chunk * CHUNK_S,
        "stream_type": stype, "stream_epoch": epoch,
    }
    if is_seek:
        start.update(is_seek=True, start_chunk=sp.chunk, seek_position=sp.position_s, seek_offset=sp.offset_s)
    await sender.json({"type": "audio_stream_start", "data": start})
    if "slow-start" in inj:
        await asyncio.sleep(2.0)

    base = {"track_id": track["id"], "stream_epoch": epoch, "chunk_count": len(chunks), "stream_type": stype}
    # unbounded-buffer ignores backpressure: an unbounded queue, filled with the whole track at once
    queue: asyncio.Queue = asyncio.Queue(maxsize=0 if "unbounded-buffer" in inj else queue_frames)
    delivered = [0]
    failed: list[int] = []
    timed_out: list[int] = []

    def render(k: int) -> np.ndarray:
        pcm = render_chunk(source, sr, chunks, k, enhanced, inj)
        return pcm[audio_sp.trim:] if k == audio_sp.chunk else pcm

    def render_stale() -> np.ndarray | None:
        was_enhanced, k = stale_chunk  # type: ignore[misc]
        old = plan(total, sr, was_enhanced)
        if not 0 <= k < len(old):
            return None
        pcm = render_chunk(source, sr, old, k, was_enhanced, inj)
        return pcm[: FLOATS_PER_FRAME // CHANNELS]

    error: list[BaseException] = []

    async def produce() -> None:
        seq = 0
        try:
            if "unbounded-buffer" in inj:
                def render_all() -> list[np.ndarray]:
                    # float64 working copies, held with the queued bytes for as
                    # long as the client takes to read them (~3x the float32 track)
                    return [render(k).astype(np.float64) for k in range(audio_sp.chunk, len(chunks))]

                work = await asyncio.to_thread(render_all)
                for j, w in enumerate(work):
                    for meta, data, n, last in _frames(w, seq0=seq, base={**base, "chunk_index": audio_sp.chunk + j}):
                        queue.put_nowait((meta, data, n, last, w))
                    seq += frame_count(w)
            else:
                if stale_chunk is not None:
                    stale = await asyncio.to_thread(render_stale)
                    if stale is not None:
                        for meta, data, n, last in _frames(stale, seq0=seq, base={**base,
                                                                                   "chunk_index": stale_chunk[1]}):
                            await queue.put((meta, data, n, last, None))
                        seq += frame_count(stale)
                for k in range(audio_sp.chunk, len(chunks)):
                    if progress is not None:
                        progress.update(chunk=k, enhanced=enhanced, track_id=track["id"])
                    await gates.wait()  # pause and flow control act between chunks only
                    if "chunk-timeout" in inj and enhanced and k == audio_sp.chunk + 1:
                        # as Auralis when a chunk's DSP outlives CHUNK_PROCESS_TIMEOUT:
                        # the processor may still be busy, so the stream ends here
                        timed_out.append(k)
                        break
                    try:
                        pcm = await asyncio.to_thread(render, k)
                    except Exception as e:  # a failed chunk is reported and skipped, as Auralis
                        failed.append(k)
                        await sender.json({"type": "audio_stream_error", "data": {
                            "track_id": track["id"], "error": f"Failed to process audio chunk {k}: {type(e).__name__}",
                            "code": "STREAMING_ERROR", "recovery_position": chunks[k].start / sr, "stream_type": stype}})
                        continue
                    for meta, data, n, last in _frames(pcm, seq0=seq, base={**base, "chunk_index": k}):
                        await queue.put((meta, data, n, last, None))
                    seq += frame_count(pcm)
        except Exception as e:  # handed to the stream's task once the queue has drained
            error.append(e)
        await queue.put(None)  # not reached when cancelled: then nobody is reading

    async def consume() -> None:
        while True:
            item = await queue.get()
            if item is None:
                return
            meta, data, n, chunk_done, _held = item
            await sender.pair(meta, data)
            delivered[0] += n
            if chunk_done and "blocking-send" in inj:
                send_chunk_blocking()

    producer = asyncio.get_running_loop().create_task(produce())
    try:
        await consume()
        await producer
    finally:
        if not producer.done():  # cancelled, or the socket failed: stop rendering too
            producer.cancel()
            try:
                await producer
            except asyncio.CancelledError:
                pass
    if error:
        raise error[0]
    if timed_out:
        await sender.json({"type": "audio_stream_error", "data": {
            "track_id": track["id"], "error": f"Audio processing timed out on chunk {timed_out[0]}; stream stopped",
            "code": "STREAMING_ERROR", "stream_type": stype}})
        await sender.json({"type": "audio_stream_end", "data": {
            "track_id": track["id"], "total_samples": delivered[0], "duration": delivered[0] / sr,
            "stream_type": stype, "reason": "stopped", "stream_epoch": epoch}})
        return
    # total_samples: sample FRAMES (per channel) actually delivered. Auralis's
    # docstring says the same (#4659), and its stopped/errored branches send
    # that; its completed branch sends the whole track's frame count, which
    # equals this except after a seek, where Auralis contradicts its own
    # contract. The reference keeps the contract.
    # contract-drift: Auralis's completed branch after a seek (the whole track)
    frames = total if "contract-drift" in inj and is_seek and not failed else delivered[0]
    await sender.json({"type": "audio_stream_end", "data": {
        "track_id": track["id"], "total_samples": frames, "duration": frames / sr, "stream_type": stype,
        "reason": "errored" if failed else "completed", "stream_epoch": epoch}})
