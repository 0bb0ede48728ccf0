"""Continuity against the source: is every chunk's audio the source audio
that should follow the previous chunk's?

At each chunk boundary (from the stream's own chunk_index changes) the audio
just before and just after the boundary is located in the source track; the
difference of the two source offsets is the audio the server repeated
(negative) or skipped (positive) there, exactly, in sample frames. The normal
path is bit-exact, so an exact comparison settles most boundaries for free;
the enhanced path is processed, so it is located by normalised
cross-correlation, which gain and EQ do not move.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from .audio.alignment import QUIET_SOURCE, BlockSpectra
from .model import Finding, Location
from .rundir import Stream, list_streams, read_float_wav, read_json

WINDOW = 8192  # frames located on each side of a boundary
SEARCH_S = 8.0  # how far from the expected position a span is looked for
MIN_CORR = 0.8  # a located window must match the source this well
AMBIGUITY = 0.97  # a second peak this close to the best makes the position ambiguous (periodic audio)
# frames; the enhanced path's EQ shifts phase with frequency, which moves a
# narrowband signal (the sweep) by a few samples: measured up to 4 on a clean run
MIN_SPAN = {"normal": 1, "enhanced": 16}
AFTER_SKIPS_S = (0.0, 0.6, 1.2)  # where after a boundary to locate the next span


BLOCK = 1 << 16  # frames of source per FFT block of a search, at least


class SourceBlocks(BlockSpectra):
    """A track's search blocks for continuity (BlockSpectra), with each
    block's sliding energy for the window length summed once as well. The
    energies stay float64."""

    def __init__(self, source: np.ndarray, max_window: int = WINDOW):
        super().__init__(source, max_window, min_block=BLOCK)
        self._energies: dict[tuple[int, int], np.ndarray] = {}

    def _energy(self, j: int, n: int) -> np.ndarray:
        """sum(source[p:p + n] ** 2) for the block's lags p in [j*hop, (j+1)*hop)
        (fewer at the source's end), by a running sum within the block."""
        e = self._energies.get((j, n))
        if e is None:
            a = j * self.hop
            x = self.signal[a:a + self.hop + n - 1]
            cs = np.concatenate([[0.0], np.cumsum(x * x)])
            e = self._energies[(j, n)] = cs[n:] - cs[:-n]
        return e

    def search(self, window: np.ndarray, lo: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """(correlation, energy) of `window` against source[p:p + len(window)]
        for every p in [lo, lo + count)."""
        energy = np.empty(count, dtype=np.float64)
        for j, here, there in self.spans(lo, count):
            energy[there] = self._energy(j, window.size)[here]
        return self.correlation(window, lo, count), energy


def locate(window: np.ndarray, source: np.ndarray, expected: int, search: int,
           blocks: SourceBlocks | None = None) -> tuple[int, float] | None:
    """Where `window` (mono) starts in `source` (mono), searched within
    +-search of `expected`. Returns (position, correlation) or None if the
    match is weak or ambiguous. blocks: the source's SourceBlocks, shared by
    the searches of a run (made here for a single search)."""
    n = window.size
    lo = max(0, expected - search)
    hi = min(source.size, expected + search + n)
    if hi - lo < n or not np.any(window):
        return None
    # exact fast path: the normal stream is the source byte for byte
    if 0 <= expected <= source.size - n and np.array_equal(source[expected:expected + n], window):
        return expected, 1.0
    # float32 FFTs (timed in benchmarks/analysis_searches.py): this search
    # places a peak to the frame and compares peaks against AMBIGUITY, far
    # coarser than float32's rounding
    if blocks is None or blocks.signal is not source or n > blocks.max_window:
        blocks = SourceBlocks(source, max_window=max(n, WINDOW))
    num, energy = blocks.search(window, lo, hi - lo - n + 1)
    e_win = float(np.dot(window, window))
    den = np.sqrt(np.maximum(energy, max(1e-20, QUIET_SOURCE * e_win)) * e_win)
    corr = num / den
    best = int(np.argmax(corr))
    peak = float(corr[best])
    if peak < MIN_CORR:
        return None
    # a second, separate peak nearly as high: periodic content (a sine) cannot be placed
    guard = 64
    others = [part.max() for part in (corr[: max(0, best - guard)], corr[best + guard:]) if part.size]
    if others and float(max(others)) >= AMBIGUITY * peak:
        return None
    return lo + best, peak


def boundaries(stream: Stream) -> list[tuple[int, int]]:
    """(chunk_index, frame offset in the capture) of every chunk start after the first."""
    out = []
    last_chunk = None
    for m in stream.chunk_metas():
        ci, off = m.get("chunk_index"), m.get("frame_offset")
        if ci is None or off is None:
            continue
        if last_chunk is not None and ci != last_chunk and off > 0:
            out.append((int(ci), int(off)))
        last_chunk = ci
    return out


def stream_offsets(stream: Stream, run_dir: Path, tracks: dict[Any, dict[str, Any]],
                   sources: dict[Path, tuple[np.ndarray, int, SourceBlocks] | None] | None = None
                   ) -> list[dict[str, Any]]:
    """The boundaries of one stream, located in its source. sources: each
    track's first channel (float64), rate and search blocks, made once per
    run by the caller (a storm plays the same track hundreds of times)."""
    info = stream.summary or {}
    track = tracks.get(info.get("track_id"))
    spots = boundaries(stream)
    if not track or not spots:  # most streams of a storm end before their first boundary: no audio to read
        return []
    sources = {} if sources is None else sources
    path = run_dir / track["file"]
    if path not in sources:
        try:
            src, ssr = read_float_wav(path)
            mono = src[:, 0].astype(np.float64)
            sources[path] = (mono, ssr, SourceBlocks(mono))
        except (OSError, ValueError):
            sources[path] = None
    try:
        cap, sr = read_float_wav(stream.dir / "audio.wav")
    except (OSError, ValueError):
        return []
    if sources[path] is None:
        return []
    src_m, ssr, blocks = sources[path]
    if sr != ssr or cap.shape[0] < 2 * WINDOW:
        return []
    cap_m = cap[:, 0].astype(np.float64)
    start = int(round(float(info.get("start_position") or 0.0) * sr))
    search = int(SEARCH_S * sr)
    out = []
    shift = 0  # source offset - capture offset, carried across boundaries
    for ci, b in spots:
        if b < WINDOW or b + WINDOW > cap_m.size:
            continue
        before = locate(cap_m[b - WINDOW:b], src_m, start + b - WINDOW + shift, search, blocks)
        if before is None:
            continue
        off_before = before[0] - (b - WINDOW)
        # right after the boundary the audio may be a mix (a crossfade); look a
        # little further in for the first span that is plainly the source
        # (a pre-echo's fading replay of the previous chunk's tail matches the
        # source there well enough): the first located span stands only if
        # the next one, further in, agrees with it
        after = None
        for skip in AFTER_SKIPS_S:
            a = b + int(skip * sr)
            if a + WINDOW > cap_m.size:
                break
            found = locate(cap_m[a:a + WINDOW], src_m, a + off_before, search, blocks)
            if found is None:
                continue
            here = (found[0] - (a - b), found[1])
            if after is None:
                after = here
                continue
            if here[0] != after[0]:
                after = here
            break
        if after is None:
            continue
        off_after = after[0] - b
        shift = off_after - start
        out.append({"chunk_index": ci, "frame": b, "time_s": b / sr, "delta_frames": int(off_after - off_before),
                    "corr": min(before[1], after[1]), "sr": sr})
    return out


def analyse_continuity(run_dir: Path) -> tuple[list[Finding], dict[str, Any]]:
    run_dir = Path(run_dir)
    run = read_json(run_dir / "run.json", {}) or {}
    tracks = {t.get("track_id"): t for t in (read_json(run_dir / "tracks.json", []) or [])}
    by_kind: dict[tuple[str, str], list[tuple[Stream, dict[str, Any]]]] = defaultdict(list)
    checked = 0
    sources: dict[Path, tuple[np.ndarray, int, SourceBlocks] | None] = {}
    for s in list_streams(run_dir):
        stype = (s.summary or {}).get("stream_type") or "unknown"
        for o in stream_offsets(s, run_dir, tracks, sources):
            checked += 1
            if abs(o["delta_frames"]) < MIN_SPAN.get(stype, 4):
                continue
            kind = "repeated_audio" if o["delta_frames"] < 0 else "missing_audio"
            by_kind[(kind, stype)].append((s, o))
    findings = [_finding(kind, stype, items, run.get("scenario")) for (kind, stype), items in sorted(by_kind.items())]
    return findings, {"continuity_boundaries_checked": checked}


def _finding(kind: str, stype: str, items: list[tuple[Stream, dict[str, Any]]], scenario: str | None) -> Finding:
    spans = np.array([abs(o["delta_frames"]) for _, o in items])
    sr = items[0][1]["sr"]
    streams = sorted({s.id for s, _ in items})
    first_s, first_o = items[0]
    repeated = kind == "repeated_audio"
    what = "repeated" if repeated else "skipped"
    title = f"Audio {what} at chunk boundaries ({stype} path)"
    common = np.bincount(spans).argmax() if spans.size else 0
    return Finding(
        kind=kind, title=title, severity="HIGH", dimension="Chunked Processing",
        description=(f"At {len(items)} chunk boundaries in {len(streams)} {stype} stream(s), the audio after the "
                     f"boundary is not the source audio that follows the audio before it: the server {what} "
                     f"{common} frames ({common / sr:.3f} s) most often, up to {spans.max()} frames "
                     f"({spans.max() / sr:.3f} s)."),
        impact=("Listeners hear a span of the track twice at every boundary." if repeated
                else "Listeners lose a span of the track at every boundary."),
        suggested_fix=("Trim each chunk's context/overlap exactly once before sending; derive the next chunk's start "
                       "from the previous chunk's delivered end." if repeated else
                       "Make consecutive chunks contiguous: the next chunk must start where the previous one ended."),
        location=Location(scenario=scenario, stream=first_s.id, time_s=first_o["time_s"]),
        evidence=[f"{s.id}: boundary at {o['time_s']:.3f} s (chunk {o['chunk_index']}): {what} "
                  f"{abs(o['delta_frames'])} frames = {abs(o['delta_frames']) / sr:.4f} s of source "
                  f"(match {o['corr']:.3f})" for s, o in items[:12]],
        figures={"span_frames": int(common), "span_s": round(common / sr, 6), "max_span_s": round(spans.max() / sr, 6),
                 "boundaries": len(items), "streams": len(streams)},
        key=f"{kind}|{stype}|{common}",
        # frames added (+, repeated) or lost (-) at each boundary, for the grouping stage
        sites=[{"stream": s.id, "t": round(float(o["time_s"]), 4), "value": -float(o["delta_frames"])}
               for s, o in items[:400]],
    )
