"""Sample-rate or channel changes: what the stream declares vs the source,
the capture file, and each chunk's own counts."""
from __future__ import annotations

from typing import Any, Iterable

from .defect import AudioDefect


def detect_format_changes(*, declared: Iterable[tuple[Any, Any]] = (), capture: tuple[int, int] | None = None,
                          source: tuple[int, int] | None = None, metas: Iterable[dict[str, Any]] = (),
                          sr: int = 44100) -> list[AudioDefect]:
    """declared : (sample_rate, channels) of every audio_stream_start
    capture : (sample_rate, channels) of the capture file
    source : (sample_rate, channels) of the source track
    metas : chunk metas (frame_count * channels must equal sample_count)
    magnitude : the sample rate (or channel count) that differs"""
    out: list[AudioDefect] = []
    declared = [(int(a), int(b)) for a, b in declared if a is not None and b is not None]
    ref = source or capture or (declared[0] if declared else None)
    for fmt, what in [(d, "audio_stream_start") for d in declared] + ([(capture, "capture")] if capture else []):
        if ref and fmt != ref:
            unit = "Hz" if fmt[0] != ref[0] else "channels"
            mag = fmt[0] if fmt[0] != ref[0] else fmt[1]
            out.append(AudioDefect("sample_rate_or_channels", 0.0, None, float(mag), unit, 1.0, 0.0,
                                   {"where": what, "found": list(fmt), "expected": list(ref)}))
    ch = (declared[0][1] if declared else None) or (capture[1] if capture else 2)
    for m in metas:
        # `frame_count` in audio_chunk_meta counts the chunk's binary WebSocket
        # frames, not audio frames; the audio frames a binary frame carried are
        # `frames`, paired from the recorder's binary event by rundir.chunk_metas
        fc, sc = m.get("frames"), m.get("sample_count")
        if isinstance(fc, int) and isinstance(sc, int) and fc * ch != sc:
            t = (m.get("frame_offset") or 0) / sr
            out.append(AudioDefect("sample_rate_or_channels", t, None, float(sc / max(fc, 1)), "channels", 1.0, 0.0,
                                   {"where": "audio_chunk_meta", "seq": m.get("seq"), "frame_count": fc,
                                    "sample_count": sc}))
            break
    return out
