"""Crossfade dips: the level trace over an overlap region vs its neighbours.

A linear crossfade between two renderings that are not sample-aligned (or
not correlated at all) sums powers, not amplitudes: the level dips ~3 dB at
the middle of the overlap. The overlap's length and where it sits relative
to the chunk boundary differ between code versions, so several lengths and
centres around each boundary are tried and the deepest dip is the metric;
reference positions go through the same search, so the search does not
inflate the false-alarm rate.
"""
from __future__ import annotations

import numpy as np

from .confirm import confirm, reference_positions
from .defect import AudioDefect

_TINY = 1e-20
# the deepest a crossfade of two renderings makes the middle third: ~3 dB for
# uncorrelated material under linear fades, plus the partial cancellation of
# two EQ renderings of one tone (up to 2.2 dB on a sweep)
DEEPEST_CROSSFADE_DB = 6.0
# a rise within 30 ms from this far below a dip's louder flank to within
# 3 dB of it is an onset (or, falling, a note cut off): see _onset_within
ONSET_DB = 12.0


def level_trace_db(x: np.ndarray, sr: int, frame_s: float = 0.01) -> tuple[np.ndarray, int]:
    """Power (summed over channels) per frame in dB, and the frame length."""
    n = max(1, int(frame_s * sr))
    m = len(x) // n
    xr = np.ascontiguousarray(x[: m * n]).reshape(m, -1)
    # one BLAS dot per frame (a batched matmul): ~2x faster than einsum here
    p = (xr[:, None, :] @ xr[:, :, None])[:, 0, 0] / n
    return 10 * np.log10(p + _TINY), n


def crossfade_dip_metric(trace: np.ndarray, centers_frames: np.ndarray, *, lengths: tuple[int, ...],
                         silence_db: float = -90.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per centre (in trace frames): (deepest dip dB, its centre frame, its length in frames).

    dip = mean level of [c-L, c-L/2) and (c+L/2, c+L] minus mean level of c +- L/6,
    maximised over L in ``lengths`` and c in centre +- L/2 (steps of L/4)."""
    cs = np.concatenate([[0.0], np.cumsum(trace)])
    silent = np.concatenate([[0], np.cumsum(trace < silence_db)])
    n = len(trace)
    centers = np.asarray(centers_frames, dtype=np.int64)
    if not len(centers) or not lengths:
        return np.full(len(centers), np.nan), centers.copy(), np.zeros(len(centers), dtype=np.int64)
    # every (length, offset) candidate at once: arrays of (candidates, centres),
    # candidates in the order length-major, offset -2..2
    Ls = np.repeat(np.asarray(lengths, dtype=np.int64), 5)[:, None]
    ks = np.tile(np.arange(-2, 3), len(lengths))[:, None]
    c = centers[None, :] + ks * Ls // 4
    a0, a1 = c - Ls, c - Ls // 2
    b0, b1 = c + Ls // 2 + 1, c + Ls + 1
    i0, i1 = c - Ls // 6, c + Ls // 6 + 1
    ok = (a0 >= 0) & (b1 <= n)
    a0, a1, b0, b1, i0, i1 = (np.minimum(np.maximum(v, 0), n) for v in (a0, a1, b0, b1, i0, i1))

    def mean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (cs[b] - cs[a]) / np.maximum(b - a, 1)

    dip = 0.5 * (mean(a0, a1) + mean(b0, b1)) - mean(i0, i1)
    ok &= (silent[b1] - silent[a0]) == 0
    dip = np.where(ok, dip, -np.inf)
    pick = np.argmax(dip, axis=0)  # the first candidate wins ties, as a loop keeping strict improvements would
    P = np.arange(len(centers))
    best = dip[pick, P]
    found = np.isfinite(best)
    best_c = np.where(found, c[pick, P], centers)
    best_l = np.where(found, np.broadcast_to(Ls, c.shape)[pick, P], 0)
    return np.where(found, best, np.nan), best_c, best_l


def spectral_flatness(x: np.ndarray, sr: int, center: int, half: int) -> float:
    """Wiener entropy (geometric / arithmetic mean of the power spectrum, 50 Hz
    to 16 kHz) of x's first channel around ``center``: ~0.45 for pink noise,
    < 0.01 for tones, sweeps and simple music."""
    mono = x[:, 0] if x.ndim == 2 else x
    seg = mono[max(0, center - half): center + half]
    if len(seg) < 1024:
        return 0.0
    # imported here, not at the top: scipy.signal and scipy.stats cost a run's
    # wrapper ~1.5 s of CPU to import, and most runs never ask this question
    from scipy.signal import welch
    from scipy.stats import gmean

    f, p = welch(seg, sr, nperseg=1024)
    p = p[(f > 50) & (f < 16000)] + 1e-30
    return float(gmean(p) / p.mean())


def _onset_within(trace: np.ndarray, center: int, length: int, frames: int = 3) -> bool:
    """Whether the level trace, anywhere in center +- length, goes within
    ``frames`` frames from ONSET_DB below the louder flank to within 3 dB of
    it, or back: a note's onset after a rest, or a note cut off. A
    crossfade's level cannot: even two renderings in opposite polarity
    (amplitude 1 - 2t, the deepest V a crossfade makes) take a sixth of
    the fade to climb from -12 to -3 dB."""
    lo, hi = max(0, center - length), min(len(trace), center + length + 1)
    w = trace[lo:hi]
    if len(w) <= frames:
        return False
    top = max(trace[lo: max(lo + 1, center - length // 2)].mean(), trace[min(center + length // 2 + 1, hi - 1): hi].mean())
    nxt = np.lib.stride_tricks.sliding_window_view(w[1:], frames)
    now = w[: len(nxt)]
    rise = (now < top - ONSET_DB) & (nxt.max(1) > top - 3)
    fall = (now > top - 3) & (nxt.min(1) < top - ONSET_DB)
    return bool((rise | fall).any())


def detect_crossfade_dips(x: np.ndarray, sr: int, boundaries: np.ndarray, *, source: np.ndarray | None = None,
                          frame_s: float = 0.01, lengths_s: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0),
                          z_min: float = 6.0, excess_min_db: float = 1.5, tonal_excess_min_db: float = 3.0,
                          noise_flatness: float = 0.1, scale_floor_db: float = 0.1,
                          n_reference: int = 100, seed: int = 0) -> list[AudioDefect]:
    """Crossfade dips around boundaries. magnitude: dip depth in dB (about
    2.5-3 for a linear crossfade of uncorrelated material, measured over the
    middle third). With the aligned source, the source's own level trace is
    subtracted first.

    The dip must exceed the reference median by ``excess_min_db`` (1.5 dB) on
    noise-like content (spectral flatness >= ``noise_flatness``), where the
    defect is defined, and by ``tonal_excess_min_db`` (3 dB) on tonal content:
    there two renderings of the same tone with different EQ phase partially
    cancel under any crossfade (measured up to ~2.2 dB on a sweep under a
    smooth 2 s join), which is not the defect this detector is for."""
    b = np.asarray(boundaries, dtype=np.int64)
    if not len(b):
        return []
    trace, n = level_trace_db(x, sr, frame_s)
    if source is not None:
        sv = source.start_view() if hasattr(source, "start_view") else source
        st, _ = level_trace_db(sv, sr, frame_s)
        k = min(len(st), len(trace))
        trace = np.where(st[:k] > -90, trace[:k] - st[:k], -200.0)
    lengths = tuple(max(6, int(L / frame_s)) for L in lengths_s)
    refs = reference_positions(len(x), b, sr, count=n_reference, guard_s=max(lengths_s) * 1.5, seed=seed + 3)
    pos = np.concatenate([b, refs]) // n
    m, c, L = crossfade_dip_metric(trace, pos, lengths=lengths, silence_db=-90 if source is None else -150)
    conf = confirm(m[: len(b)], m[len(b):], z_min=z_min, excess_min=excess_min_db, scale_floor=scale_floor_db)
    for i, cf in enumerate(conf):
        if cf.confirmed and cf.excess < tonal_excess_min_db:
            half = int(min(L[i] * n, sr) // 2) + 512
            if spectral_flatness(x, sr, int(c[i] * n), half) < noise_flatness:
                cf.confirmed = False
        if cf.confirmed and source is None and cf.metric > DEEPEST_CROSSFADE_DB and _onset_within(trace, c[i], L[i]):
            # deeper than a crossfade makes, and ended or begun by an onset:
            # a rest between notes (held-out music-like corpus: a note's
            # decay to -38 dB, then a 23 dB onset, read as a 10 dB dip)
            cf.confirmed = False
    return [AudioDefect("crossfade_dip", float(c[i] * n / sr), i, cf.metric, "dB", cf.score, cf.false_alarm_rate,
                        {"overlap_s": float(L[i] * frame_s), "boundary_s": float(b[i] / sr),
                         "n_reference": cf.n_reference})
            for i, cf in enumerate(conf) if cf.confirmed]
