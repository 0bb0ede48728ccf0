"""Judge run.json["checks"]["isolation"]: did client A's play_enhanced change
what client B (or a new client C) gets, and did B receive the
mastering_recommendation generated for A's track? Pure."""
from __future__ import annotations

import json
from typing import Any

from ..model import Finding, Location

# Locations are measured, not tabled: each finding names the WebSocket message
# it is about, and analysis/locate.py names the code the target ran to send it.


def _same(x: Any, y: Any) -> bool:
    if isinstance(x, (int, float)) and isinstance(y, (int, float)):
        return abs(float(x) - float(y)) < 1e-6
    return x == y


def analyse(result: dict[str, Any], scenario: str | None) -> list[Finding]:
    if not result or "skipped" in result or result.get("outcome") != "done":
        return []
    findings: list[Finding] = []
    before, after = result.get("b_before") or {}, result.get("b_after") or {}
    asked = result.get("a_request") or {}
    leaked = []
    if before.get("reply") == after.get("reply") == "audio_stream_start":
        for k in ("preset", "intensity"):
            if not _same(before.get(k), after.get(k)) and _same(after.get(k), asked.get(k)):
                leaked.append(k)
    hello_b, hello_c = result.get("b_hello") or {}, result.get("c_hello") or {}
    hello_leaked = [k for k in ("preset", "intensity")
                    if hello_b and hello_c and not _same(hello_b.get(k), hello_c.get(k))
                    and _same(hello_c.get(k), asked.get(k))]
    if leaked or hello_leaked:
        ev = [f"client A sent play_enhanced track {(result.get('track_a') or {}).get('id')} with "
              f"{json.dumps(asked)}"]
        if leaked:
            ev.append(f"client B's play_enhanced (no preset) before: preset={before.get('preset')!r} "
                      f"intensity={before.get('intensity')!r}; after A's play: preset={after.get('preset')!r} "
                      f"intensity={after.get('intensity')!r} (audio_stream_start)")
        if hello_leaked:
            ev.append(f"a new client C is told on connect: {json.dumps(hello_c)} (B was told {json.dumps(hello_b)})")
        findings.append(Finding(
            kind="isolation_shared_settings", title="One client's play_enhanced preset becomes every client's default",
            severity="MEDIUM", dimension="WebSocket Streaming",
            description="A preset/intensity sent by one client in play_enhanced is written into the process-wide "
                        "enhancement settings, so other clients' streams and newly connecting clients get it: "
                        + ", ".join(sorted(set(leaked) | set(hello_leaked))) + " leaked.",
            impact="Two listeners (tabs, devices) change each other's mastering; a listener who never chose a preset "
                   "hears another's, and the enhancement panel shows a setting the user did not make.",
            suggested_fix="Keep a stream's preset/intensity per connection (as active_stream_settings already does "
                          "for seek); change the global default only through the settings endpoint.",
            location=Location(scenario=scenario, stream="isolation", route="/ws play_enhanced"),
            evidence=ev, figures={"fields_leaked": len(set(leaked) | set(hello_leaked))}, key="shared_settings",
            # the leaked setting reaches B in its audio_stream_start: the code that sends it read the shared default
            sites=[{"message": "audio_stream_start"}],
        ))
    track_a = (result.get("track_a") or {}).get("id")
    foreign = [r for r in result.get("b_recommendations") or [] if track_a is not None and r.get("track_id") == track_a]
    if foreign:
        findings.append(Finding(
            kind="isolation_broadcast", title="A mastering_recommendation for one client's track is sent to every client",
            severity="LOW", dimension="WebSocket Streaming",
            description=f"Client B received {len(foreign)} mastering_recommendation message(s) for track {track_a}, "
                        "which only client A played.",
            impact="Every connected client's recommendation panel shows another listener's track; each play costs a "
                   "send to every connection, inside their audio streams.",
            suggested_fix="Send the recommendation to the connection that asked for the play (send_personal), "
                          "not broadcast().",
            location=Location(scenario=scenario, stream="isolation", route="/ws mastering_recommendation"),
            sites=[{"message": "mastering_recommendation"}],
            evidence=[f"client A played track {track_a}; client B (playing track "
                      f"{(result.get('track_b') or {}).get('id')}) received: {foreign[0].get('excerpt')}"],
            figures={"foreign_messages": len(foreign)}, key="recommendation_broadcast",
        ))
    return findings
