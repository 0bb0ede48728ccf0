"""Passthrough: an enhanced stream that is bit-identical to its source.

Auralis falls back to returning the input untouched when its native DSP is
missing; the stream then looks perfect and the user gets no enhancement.
"""
from __future__ import annotations

import numpy as np

from .defect import AudioDefect


def detect_passthrough(x: np.ndarray, sr: int, source_aligned, *, min_identical: float = 0.999,
                       min_frames: int = 4410) -> list[AudioDefect]:
    """magnitude: fraction of frames bit-identical to the aligned source."""
    n = min(len(x), len(source_aligned))
    if n < min_frames:
        return []
    # processed audio differs almost everywhere: a 1 s probe settles most streams
    probe = min(n, sr)
    if not np.array_equal(x[:probe], np.asarray(source_aligned[0:probe])) and \
            np.mean(np.all(x[:probe] == np.asarray(source_aligned[0:probe]), axis=1)) < min_identical:
        return []
    src = source_aligned.contiguous() if hasattr(source_aligned, "contiguous") else source_aligned
    same = np.all(x[:n] == src[:n], axis=1)
    frac = float(same.mean())
    if frac < min_identical:
        return []
    return [AudioDefect("passthrough", 0.0, None, frac, "fraction", frac, 0.0,
                        {"identical_frames": int(same.sum()), "frames": n})]
