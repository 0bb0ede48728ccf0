"""Level steps: the short-term level just after a boundary vs just before.

A chunk mastered with its own gain and butt-joined to its neighbour changes
level within a sample; a smooth join (a crossfade over the overlap) spreads
the same change over seconds and barely moves this metric. When the aligned
source is given, the source's own level change is subtracted, so a step is
measurable on noise and music, not only on steady tones.
"""
from __future__ import annotations

import numpy as np

from .confirm import confirm, reference_positions

_TINY = 1e-20


def _window_power(sig, starts: np.ndarray, length: int) -> np.ndarray:
    """Mean power (summed over channels) of sig[s:s+length] per start; NaN off the ends."""
    ok = (starts >= 0) & (starts + length <= len(sig))
    out = np.full(len(starts), np.nan)
    if ok.any():
        w = np.asarray(sig[starts[ok][:, None] + np.arange(length)[None, :]], dtype=np.float32)
        w = w.reshape(len(w), -1)
        out[ok] = np.einsum("ij,ij->i", w, w, dtype=np.float64) / length
    return out


def level_step_metric(x: np.ndarray, centers: np.ndarray, sr: int, *, window_s: float = 0.05,
                      guard_s: float = 0.001, source=None,
                      silence_db: float = -90.0) -> np.ndarray:
    """dB(after) - dB(before) per centre (minus the source's own change when
    ``source`` is the aligned source); NaN where either side is silent."""
    c = np.asarray(centers, dtype=np.int64)
    n, g = int(window_s * sr), int(guard_s * sr)

    def change(sig: np.ndarray) -> np.ndarray:
        before = _window_power(sig, c - g - n, n)
        after = _window_power(sig, c + g, n)
        floor = sig.shape[1] * 10 ** (silence_db / 10)
        bad = ~((before > floor) & (after > floor))
        d = 10 * np.log10((after + _TINY) / (before + _TINY))
        d[bad] = np.nan
        return d

    d = change(x)
    if source is not None:
        d = d - change(source)
    return d


def detect_level_steps(x: np.ndarray, sr: int, boundaries: np.ndarray, *, source: np.ndarray | None = None,
                       window_s: float = 0.05, guard_s: float = 0.001, z_min: float = 6.0,
                       excess_min_db: float = 0.3, scale_floor_db: float = 0.05, n_reference: int = 120,
                       seed: int = 0) -> list:
    """Level steps at boundaries. magnitude: signed step in dB (after - before).

    Parameters
    ----------
    source : aligned source (same shape as x) or None
    window_s : length of the level window on each side
    guard_s : gap left either side of the boundary (a click must not count)
    z_min, excess_min_db, scale_floor_db : confirmation, two-sided
    """
    from .defect import AudioDefect

    b = np.asarray(boundaries, dtype=np.int64)
    if not len(b):
        return []
    refs = reference_positions(len(x), b, sr, count=n_reference, seed=seed + 1)
    m = level_step_metric(x, np.concatenate([b, refs]), sr, window_s=window_s, guard_s=guard_s, source=source)
    conf = confirm(m[: len(b)], m[len(b):], z_min=z_min, excess_min=excess_min_db, scale_floor=scale_floor_db,
                   two_sided=True)
    return [AudioDefect("level_step", float(b[i] / sr), i, cf.metric, "dB", cf.score, cf.false_alarm_rate,
                        {"source_relative": source is not None, "n_reference": cf.n_reference})
            for i, cf in enumerate(conf) if cf.confirmed]
