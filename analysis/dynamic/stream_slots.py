"""Judge run.json["checks"]["stream_slots"]: a fresh client's stream refused
by the server, while none of the check's clients is connected, is the
user-visible loss of stream slots. It is a finding of its own, so a gate
fails on it even when no ledger saw the cause (a target that caps streams
with something other than an asyncio semaphore). It carries the refusal's
text as an error site: when the permit ledger measured the cause, the
grouping stage folds this into that permit_leak finding as its symptom.
Pure."""
from __future__ import annotations

from typing import Any

from ..grouping import error_text
from ..model import Finding, Location


def refused(play: dict[str, Any] | None) -> bool:
    """The server answered a play with an error instead of audio."""
    return bool(play) and play.get("reply") not in (None, "binary")


def refusals(result: dict[str, Any]) -> list[str]:
    """The server's words for each refused fresh stream (before, after) and
    for the cycle whose play was refused, without repeats."""
    plays = [result.get("before"), *(result.get("cycles") or [])[-1:], result.get("after")]
    texts = [error_text(p.get("error")) or str(p.get("reply")) for p in plays if refused(p)]
    return list(dict.fromkeys(texts))


def analyse(result: dict[str, Any], scenario: str | None) -> tuple[list[Finding], dict[str, float]]:
    if not result or result.get("outcome") != "done":
        return [], {}
    before, after = result.get("before") or {}, result.get("after") or {}
    cycles = result.get("cycles") or []
    fresh = [p for p in (before, after) if p]
    metrics = {"stream_slots_fresh_refused": float(sum(refused(p) for p in fresh))}
    if not any(refused(p) for p in fresh):
        return [], metrics
    served = sum(1 for c in cycles if c.get("reply") == "binary")
    ev = []
    if refused(before):
        ev.append(f"before any cycle, a fresh play_normal was refused after {before.get('ms')} ms: "
                  f"{str(before.get('error'))[:200]}; the load's own cancels had taken the slots")
    else:
        ev.append(f"before the cycles, a fresh play_normal was served ({before.get('ms')} ms to its first audio)")
    if cycles:
        ends = sorted({c.get("cancel") for c in cycles if c.get("reply") == "binary"} - {None})
        ev.append(f"{served} of {len(cycles)} cancelled stream(s) were served, each ended by {', '.join(ends)}")
        if refused(cycles[-1]):
            c = cycles[-1]
            ev.append(f"cycle {len(cycles)} ({c.get('play')}) was refused: {str(c.get('error'))[:200]}")
    if refused(after):
        ev.append(f"after the cycles and a settle, with none of the check's clients connected, a fresh "
                  f"play_normal was refused after {after.get('ms')} ms: {str(after.get('error'))[:200]}")
    else:
        ev.append(f"after the cycles, a fresh play_normal was served again ({after.get('ms')} ms)")
    recovered = refused(before) and not refused(after)
    return [Finding(
        kind="stream_slots_exhausted",
        title="A fresh stream is refused once streams have been cancelled",
        severity="MEDIUM" if recovered else "HIGH", dimension="Error Handling",
        description=("With none of the check's clients connected, the server refused a new client's stream"
                     + (" before the check (it served one again later)." if recovered else
                        ": the slots that cancelled streams held did not come back.")),
        impact=("Listeners end streams by closing the tab, seeking or switching track; if each of those costs "
                "a slot, the backend ends up refusing every client until it restarts."),
        suggested_fix=("Give the stream slot back however the stream ends: release it first in the finally "
                       "(or hold it with `async with`), before any await that can raise CancelledError."),
        location=Location(scenario=scenario, stream="stream_slots"),
        evidence=ev,
        figures={"fresh_refused": metrics["stream_slots_fresh_refused"], "cycles_served": float(served),
                 "cycles": float(len(cycles))},
        key="stream_slots_exhausted",
        sites=[{"error": t} for t in refusals(result)],
    )], metrics
