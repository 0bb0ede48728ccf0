"""Length mismatches: delivered frames vs the source and vs audio_stream_end."""
from __future__ import annotations

from .defect import AudioDefect


def detect_length_mismatch(n_frames: int, sr: int, *, expected_frames: int | None = None,
                           declared_total: int | None = None, channels: int = 2,
                           tolerance_frames: int = 0) -> list[AudioDefect]:
    """Exact checks.

    expected_frames : source frames from the stream's start position to the end
    declared_total : audio_stream_end total_samples; accepted as frames or as
        interleaved samples (frames * channels), since both conventions exist
    magnitude : delivered - expected, in sample frames (negative = short)
    """
    out = []
    if expected_frames is not None and abs(n_frames - expected_frames) > tolerance_frames:
        d = n_frames - expected_frames
        out.append(AudioDefect("length_mismatch", n_frames / sr, None, float(d), "samples", float(abs(d)), 0.0,
                               {"versus": "source", "delivered": n_frames, "expected": expected_frames}))
    if declared_total is not None:
        declared = int(declared_total)
        if abs(n_frames - declared) > tolerance_frames and abs(n_frames * channels - declared) > tolerance_frames:
            d = n_frames - declared
            out.append(AudioDefect("length_mismatch", n_frames / sr, None, float(d), "samples", float(abs(d)), 0.0,
                                   {"versus": "audio_stream_end", "delivered": n_frames, "declared": declared}))
    return out
