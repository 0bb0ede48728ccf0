"""The result every audio detector returns."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

KINDS = (
    "length_mismatch", "dropped_samples", "repeated_samples", "click", "level_step",
    "spectral_step", "gap", "crossfade_dip", "passthrough", "clipping", "sample_rate_or_channels",
    # position truth (position.py)
    "position_error", "position_jump", "stale_audio_after_seek", "announced_position_mismatch", "attenuation",
    "pre_echo", "fade_in_dip",
)


@dataclass
class AudioDefect:
    """One confirmed defect in a captured stream.

    time_s is stream time (seconds from the capture's first frame);
    boundary_index counts chunk boundaries from 0 (None when the defect is not
    at a boundary); score is the robust z-score against non-boundary positions
    of the same stream (or a plain ratio for exact checks, see each detector);
    false_alarm_rate is the per-position probability of a clean position
    scoring this high, implied by that score.
    """

    kind: str
    time_s: float
    boundary_index: int | None
    magnitude: float
    unit: str
    score: float
    false_alarm_rate: float
    detail: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown audio defect kind {self.kind!r}")

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k, v in list(d.items()):
            if hasattr(v, "item"):
                d[k] = v.item()
        return d
