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

# A transport whose writer honours pause_writing holds about its high-water
# mark plus the frame being written (uvicorn/uvloop: ~0.1-0.2 MiB measured);
# one whose writer ignores it keeps growing for as long as nobody reads.
TRANSPORT_BOUND_MIB = 1.0

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


def cycle_queued(cycle: dict[str, Any], readers: int) -> float | None:
    """MiB per stalled reader that the agent saw queued for the WebSocket
    clients (transport write buffers + the server's send queues) while they
    were held, over what was queued before. None without the agent's readings."""
    hold = cycle.get("held_hold")
    if not hold or not hold.get("readings") or readers < 1:
        return None
    return (hold.get("held_mib", 0.0) - (cycle.get("held_base") or {}).get("held_mib", 0.0)) / readers


def queued_per_reader(result: dict[str, Any]) -> float | None:
    readers = int(result.get("readers") or 0)
    per = [cycle_queued(c, readers) for c in result.get("cycles") or []]
    if not per or any(v is None for v in per):
        return None
    return min(per)


def cycle_rss_rise(cycle: dict[str, Any], readers: int) -> float | None:
    """MiB per reader RSS rose while they were held, released or not (a heap
    the allocator keeps after the queued bytes are freed still counts when
    the agent saw the bytes queued)."""
    base, hold = cycle.get("rss_base_mib") or [], cycle.get("rss_hold_mib") or []
    if not base or not hold or readers < 1:
        return None
    return (max(hold) - statistics.median(base)) / readers


def cycle_transport_max(cycle: dict[str, Any]) -> float | None:
    """The largest single WebSocket transport write buffer while the
    readers were held (MiB); None without the agent's readings."""
    hold = cycle.get("held_hold")
    if not hold or not hold.get("readings"):
        return None
    return max(hold.get("per_connection_mib") or [0.0])


def transport_overrun(result: dict[str, Any]) -> float | None:
    """The smallest, over cycles, of the largest transport buffer: over
    TRANSPORT_BOUND_MIB in every cycle means the server writes into full
    sockets without waiting (pause_writing not honoured)."""
    per = [cycle_transport_max(c) for c in result.get("cycles") or []]
    if not per or any(v is None for v in per):
        return None
    return min(per)


def _growth(cycle: dict[str, Any]) -> float | None:
    """MiB/s the largest transport buffer grew over the hold (least squares)."""
    pts = [(p[0], p[2]) for p in cycle.get("held_series") or [] if len(p) >= 3]
    if len(pts) < 3:
        return None
    mt = sum(t for t, _ in pts) / len(pts)
    mv = sum(v for _, v in pts) / len(pts)
    den = sum((t - mt) ** 2 for t, _ in pts)
    return sum((t - mt) * (v - mv) for t, v in pts) / den if den else None


def _where(cycle: dict[str, Any]) -> tuple[str | None, int | None, str | None, str]:
    """(file, line, function, words) of where the held bytes sat."""
    hold = cycle.get("held_hold") or {}
    sites = hold.get("queue_sites") or []
    if sites and hold.get("queue_mib", 0.0) >= hold.get("transport_mib", 0.0):
        site = str(sites[0].get("site") or "")
        file, _, line = site.rpartition(":")
        return (file or site), (int(line) if line.isdigit() else None), None, f"a send queue created at {site}"
    proto = hold.get("transport_protocol")
    return proto, None, "send", (f"the WebSocket transports' write buffers (protocol {proto})" if proto
                                 else "the WebSocket transports' write buffers")


def track_mib(result: dict[str, Any]) -> float | None:
    t = result.get("track") or {}
    if not t.get("duration_s") or not t.get("sample_rate"):
        return None
    return float(t["duration_s"]) * int(t["sample_rate"]) * int(t.get("channels") or 2) * 4 / (1024 * 1024)


def analyse(result: dict[str, Any], scenario: str | None) -> tuple[list[Finding], dict[str, float]]:
    if not result or "skipped" in result or result.get("outcome") != "done":
        return [], {}
    size = track_mib(result)
    if size is None:
        return [], {}
    queued = queued_per_reader(result)
    if queued is not None:
        return _judge_queued(result, scenario, queued, size)
    held = held_per_reader(result)
    if held is None:
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


def _judge_queued(result: dict[str, Any], scenario: str | None, queued: float,
                  size: float) -> tuple[list[Finding], dict[str, float]]:
    """Primary evidence: the bytes the agent saw queued for the stalled
    readers. RSS corroborates: its rise while they were held counts whether
    or not it fell after they closed."""
    readers = int(result.get("readers") or 0)
    cycles = result.get("cycles") or []
    rises = [cycle_rss_rise(c, readers) for c in cycles]
    rise = min((r for r in rises if r is not None), default=None)
    released = held_per_reader(result)
    overrun = transport_overrun(result) or 0.0
    metrics = {"backpressure_held_mib_per_reader": round(max(queued, 0.0), 1),
               "backpressure_queued_mib_per_reader": round(max(queued, 0.0), 1),
               "backpressure_transport_max_mib": round(overrun, 2)}
    if rise is not None:
        metrics["backpressure_rss_rise_mib_per_reader"] = round(max(rise, 0.0), 1)
    limit = max(FLOOR_MIB, TRACK_SHARE * size)
    if queued < limit and overrun < TRANSPORT_BOUND_MIB:
        return [], metrics
    track = result.get("track") or {}
    worst = max(cycles, key=lambda c: (c.get("held_hold") or {}).get("held_mib", 0.0))
    file, line, fn, words = _where(worst)
    kept = rise is not None and (released is None or released < 0.5 * rise)
    stalled = (cycles[-1].get("stalled") or []) if cycles else []
    evidence = []
    for k, c in enumerate(cycles):
        h, b = c.get("held_hold") or {}, c.get("held_base") or {}
        evidence.append(
            f"cycle {k + 1}: queued for the WebSocket clients {h.get('held_mib', 0):.1f} MiB while held "
            f"(transport write buffers {h.get('transport_mib', 0):.1f} MiB, send queues {h.get('queue_mib', 0):.1f} MiB;"
            f" before: {b.get('held_mib', 0):.1f} MiB): {cycle_queued(c, readers):.1f} MiB per client")
        if c.get("rss_base_mib") and c.get("rss_hold_mib") and c.get("rss_released_mib"):
            evidence.append(
                f"cycle {k + 1}: RSS baseline {statistics.median(c['rss_base_mib']):.1f} MiB, highest while held "
                f"{max(c['rss_hold_mib']):.1f} MiB, after the clients closed "
                f"{statistics.median(c['rss_released_mib']):.1f} MiB")
        for site in (c.get("held_hold") or {}).get("queue_sites") or []:
            evidence.append(f"cycle {k + 1}: send queue created at {site.get('site')}: {site.get('items')} items, "
                            f"{site.get('bytes', 0) / (1024 * 1024):.1f} MiB")
    evidence.append(f"queued per stalled client (the smaller cycle): {queued:.1f} MiB; the track as float32 PCM: "
                    f"{size:.1f} MiB; limit: max({FLOOR_MIB:.0f} MiB, {TRACK_SHARE:g} x track)")
    growth = [g for g in (_growth(c) for c in cycles) if g is not None]
    if overrun >= TRANSPORT_BOUND_MIB:
        evidence.append(
            f"the largest WebSocket transport write buffer reached {overrun:.2f} MiB in every cycle (a writer that "
            f"waits on a paused transport holds about its high-water mark, under {TRANSPORT_BOUND_MIB:g} MiB)"
            + (f", growing {min(growth):.2f}-{max(growth):.2f} MiB/s while nobody read: it grows until the track "
               "has been sent into the buffer" if growth else ""))
    if kept:
        evidence.append("RSS did not fall back after the clients closed: the allocator keeps the heap the queued "
                        "bytes used, so an RSS-only check would see no release")
    if not result.get("quiet", True):
        evidence.append(f"the target never went quiet before the check (CPU {result.get('quiet_cpu_percent') or 0:.0f}%)")
    evidence += [f"client {i}: received {s.get('binary_bytes', 0) / 1024:.0f} KiB before it stopped reading"
                 for i, s in enumerate(stalled)]
    if queued >= limit:
        what = f"the server queued {queued:.0f} MiB per client for them ({queued / size:.1f}x the track), in {words}"
    else:
        file, line, fn = worst.get("held_hold", {}).get("transport_protocol"), None, "send"
        what = (f"the server kept writing into their full sockets: a WebSocket transport's write buffer reached "
                f"{overrun:.1f} MiB (protocol {file})"
                + (f" and grew {max(growth):.2f} MiB/s" if growth else ""))
    return [Finding(
        kind="no_backpressure", title="Server buffers the track for clients that stopped reading",
        severity="HIGH", dimension="WebSocket Streaming",
        description=(f"{readers} clients played '{track.get('name')}' ({track.get('duration_s') or 0:.0f} s, "
                     f"{size:.0f} MiB as float32 PCM), read its first frame and stopped reading; {what}, so it kept "
                     "producing for sockets nobody read"
                     + (f"; its RSS rose {rise:.0f} MiB per client" if rise is not None and rise > 0 else "")
                     + (" and never fell after they closed." if kept else ".")),
        impact="Memory grows with every slow or stalled listener (a paused tab, a bad network) until the server "
               "is killed; the audio it renders ahead is wasted when the client seeks or leaves.",
        suggested_fix="Bound what is rendered ahead per connection and await the socket's send (drain) before "
                      "producing more, so a full socket stops the producer (with uvicorn, a version whose "
                      "WebSocket send waits on a paused transport).",
        location=Location(scenario=scenario, file=file, line_start=line, line_end=line, function=fn),
        evidence=evidence,
        figures={"queued_mib_per_reader": queued, "held_mib_per_reader": queued, "track_mib": size,
                 "transport_max_mib": overrun, **({"transport_growth_mib_per_s": max(growth)} if growth else {}),
                 "readers": float(readers), **({"rss_rise_mib_per_reader": rise} if rise is not None else {})},
        key="no-backpressure",
    )], metrics
