"""Statistical confirmation: a boundary is only a defect if it stands out.

Content changes everywhere, so an absolute threshold either misses defects on
quiet material or fires on busy material. Instead a metric measured at a
boundary is compared with the same metric at many non-boundary positions of
the same stream (the "reference" positions), using robust statistics (median
and MAD) so a few odd references do not hide a defect.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

MAD_TO_SIGMA = 1.4826


@dataclass
class Confirmation:
    metric: float
    score: float  # robust z: (metric - median_ref) / scale
    false_alarm_rate: float  # P(clean position scores >= score), normal approximation
    excess: float  # metric - median_ref, in the metric's unit
    exceedances: int  # references with metric >= this one
    n_reference: int
    confirmed: bool


def reference_positions(n_frames: int, boundaries: np.ndarray, sr: int, *, count: int = 200,
                        guard_s: float = 0.25, edge_s: float = 0.25, seed: int = 0) -> np.ndarray:
    """Non-boundary positions to compare with: ``count`` positions spread
    evenly with a deterministic jitter (so they do not phase-lock to any
    period of the content), at least ``guard_s`` from any boundary and
    ``edge_s`` from the ends. Fewer are returned if the stream is short."""
    lo, hi = int(edge_s * sr), n_frames - int(edge_s * sr)
    if hi <= lo:
        return np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    step = (hi - lo) / count
    pos = (lo + (np.arange(count) + rng.uniform(0.1, 0.9, count)) * step).astype(np.int64)
    b = np.asarray(boundaries, dtype=np.int64)
    if len(b):
        near = np.min(np.abs(pos[:, None] - b[None, :]), axis=1) < guard_s * sr
        pos = pos[~near]
    return pos


def confirm(metric: np.ndarray, reference: np.ndarray, *, z_min: float = 6.0, excess_min: float = 0.0,
            scale_floor: float = 1e-3, two_sided: bool = False) -> list[Confirmation]:
    """Score each metric value against the reference distribution.

    Parameters
    ----------
    metric : values at the candidate positions (boundaries)
    reference : values at non-boundary positions of the same stream
    z_min : robust z-score needed to confirm
    excess_min : the metric must also exceed the reference median by this
        much, in its own unit, so a perfectly steady reference (a sine, whose
        MAD is ~0) cannot turn an inaudible wobble into a finding
    scale_floor : lower bound on the reference scale, in the metric's unit
    two_sided : score |metric - median| instead of metric - median
    """
    metric = np.asarray(metric, dtype=float)
    ref = np.asarray(reference, dtype=float)
    ref = ref[np.isfinite(ref)]
    out = []
    if len(ref) < 8:
        # too few references to say anything about what is normal here
        return [Confirmation(float(m), 0.0, 1.0, 0.0, 0, len(ref), False) for m in metric]
    med = float(np.median(ref))
    dev = np.abs(ref - med) if two_sided else ref - med
    scale = max(MAD_TO_SIGMA * float(np.median(np.abs(ref - med))), scale_floor)
    for m in metric:
        if not np.isfinite(m):
            out.append(Confirmation(float(m), 0.0, 1.0, 0.0, 0, len(ref), False))
            continue
        excess = abs(m - med) if two_sided else m - med
        z = excess / scale
        far = float(ndtr(-z)) * (2 if two_sided else 1)
        k = int(np.sum(dev >= excess))
        out.append(Confirmation(float(m), float(z), min(far, 1.0), float(excess), k, len(ref),
                                bool(z >= z_min and excess >= excess_min and k == 0)))
    return out


def windows_at(sig: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """sig[a : a+length] for every start a (all in range), copied into one
    array: (len(starts), length) for 1-D sig, (len(starts), channels, length)
    for (frames, channels). Rows of a sliding-window view are copied whole,
    5-15x faster than indexing with a (starts, length) matrix of frames."""
    view = np.lib.stride_tricks.sliding_window_view(sig, length, axis=0)
    return view[np.asarray(starts, dtype=np.int64)]
