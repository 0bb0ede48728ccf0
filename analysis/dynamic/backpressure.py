"""Judge run.json["checks"]["backpressure"]: memory the target held per
client that stopped reading, against the size of the track it was playing.
Pure."""
from __future__ import annotations

import statistics
from typing import Any

from ..model import Finding, Location

# A bounded server holds a chunk or two and a short send queue per reader (a
# 15 s stereo float32 chunk is 5 MiB); one without backpressure holds the rest
# of the track (or several copies of it). Both limits must be passed.
FLOOR_MIB = 20.0
TRACK_SHARE = 0.5

FILES = {
    "reference": ("instrument/reference/streaming.py", "run_stream"),
}


def cycle_held(cycle: dict[str, Any], readers: int) -> float | None:
    """MiB per stalled reader in one cycle: what the hold added over the
    baseline AND gave back when the readers closed (the smaller of the two),
    so memory moving on its own is not counted."""
    base, hold, rel = (cycle.get(k) or [] for k in ("rss_base_mib", "rss_hold_mib", "rss_released_mib"))
    if not base or not hold or not rel or readers < 1:
        return None
    top = max(hold)
    return min(top - statistics.median(base), top - statistics.median(rel)) / readers


def held_per_reader(result: dict[str, Any]) -> float | None:
    """The smallest per-cycle figure: a real cost shows in every cycle."""
    readers = int(result.get("readers") or 0)
    per = [cycle_held(c, readers) for c in result.get("cycles") or []]
    if not per or any(v is None for v in per):
        return None
    return min(per)


def track_mib(result: dict[str, Any]) -> float | None:
    t = result.get("track") or {}
    if not t.get("duration_s") or not t.get("sample_rate"):
        return None
    return float(t["duration_s"]) * int(t["sample_rate"]) * int(t.get("channels") or 2) * 4 / (1024 * 1024)


def analyse(result: dict[str, Any], scenario: str | None) -> tuple[list[Finding], dict[str, float]]:
    if not result or "skipped" in result or result.get("outcome") != "done":
        return [], {}
    held = held_per_reader(result)
    size = track_mib(result)
    if held is None or size is None:
        return [], {}
    # memory that fell while the readers were held (the target's own drift) is not a negative cost
    metrics = {"backpressure_held_mib_per_reader": round(max(held, 0.0), 1)}
    if held < max(FLOOR_MIB, TRACK_SHARE * size):
        return [], metrics
    track = result.get("track") or {}
    cycles = result.get("cycles") or []
    stalled = (cycles[-1].get("stalled") or []) if cycles else []
    readers = int(result.get("readers") or 0)
    file, fn = FILES.get(result.get("target_kind") or "", (None, None))
    return [Finding(
        kind="no_backpressure", title="Server buffers the track for clients that stopped reading",
        severity="HIGH", dimension="WebSocket Streaming",
        description=(f"{result.get('readers')} clients played '{track.get('name')}' ({track.get('duration_s'):.0f} s, "
                     f"{size:.0f} MiB as float32 PCM), read its first frame and stopped reading; the server's "
                     f"memory rose {held:.0f} MiB per client while they were held ({held / size:.1f}x the track), "
                     "so it kept producing for sockets nobody read."),
        impact="Memory grows with every slow or stalled listener (a paused tab, a bad network) until the server "
               "is killed; the audio it renders ahead is wasted when the client seeks or leaves.",
        suggested_fix="Bound what is rendered ahead per connection and await the socket's send (drain) before "
                      "producing more, so a full socket stops the producer.",
        location=Location(scenario=scenario, file=file, function=fn),
        evidence=[f"cycle {k + 1}: RSS baseline {statistics.median(c['rss_base_mib']):.1f} MiB, highest while "
                  f"held {max(c['rss_hold_mib']):.1f} MiB, after the clients closed "
                  f"{statistics.median(c['rss_released_mib']):.1f} MiB: {cycle_held(c, readers):.1f} MiB per client"
                  for k, c in enumerate(cycles)]
                 + [f"held per stalled client (the smaller cycle): {held:.1f} MiB; the track as float32 PCM: "
                    f"{size:.1f} MiB; limit: max({FLOOR_MIB:.0f} MiB, {TRACK_SHARE:g} x track)"]
                 + ([] if result.get("quiet", True) else
                    [f"the target never went quiet before the check (CPU {result.get('quiet_cpu_percent') or 0:.0f}%)"
                     ": its own work may move these figures"])
                 + [f"client {i}: received {s.get('binary_bytes', 0) / 1024:.0f} KiB before it stopped reading"
                    for i, s in enumerate(stalled)],
        figures={"held_mib_per_reader": held, "track_mib": size, "readers": float(result.get("readers") or 0)},
        key="no-backpressure",
    )], metrics
