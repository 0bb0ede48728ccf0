"""Length mismatches: delivered frames vs the source.

Only the source says whether audio was lost or added. A stream whose
audio_stream_end declares another total than it delivered is a protocol
defect the client family reports once (protocol_end_totals_mismatch, with
the ws_contract check's wrong_totals folded into it): counted here too, the
one wrong number was a second finding, and the severity table made it
CRITICAL lost audio when the audio was whole (Auralis f33a22e5's normal path
declares the whole track after a positioned start).
"""
from __future__ import annotations

from .defect import AudioDefect


def detect_length_mismatch(n_frames: int, sr: int, *, expected_frames: int | None = None,
                           tolerance_frames: int = 0) -> list[AudioDefect]:
    """Exact check.

    expected_frames : source frames from the stream's start position to the end
    magnitude : delivered - expected, in sample frames (negative = short)
    """
    if expected_frames is None or abs(n_frames - expected_frames) <= tolerance_frames:
        return []
    d = n_frames - expected_frames
    return [AudioDefect("length_mismatch", n_frames / sr, None, float(d), "samples", float(abs(d)), 0.0,
                        {"versus": "source", "delivered": n_frames, "expected": expected_frames})]
