"""Position truth: where in the source each part of a capture comes from,
against where the client asked for it and where the server said it would be.

The chunk-boundary detectors (alignment, continuity) follow the lag between
capture and source only a few milliseconds (alignment) or a few seconds
around each boundary (continuity). A stream that starts 5 s late, replays 15 s
from a chunk start, or switches mid-chunk to another part of the track leaves
no trace there. This module measures the **position trace**: for a window
every ``step_s`` of the capture, the source time it plays, found by
normalised cross-correlation first near where it should be and, when that
fails, over the whole source (rejected when a second peak is nearly as good:
periodic content cannot be placed). From the trace:

- ``position_error``: the first audio's source time against the requested
  position (signed seconds; beyond one frame of rounding);
- ``position_jump``: the source time jumping inside a stream (backward =
  replay, forward = lost audio), >= ``min_jump_s``: smaller lag changes are
  the drop/repeat-samples detectors'; jumps at a chunk boundary within the
  continuity check's search are the continuity check's;
- ``stale_audio_after_seek``: a stream that first plays audio from elsewhere
  (the previous position) and then jumps to the requested position;
- ``announced_position_mismatch``: the audio starts where asked, but not where
  audio_stream_start says it does;
- ``attenuation`` (see :func:`detect_attenuation`): a span >= 1 s where the
  capture is >= 20 dB quieter than the source while the source has signal.

Everything here is pure: arrays and numbers in, AudioDefects out.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .alignment import QUIET_SOURCE, BlockSpectra, _mono, estimate_lag, locate_change
from .defect import AudioDefect

_TINY = 1e-20


@dataclass
class PositionTrace:
    """Source position of the capture, window by window.

    frames: capture frame where each window starts; lags: source frame minus
    capture frame there (NaN where the window is silent or cannot be placed);
    corr: normalised correlation of the match (0 where unknown)."""

    sr: int
    window: int
    frames: np.ndarray
    lags: np.ndarray
    corr: np.ndarray
    n_frames: int = 0
    global_searches: int = 0
    # the first placed window's position confirmed by an unambiguous search of
    # the whole source: False on periodic content (a sine), where the local
    # search only finds the period nearest the expectation it was given
    anchored: bool = False

    @property
    def known(self) -> np.ndarray:
        return np.isfinite(self.lags)

    def times_s(self) -> np.ndarray:
        return self.frames / self.sr

    def source_s(self) -> np.ndarray:
        return (self.frames + self.lags) / self.sr

    def segments(self, min_jump_frames: int) -> list["Segment"]:
        """Runs of known windows whose lag stays within min_jump_frames of the
        run's first lag (unknown windows inside a run do not break it)."""
        out: list[Segment] = []
        for i in np.flatnonzero(self.known):
            lag = float(self.lags[i])
            if out and abs(lag - out[-1].lag) < min_jump_frames:
                out[-1].last = int(i)
                continue
            out.append(Segment(int(i), int(i), lag))
        return out


@dataclass
class Segment:
    first: int  # window indices into the trace
    last: int
    lag: float  # source frame - capture frame at the segment's first window


class SourceIndexCache:
    """Whole-source indexes kept across the captures of one run: a run plays
    the same few tracks hundreds of times (a disconnect storm), and the index
    of a track costs as much as all of a short capture's own searches.
    Keyed by the source array's identity; the cache holds the array, so the
    identity cannot be reused while the entry lives."""

    def __init__(self) -> None:
        self._entries: dict[tuple[int, int], tuple[np.ndarray, "_SourceIndex"]] = {}

    def get(self, source: np.ndarray, sm: np.ndarray, window: int) -> "_SourceIndex":
        key = (id(source), window)
        hit = self._entries.get(key)
        if hit is None or hit[0] is not source:
            hit = (source, _SourceIndex(sm, window))
            self._entries[key] = hit
        return hit[1]


class _SourceIndex:
    """The source's spectrum in blocks (BlockSpectra) and its running
    energy, made once per source, so a whole-source search of one window
    costs one small FFT and an inverse FFT per block. The FFTs are float32
    (benchmarks/analysis_searches.py: faster than float64 on a 90 s track):
    these searches only place a peak, which the local float64 search then
    refines, and the energies stay float64."""

    def __init__(self, sm: np.ndarray, window: int):
        self.sm = sm
        self.window = window
        self.blocks = BlockSpectra(sm, window)
        self.cs = np.concatenate([[0.0], np.cumsum(sm.astype(np.float64) ** 2)])
        # answers by the segment's bytes: the streams of a storm that start
        # where others did carry the same head (the normal path is bit-exact),
        # and each whole-source search is an inverse FFT of every block
        self._answers: dict[tuple[bytes, float, int], tuple[int, float] | None] = {}

    def search(self, seg: np.ndarray, *, ambiguity: float, guard: int) -> tuple[int, float] | None:
        """(source frame where seg starts, correlation), or None if ambiguous."""
        seg = np.ascontiguousarray(seg, dtype=np.float64)
        key = (hashlib.blake2b(seg.tobytes(), digest_size=16).digest() + len(seg).to_bytes(8, "little"),
               float(ambiguity), int(guard))
        if key not in self._answers:
            self._answers[key] = self._search(seg, ambiguity=ambiguity, guard=guard)
        return self._answers[key]

    def _search(self, seg: np.ndarray, *, ambiguity: float, guard: int) -> tuple[int, float] | None:
        w = len(seg)
        if len(self.sm) < w:
            return None
        c = self.blocks.correlation(seg, 0, len(self.sm) - w + 1)
        # in place where it can be: each temporary of a track's length is
        # tens of MiB of fresh pages, which cost as much as the arithmetic
        e_seg = float(np.dot(seg, seg))
        ncc = np.subtract(self.cs[w:], self.cs[: len(self.cs) - w])  # the sliding energy
        np.maximum(ncc, max(1e-12, QUIET_SOURCE * e_seg), out=ncc)
        ncc *= e_seg
        np.sqrt(ncc, out=ncc)
        np.divide(c, ncc, out=ncc)
        k = int(np.argmax(ncc))
        best = float(ncc[k])
        # the best other place, outside the peak's own guard
        others = [part.max() for part in (ncc[: max(0, k - guard)], ncc[k + guard:]) if part.size]
        if others and float(max(others)) >= ambiguity * best:
            return None
        return k, best


def trace_positions(x: np.ndarray, source: np.ndarray, sr: int, *, expected_lag: float = 0.0,
                    step_s: float = 0.25, window_s: float = 0.2, local_search_s: float = 0.03,
                    global_window_s: float = 1.0, anchor_s: float = 3.0, min_corr: float = 0.6,
                    global_min_corr: float = 0.7, ambiguity: float = 0.97, silent_dbfs: float = -60.0,
                    max_global_searches: int = 24, global_cooldown_s: float = 1.0,
                    anchor_jump_s: float = 0.05, index_cache: SourceIndexCache | None = None) -> PositionTrace:
    """The position trace of capture x against the whole source (mono or
    (frames, channels) each). expected_lag: where the capture should start
    in the source (frames), tried first with ``window_s`` windows every
    ``step_s``; a window whose local match fails is searched over the whole
    source with ``global_window_s`` of audio (at most ``max_global_searches``
    times per capture, and not again within ``global_cooldown_s`` of a search
    that failed: a stream the mastering has made unrecognisable costs bounded
    time). The first run of windows is then anchored: up to
    ``anchor_s`` of it searched over the whole source must land where the
    trace put it, and no other place may match nearly as well (music repeats
    a bar; a sine repeats every period). index_cache: shares the
    whole-source index between captures of the same source array."""
    xm, sm = _mono(x), _mono(source)
    w = max(256, int(window_s * sr))
    gw = max(w, int(global_window_s * sr))
    aw = max(gw, int(anchor_s * sr))
    step = max(1, int(step_s * sr))
    starts = np.arange(0, max(0, len(xm) - w) + 1, step) if len(xm) >= w else np.zeros(0, dtype=np.int64)
    lags = np.full(len(starts), np.nan)
    corr = np.zeros(len(starts))
    silent = (10 ** (silent_dbfs / 20)) ** 2 * w * (4.0 if x.ndim == 2 and x.shape[-1] == 2 else 1.0)
    index: _SourceIndex | None = None
    searches = 0
    lag: float | None = float(expected_lag)
    local = max(64, int(local_search_s * sr))
    next_global = 0  # capture frame before which no whole-source search is tried again

    def exact(p: int, k: int) -> bool:
        return 0 <= p + k and p + k + w <= len(sm) and np.array_equal(xm[p: p + w], sm[p + k: p + k + w])

    for i, p in enumerate(starts):
        seg = xm[p: p + w].astype(np.float64)
        if float(np.dot(seg, seg)) < silent:
            continue
        found = None
        if lag is not None and exact(int(p), int(round(lag))):
            # the normal path is the source bit for bit: the window is where
            # the trace expects it, exactly (no search, no sub-sample guess)
            found = (float(round(lag)), 1.0)
        elif lag is not None:
            r = estimate_lag(xm, sm, int(p), int(round(lag)), window=w, max_shift=local)
            if r is not None and r[1] >= min_corr:
                # a bit-exact match's lag is a whole frame; the parabola's
                # fraction there is the window's spectrum, not a position
                found = (float(round(r[0])), 1.0) if exact(int(p), int(round(r[0]))) else (r[0], r[1])
        if found is None and searches < max_global_searches and p >= next_global:
            if index is None:
                index = index_cache.get(source, sm, aw) if index_cache is not None else _SourceIndex(sm, aw)
            searches += 1
            gseg = xm[p: p + gw].astype(np.float64)
            g = index.search(gseg, ambiguity=ambiguity, guard=len(gseg) // 2)
            if g is not None and g[1] >= global_min_corr:
                # refined to a fraction of a frame by the local search at the new lag
                r = estimate_lag(xm, sm, int(p), g[0] - int(p), window=w, max_shift=64)
                found = (r[0], r[1]) if r is not None and r[1] >= min_corr else (float(g[0] - p), g[1])
            else:
                next_global = int(p) + int(global_cooldown_s * sr)
        if found is not None:
            lags[i], corr[i] = found
            lag = found[0]
    anchored = False
    known = np.flatnonzero(np.isfinite(lags))
    if len(known):
        first = int(known[0])
        last = first
        for k in known[1:]:
            if abs(lags[k] - lags[first]) >= anchor_jump_s * sr:
                break
            last = int(k)
        a0 = int(starts[first])
        a1 = min(len(xm), a0 + aw, int(starts[last]) + w)
        if index is None:
            index = index_cache.get(source, sm, aw) if index_cache is not None else _SourceIndex(sm, aw)
        aseg = xm[a0:a1].astype(np.float64)
        g = index.search(aseg, ambiguity=ambiguity, guard=len(aseg) // 2)
        anchored = g is not None and abs((g[0] - a0) - lags[first]) <= 64
    return PositionTrace(sr, w, starts.astype(np.int64), lags, corr, len(xm), searches, anchored)


@dataclass
class Request:
    """Where the client asked a stream to start, and what the server said."""

    position_s: float | None  # None: the request is not known
    kind: str = ""  # play_normal | play_enhanced | seek
    announced_s: float | None = None  # audio_stream_start's seek_position (0 when not a seek)
    candidates: list[float] = field(default_factory=list)  # other requests that may have made this stream


@dataclass
class PositionResult:
    trace: PositionTrace
    defects: list[AudioDefect]
    start_s: float | None  # source time of the capture's first frame, if it could be placed
    requested_s: float | None
    jumps: list[dict[str, Any]] = field(default_factory=list)


def announcement_names(announced: float, requested: float, sr: int, max_advance_s: float = 0.5) -> bool:
    """audio_stream_start's seek_position echoes this request, allowing the
    server's advance to a chunk start (and a frame of rounding)."""
    return -1.0 / sr <= announced - requested <= max_advance_s + 1.0 / sr


def detect_position_defects(x: np.ndarray, source: np.ndarray, sr: int, request: Request, *,
                            boundaries: np.ndarray | None = None, enhanced: bool = False,
                            min_jump_s: float = 0.05, boundary_jump_owned_s: float = 8.0,
                            boundary_tolerance_s: float = 0.05, max_announced_advance_s: float = 0.5,
                            tolerance_frames: float | None = None,
                            trace: PositionTrace | None = None,
                            index_cache: SourceIndexCache | None = None) -> PositionResult:
    """Position defects of one capture (see module docstring).

    request.position_s is where the client asked the audio to start;
    request.candidates are other requests in flight when the stream started
    (a client that seeks again before the previous seek's stream started
    cannot tell which request a stream answers): the one the announcement
    echoes is taken, else the one nearest the audio.
    boundaries: chunk boundaries (capture frames); a jump at one of them no
    larger than ``boundary_jump_owned_s`` is left to the continuity check.
    tolerance_frames: how far the start may be from the request and still be
    rounding (default 1 frame on the normal path; 2 ms on the enhanced path,
    whose per-chunk EQ ramps move the correlation peak of narrowband content
    by tens of frames: a clean reference seek on the sweep measured 44; no
    listener hears a 2 ms offset, and the defects it guards are seconds)."""
    tol = (0.002 * sr if enhanced else 1.0) if tolerance_frames is None else float(tolerance_frames)
    options = [] if request.position_s is None else \
        [request.position_s] + [c for c in request.candidates if c is not None]
    # the server's announcement names the request it answers, when it echoes
    # one (allowing its advance to a chunk start)
    named = [r for r in options if request.announced_s is not None
             and announcement_names(request.announced_s, r, sr, max_announced_advance_s)]
    ann = request.announced_s
    expected = min(named, key=lambda r: abs(ann - r)) if named and ann is not None else request.position_s
    tr = trace if trace is not None else trace_positions(x, source, sr, expected_lag=(expected or 0.0) * sr,
                                                                 index_cache=index_cache)
    min_jump = int(min_jump_s * sr)
    segs = tr.segments(min_jump)
    b = np.asarray(boundaries if boundaries is not None else [], dtype=np.int64)
    defects: list[AudioDefect] = []
    res = PositionResult(tr, defects, None, request.position_s)
    if not segs:
        return res
    xm, sm = _mono(x), _mono(source)
    # jumps between consecutive segments, located to the frame
    jumps: list[dict[str, Any]] = []
    for s0, s1 in zip(segs, segs[1:]):
        lag0 = float(tr.lags[s0.last])
        lag1 = float(tr.lags[s1.first])
        lo, hi = int(tr.frames[s0.last]), int(tr.frames[s1.first]) + tr.window
        at = locate_jump(xm, sm, lo, hi, int(round(lag0)), int(round(lag1)))
        size = (lag1 - lag0) / sr
        bi = None
        if len(b):
            j = int(np.argmin(np.abs(b - at)))
            if abs(int(b[j]) - at) <= boundary_tolerance_s * sr:
                bi = j
        jumps.append({"frame": int(at), "time_s": at / sr, "size_s": size, "from_s": (at + lag0) / sr,
                      "to_s": (at + lag1) / sr, "boundary_index": bi, "lag_before": lag0, "lag_after": lag1})
    res.jumps = jumps
    start = float(tr.lags[segs[0].first]) / sr  # source time of capture frame 0
    req = request.position_s
    consumed = 0  # jumps explained by stale audio at the head
    if not tr.anchored:
        # periodic content: the start is only "found" where it was expected to
        # be, so it proves nothing either way; jumps placed by whole-source
        # searches still stand
        req = None
    else:
        res.start_s = start
    if req is not None:
        # else the request nearest the audio
        req = expected if named else min(options, key=lambda r: abs(start - r))
        res.requested_s = req
        err_frames = (start - req) * sr
        if abs(err_frames) > tol + 1:
            # stale audio: the head plays something else, then the requested position follows
            # the new audio follows the stale head (lands at the jump) or
            # overwrote it (plays as if it had started at frame 0)
            near = max(tol + 1, 0.02 * sr)
            landing = next((k for k, j in enumerate(jumps)
                            if abs((j["frame"] + j["lag_after"]) / sr - req) * sr <= near
                            or abs(j["lag_after"] / sr - req) * sr <= near), None)
            if landing is not None:
                j = jumps[landing]
                consumed = landing + 1
                defects.append(AudioDefect(
                    "stale_audio_after_seek", 0.0, None, float(j["time_s"]), "s", float(tr.corr[segs[0].first]), 0.0,
                    {"stale_from_s": start, "stale_until_s": j["from_s"], "requested_s": req,
                     "landed_at_capture_s": j["time_s"], "request": request.kind}))
            else:
                announced = request.announced_s
                advance_ok = (announced is not None and 0 < start - req <= max_announced_advance_s + 1 / sr
                              and abs(start - announced) * sr <= tol + 1)
                if not advance_ok:
                    defects.append(AudioDefect(
                        "position_error", 0.0, None, float(start - req), "s", float(tr.corr[segs[0].first]), 0.0,
                        {"requested_s": req, "actual_s": start, "announced_s": announced, "request": request.kind,
                         "error_frames": float(err_frames)}))
        elif request.announced_s is not None and abs(start - request.announced_s) * sr > tol + 1:
            defects.append(AudioDefect(
                "announced_position_mismatch", 0.0, None, float(request.announced_s - start), "s",
                float(tr.corr[segs[0].first]), 0.0,
                {"requested_s": req, "actual_s": start, "announced_s": request.announced_s, "request": request.kind}))
    for j in jumps[consumed:]:
        if abs(j["size_s"]) < min_jump_s:
            continue
        if j["boundary_index"] is not None and abs(j["size_s"]) <= boundary_jump_owned_s:
            continue  # the continuity check measures this one exactly
        defects.append(AudioDefect(
            "position_jump", float(j["time_s"]), j["boundary_index"], float(j["size_s"]), "s", 0.0, 0.0,
            {"from_s": j["from_s"], "to_s": j["to_s"], "frame": j["frame"],
             "direction": "backward (replay)" if j["size_s"] < 0 else "forward (lost audio)"}))
    return res


def _block_corr(xm: np.ndarray, sm: np.ndarray, lo: int, hi: int, lag: int, block: int) -> np.ndarray:
    """Normalised correlation of each block of xm[lo:hi] with the source at `lag` (0 outside the source)."""
    n = (hi - lo) // block
    out = np.zeros(n)
    a, b = max(lo, -lag), min(lo + n * block, len(sm) - lag)
    if b <= a:
        return out
    ka, kb = -(-(a - lo) // block), (b - lo) // block
    if kb <= ka:
        return out
    seg = xm[lo + ka * block: lo + kb * block].astype(np.float64).reshape(-1, block)
    ref = sm[lo + ka * block + lag: lo + kb * block + lag].astype(np.float64).reshape(-1, block)
    num = (seg * ref).sum(axis=1)
    den = np.sqrt((seg * seg).sum(axis=1) * (ref * ref).sum(axis=1)) + _TINY
    out[ka:kb] = num / den
    return out


def locate_jump(xm: np.ndarray, sm: np.ndarray, lo: int, hi: int, lag1: int, lag2: int, *,
                block: int = 256) -> int:
    """Frame in [lo, hi) where the lag switches from lag1 to lag2. Blocks are
    matched at each lag by normalised correlation, which the enhanced path's
    gain ramps and EQ leave alone, and the split that best explains both sides
    is refined to the frame by a short two-lag FIR fit around it."""
    c1 = _block_corr(xm, sm, lo, hi, lag1, block)
    c2 = _block_corr(xm, sm, lo, hi, lag2, block)
    if not len(c1):
        return lo
    score = np.concatenate([[0.0], np.cumsum(c1)]) + (c2.sum() - np.concatenate([[0.0], np.cumsum(c2)]))
    k = int(np.argmax(score))
    split = lo + k * block
    a, b = max(lo, split - 2 * block), min(hi, split + 2 * block)
    at, _ = locate_change(xm, sm, a, b, lag1, lag2, fit_len=block)
    return int(at)


def _block_db(x: np.ndarray, block: int) -> np.ndarray:
    n = len(x) // block
    if n == 0:
        return np.zeros(0)
    sq = np.asarray(x[: n * block], dtype=np.float64) ** 2
    ms = sq.reshape(n, block, -1).mean(axis=(1, 2)) if sq.ndim == 2 else sq.reshape(n, block).mean(axis=1)
    return 10 * np.log10(ms + _TINY)


def aligned_by_trace(source: np.ndarray, trace: PositionTrace, n_frames: int) -> np.ndarray:
    """The source under the capture, each trace step at its window's lag
    (held across unknown windows; before the first known window the first
    lag holds, so a silent head lines up with the silent source head)."""
    out = np.zeros((n_frames,) + source.shape[1:], dtype=source.dtype)
    known = np.flatnonzero(trace.known)
    if not len(known):
        return out
    held = trace.lags.copy()
    held[: known[0]] = trace.lags[known[0]]
    for i in range(known[0] + 1, len(held)):
        if not np.isfinite(held[i]):
            held[i] = held[i - 1]
    for i, a in enumerate(trace.frames):
        a = int(a)
        b = int(trace.frames[i + 1]) if i + 1 < len(trace.frames) else n_frames
        lag = int(round(float(held[i])))
        s0, s1 = max(a + lag, 0), min(b + lag, len(source))
        if s1 > s0:
            out[s0 - lag: s1 - lag] = source[s0:s1]
    return out


def detect_attenuation(x: np.ndarray, src: np.ndarray, sr: int, *, min_drop_db: float = 20.0,
                       min_duration_s: float = 1.0, block_s: float = 0.1, source_active_dbfs: float = -50.0,
                       digital_silence_dbfs: float = -90.0, gain_margin_db: float = 10.0,
                       reference_s: float = 3.0) -> list[AudioDefect]:
    """Spans >= min_duration_s where the capture is >= min_drop_db quieter
    than the aligned source ``src`` (same shape as x) while the source has
    signal. Blocks where the source is quiet neither count nor break a span;
    digital silence in the capture is the gap detector's and breaks it.

    The enhanced path changes the level on purpose (a per-chunk gain of a few
    dB), so the drop is measured against the capture-to-source level of the
    signal within ``reference_s`` around the span: candidates are blocks
    ``gain_margin_db`` short of the threshold, kept when the drop relative to
    that reference reaches it. magnitude: median drop over the span (dB,
    positive = quieter); time_s: onset; detail: recovery time (None if it
    never recovered), deepest drop, reference gain."""
    block = max(1, int(block_s * sr))
    cap_db = _block_db(x, block)
    src_db = _block_db(src, block)
    n = min(len(cap_db), len(src_db))
    cap_db, src_db = cap_db[:n], src_db[:n]
    active = src_db > source_active_dbfs
    deficit = src_db - cap_db
    low = active & (deficit >= min_drop_db - gain_margin_db) & (cap_db > digital_silence_dbfs)
    breaks = active & ~low | (cap_db <= digital_silence_dbfs) & active
    ref_n = max(1, int(reference_s / block_s))
    out: list[AudioDefect] = []
    i = 0
    while i < n:
        if not low[i]:
            i += 1
            continue
        j, last = i, i
        while j < n and not breaks[j]:
            if low[j]:
                last = j
            j += 1
        blocks = np.flatnonzero(low[i: last + 1]) + i
        around = np.r_[max(0, i - ref_n): i, last + 1: min(n, last + 1 + ref_n)]
        around = around[active[around] & ~low[around] & (cap_db[around] > digital_silence_dbfs)]
        gain = float(np.median(cap_db[around] - src_db[around])) if len(around) else 0.0
        d = deficit[blocks] + gain
        if len(blocks) * block >= min_duration_s * sr and float(np.median(d)) >= min_drop_db:
            recovered = (last + 1) * block / sr if last + 1 < n and j < n else None
            out.append(AudioDefect("attenuation", i * block / sr, None, float(np.median(d)), "dB",
                                   float(d.max()), 0.0,
                                   {"onset_s": i * block / sr, "recovery_s": recovered,
                                    "duration_s": (last + 1 - i) * block / sr, "max_db": float(d.max()),
                                    "attenuated_s": len(blocks) * block / sr, "reference_gain_db": gain}))
        i = last + 1
    return out
