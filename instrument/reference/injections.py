"""Defects the reference backend can be told to have (`--inject a,b`), each
with what a correct tool must report. Boundary injections act at every chunk
boundary k >= 1 on both paths unless said otherwise."""
from __future__ import annotations

INJECTIONS: dict[str, str] = {
    "boundary-click": "a +0.5 single-sample impulse at the first sample of each chunk k>=1 -> click findings at "
                      "every boundary time",
    "level-step": "per-chunk gains butt-joined, alternating +/-0.75 dB (1.5 dB steps) -> level_step findings of "
                  "~1.5 dB at every boundary",
    "linear-crossfade-dip": "the first 500 ms of each chunk k>=1 overlap-added with LINEAR fades onto the last "
                            "500 ms of the previous chunk (500 ms lost per boundary) -> crossfade_dip of ~3 dB on "
                            "uncorrelated noise, and dropped samples",
    "drop-samples": "64 sample frames dropped at each boundary k>=1 -> dropped_samples of 64 at every boundary, "
                    "length short by 64 per boundary",
    "repeat-overlap": "each chunk k>=1 starts 5 s before its nominal start, so the 5 s overlap is sent twice -> "
                      "HIGH repeated_samples of 5.000 s at every boundary",
    "gap": "the first 50 ms of each chunk k>=1 replaced by digital zeros -> gap findings of 50 ms at every boundary",
    "blocking-send": "time.sleep(0.12) on the event loop inside send_chunk_blocking (streaming.py), once per chunk "
                     "-> loop stalls of ~120 ms attributed to that function's file:line",
    "unbounded-buffer": "ignores backpressure: renders and queues the whole track per connection at stream start "
                        "-> RSS grows with slow clients (rss_peak)",
    "leak-on-disconnect": "keeps 1 MiB (1048576 bytes) of per-connection state in a module-level list on every "
                          "disconnect -> leak finding of ~1 MiB per connect/stream/disconnect cycle",
    "slow-start": "await asyncio.sleep(2.0) before the first chunk -> time to first audio ~2 s",
    "loop-saturation": "while streaming, ~8 ms synchronous CPU turns in saturate_loop_turn (streaming.py) "
                       "every ~2 ms, below a 50 ms stall threshold -> saturation finding naming that frame, no stall",
}


def parse_injections(text: str | None) -> frozenset[str]:
    names = frozenset(x.strip() for x in (text or "").split(",") if x.strip())
    unknown = sorted(names - set(INJECTIONS))
    if unknown:
        raise ValueError(f"unknown injection '{unknown[0]}' (known: {', '.join(INJECTIONS)})")
    return names
