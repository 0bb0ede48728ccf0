"""Defects the reference backend can be told to have (`--inject a,b`), each
with what a correct tool must report. Boundary injections act at every chunk
boundary k >= 1 (normal path: 15, 30, 45 s...; enhanced: 15, 25, 35 s...) on
BOTH paths; on the enhanced path they apply to the mastered audio."""
from __future__ import annotations

INJECTIONS: dict[str, str] = {
    "boundary-click": "both paths: a +0.5 single-sample impulse added to the first sample of each chunk k>=1 "
                      "-> a click finding at every boundary time, nowhere else",
    "level-step": "both paths: per-chunk gains butt-joined without smoothing, alternating +0.75/-0.75 dB "
                  "(chunk 0 +0.75) -> a level_step finding of ~1.5 dB at every boundary",
    "linear-crossfade-dip": "both paths: the first 500 ms of each chunk k>=1 overlap-added with LINEAR fades onto "
                            "the last 500 ms of the previous chunk -> 500 ms missing per boundary and a ~3 dB dip "
                            "mid-fade on uncorrelated material (crossfade_dip)",
    "drop-samples": "both paths: 64 sample frames dropped at the start of each chunk k>=1 -> dropped_samples of "
                    "64 frames at every boundary; delivered length short by 64 per boundary",
    "repeat-overlap": "both paths: each chunk k>=1 starts 5 s before its nominal start, so the 5 s overlap is "
                      "sent twice -> repeated_samples of 5.000 s at every boundary; length +5 s per boundary",
    "gap": "both paths: the first 50 ms of each chunk k>=1 replaced by digital zeros -> a gap of 50 ms at every "
           "boundary",
    "blocking-send": "both paths: time.sleep(0.12) on the event loop in send_chunk_blocking (streaming.py), once "
                     "per chunk after its last frame -> loop stalls of ~120 ms, waiting not computing, attributed "
                     "to that function's file:line",
    "unbounded-buffer": "both paths: ignores backpressure and pause/flow control: renders the whole track at "
                        "stream start and queues it unbounded per connection (float64 copies + bytes, ~3x the "
                        "float32 track) -> RSS grows with every stalled or slow reader",
    "leak-on-disconnect": "keeps 1048576 bytes (1 MiB) of per-connection state in a module-level list on every "
                          "disconnect -> rss_leak of ~1 MiB per connect/stream/disconnect cycle (~100 MiB per 100)",
    "slow-start": "both paths: await asyncio.sleep(2.0) between audio_stream_start and the first chunk -> time "
                  "to first audio >= 2 s, without a loop stall",
    "loop-saturation": "while any stream is open: ~8 ms synchronous CPU turns in saturate_loop_turn "
                       "(streaming.py) every ~2 ms, each below a 50 ms stall threshold -> loop_saturation (loop "
                       "busy > 60%) naming that function, and no loop_stall",
}


def parse_injections(text: str | None) -> frozenset[str]:
    names = frozenset(x.strip() for x in (text or "").split(",") if x.strip())
    unknown = sorted(names - set(INJECTIONS))
    if unknown:
        raise ValueError(f"unknown injection '{unknown[0]}' (known: {', '.join(INJECTIONS)})")
    return names
