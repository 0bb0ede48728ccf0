"""Clipping: samples at or over full scale, or flat-topped runs near it,
that the source does not have. An exact check."""
from __future__ import annotations

import numpy as np

from .defect import AudioDefect


def clipped_mask(x: np.ndarray, *, full_scale: float = 0.9999, flat_level: float = 0.95, flat_run: int = 3) -> np.ndarray:
    """Per frame: any channel at/over full scale, or inside a run of
    ``flat_run`` identical samples above ``flat_level`` (a hard limiter)."""
    a = np.abs(x)
    mask = np.any(a >= full_scale, axis=1)
    if flat_run > 1 and len(x) > flat_run:
        same = np.all(x[1:] == x[:-1], axis=1) & np.any(a[1:] > flat_level, axis=1)
        run = np.convolve(same.astype(np.int32), np.ones(flat_run - 1, dtype=np.int32), "valid") == flat_run - 1
        idx = np.flatnonzero(run)
        for k in range(flat_run):
            mask[np.clip(idx + k, 0, len(x) - 1)] = True
    return mask


def detect_clipping(x: np.ndarray, sr: int, boundaries: np.ndarray | None = None, *,
                    source: np.ndarray | None = None, full_scale: float = 0.9999, flat_level: float = 0.95,
                    flat_run: int = 3) -> list[AudioDefect]:
    """One defect per stream. magnitude: clipped frames; time: the first."""
    level = min(flat_level, full_scale)
    if not len(x) or max(float(x.max()), -float(x.min())) <= level:
        return []  # nothing loud enough anywhere: two whole-array reductions settle most streams
    # screen on 1024-frame block peaks (block max and min of the flat
    # samples: no copy, no abs): only loud blocks are examined per frame
    blk = 1024
    nb = -(-len(x) // blk)
    flat = np.ascontiguousarray(x).reshape(-1)
    whole = (len(x) // blk) * blk * x.shape[1]
    peaks = np.empty(nb)
    peaks[: len(x) // blk] = np.maximum(flat[:whole].reshape(-1, blk * x.shape[1]).max(axis=1),
                                        -flat[:whole].reshape(-1, blk * x.shape[1]).min(axis=1))
    if whole < len(flat):
        peaks[-1] = np.abs(flat[whole:]).max()
    loud = np.flatnonzero(peaks > level)
    n, first, over = 0, None, 0
    for blocks in np.split(loud, np.flatnonzero(np.diff(loud) > 1) + 1) if len(loud) else []:
        lo, hi = max(0, blocks[0] * blk - flat_run), min(len(x), (blocks[-1] + 1) * blk + flat_run)
        mask = clipped_mask(x[lo:hi], full_scale=full_scale, flat_level=flat_level, flat_run=flat_run)
        if source is not None:
            mask &= ~clipped_mask(np.asarray(source[lo:hi]), full_scale=full_scale, flat_level=flat_level,
                                  flat_run=flat_run)
        k = int(mask.sum())
        if k and first is None:
            first = lo + int(np.argmax(mask))
        n += k
        over += int(np.sum(np.any(np.abs(x[lo:hi]) > 1.0, axis=1)))
    if not n:
        return []
    peak = float(peaks.max())
    return [AudioDefect("clipping", first / sr, None, float(n), "samples", float(n), 0.0,
                        {"peak": peak, "over_full_scale": over})]
