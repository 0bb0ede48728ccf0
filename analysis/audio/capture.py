"""Run every detector over one capture: the shared core of the CLI and of
the run-level analysis."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .alignment import Alignment, _mono, align, aligned_source, detect_drops_and_repeats, reconcile_with_length
from .click import detect_clicks
from .clipping import detect_clipping
from .crossfade import detect_crossfade_dips
from .defect import AudioDefect
from .gap import detect_gaps
from .length import detect_length_mismatch
from .level import detect_level_steps
from .passthrough import detect_passthrough
from .signature import detect_fade_in_dips, detect_pre_echo, explained_by
from .spectral import detect_spectral_steps


@dataclass
class CaptureResult:
    defects: list[AudioDefect]
    boundaries_s: list[float]
    duration_s: float
    alignment: Alignment | None = None
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        keys = ("kind", "time_s", "boundary_index", "magnitude", "unit", "score")
        return {"findings": [{k: d.to_json()[k] for k in keys} for d in self.defects],
                "boundaries_s": [round(b, 6) for b in self.boundaries_s], "duration_s": self.duration_s}


def analyse_capture(x: np.ndarray, sr: int, boundaries: np.ndarray, *, source: np.ndarray | None = None,
                    source_offset: int = 0, enhanced: bool | None = None, expected_frames: int | None = None,
                    length_tolerance: int = 0, seed: int = 0) -> CaptureResult:
    """x: (frames, channels) capture; boundaries: frames; source: the whole
    source track (not pre-aligned) whose frame ``source_offset`` should match
    the capture's first frame (it is verified and refined by correlation).
    enhanced: True to check for pass-through, None to skip."""
    b = np.asarray(sorted(int(v) for v in boundaries), dtype=np.int64)
    defects: list[AudioDefect] = []
    al = None
    src = None
    if source is not None and len(source):
        if source.shape[1] != x.shape[1]:
            source = np.repeat(source[:, :1], x.shape[1], axis=1) if source.shape[1] == 1 else source[:, : x.shape[1]]
        xm, sm = _mono(x), _mono(source)
        al = align(xm, sm, sr, b, expected_offset=source_offset)
        if al.start_lag is not None:
            reconcile_with_length(xm, sm, b, al, len(x), expected_frames, sr=sr)
            src = aligned_source(source, len(x), al, mono=sm)
            defects += detect_drops_and_repeats(xm, sr, b, al, source=sm)
            if enhanced:
                defects += detect_passthrough(x, sr, src)
    defects += detect_length_mismatch(len(x), sr, expected_frames=expected_frames,
                                      tolerance_frames=length_tolerance)
    defects += detect_clicks(x, sr, b, seed=seed, source=src)
    # the mid signal the alignment made, reused rather than summed again
    defects += detect_level_steps(x, sr, b, source=src, seed=seed, x_mono=xm if src is not None else None)
    defects += detect_spectral_steps(x, sr, b, source=src, seed=seed, x_mono=xm if src is not None else None)
    defects += detect_crossfade_dips(x, sr, b, source=src, seed=seed)
    defects += detect_gaps(x, sr, b, source=src)
    defects += detect_clipping(x, sr, b, source=src)
    # named signatures last: each takes over the defects its mechanism explains
    signatures = detect_pre_echo(x, sr, b, source=src, seed=seed, x_mono=xm if src is not None else None)
    # without a source the echo search is also the evidence of a repeat
    defects += [d for d in signatures if d.kind == "repeated_samples"]
    signatures = [d for d in signatures if d.kind == "pre_echo"]
    echoed = {d.boundary_index for d in signatures}
    # an echo fading under quieter new audio is also a dip: the echo explains it
    dips = detect_fade_in_dips(x, sr, b, source=src, seed=seed, x_mono=xm if src is not None else None)
    signatures += [d for d in dips if d.boundary_index not in echoed]
    if signatures:
        gone = {id(d) for d in explained_by(signatures, sr, defects)}
        defects = [d for d in defects if id(d) not in gone] + signatures
    defects.sort(key=lambda d: (d.time_s, d.kind))
    return CaptureResult(defects, [float(v / sr) for v in b], len(x) / sr, al,
                         {"aligned": al is not None and al.start_lag is not None,
                          "source_offset_found": None if al is None else al.start_lag})
