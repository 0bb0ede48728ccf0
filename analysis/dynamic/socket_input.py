"""Judge run.json["checks"]["socket_input"]: for each bad message, did the
server crash, stay silent, drop or wedge the connection, leak a traceback,
or raise inside a handler; and does it rate-limit a burst? Pure."""
from __future__ import annotations

import re
from typing import Any

from ..model import Finding, Location

TRACEBACK = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\.py\", line \d+")
# Locations are measured (analysis/locate.py): where the target read the
# message that got no reply, or sent the reply that was wrong.


def _line(c: dict[str, Any]) -> str:
    r = c.get("reply")

    def said(a: dict[str, Any]) -> str:
        return f"{a.get('kind')}{':' + str(a.get('error_code')) if a.get('error_code') else ''} after {a.get('ms')} ms"
    got = "no reply" if r is None else said(r)
    for k in ("followup", "stream_end"):
        if c.get(k):
            got += f" -> {said(c[k])}"
    return f"{c.get('name')}: sent {c.get('sent')!s} ({c.get('sent_bytes')} bytes) -> {got}"


def analyse(result: dict[str, Any], scenario: str | None) -> list[Finding]:
    if not result or "skipped" in result or result.get("outcome") != "done":
        return []
    timeout = result.get("reply_timeout_s")
    follow = result.get("follow_timeout_s") or 4 * (timeout or 0)
    cases = result.get("cases") or []
    groups: dict[str, list[tuple[dict[str, Any], str]]] = {k: [] for k in
                                                          ("crash", "dead", "dropped", "silent", "traceback", "internal")}
    for c in cases:
        same = c.get("same_connection") or {}
        health = c.get("health") or {}
        fresh = c.get("fresh_connection") or {}
        if health.get("status") != 200 or not fresh.get("ok", False) or c.get("connect_error"):
            groups["crash"].append((c, f"{_line(c)}; then /api/health {health.get('status') or health.get('error')}, "
                                       f"fresh connection {'ok' if fresh.get('ok') else fresh.get('error') or 'no pong'}"
                                       + (f"; could not connect: {c['connect_error']}" if c.get("connect_error") else "")))
        if c.get("name") == "burst":
            continue
        closed = c.get("closed_after_send") or same.get("closed")
        if c.get("reply") is None and not closed and not c.get("connect_error"):
            groups["silent"].append((c, f"{_line(c)} within {timeout} s; connection still open"))
        elif "followup" in c and c["followup"] is None and not closed:
            groups["silent"].append((c, f"{_line(c)}, then neither a stream nor an error (followed for "
                                        f"{follow:.0f} s); connection still open"))
        elif "stream_end" in c and c["stream_end"] is None and not closed:
            groups["silent"].append((c, f"{_line(c)}, then a stream started that neither ended nor failed (followed "
                                        f"for {follow:.0f} s)"))
        if closed and not c.get("connect_error"):
            groups["dropped"].append((c, f"{_line(c)}; the server closed the connection ({closed})"))
        elif same and (not same.get("ping_ok") or not same.get("play_ok")):
            groups["dead"].append((c, f"{_line(c)}; then on the same connection: ping "
                                      f"{'answered' if same.get('ping_ok') else 'unanswered'}, play_normal -> "
                                      f"{same.get('play') or ('not tried' if same.get('play_skipped') else 'no reply')}"
                                      f" (deadline {timeout} s)"))
        texts = [t for t in c.get("texts") or [] if TRACEBACK.search(t)]
        if texts:
            groups["traceback"].append((c, f"{_line(c)}; message: {texts[0][:600]}"))
        r = c.get("reply") or {}
        if r.get("kind") == "error" and r.get("error_code") == "internal_error":
            groups["internal"].append((c, f"{_line(c)}: {r.get('excerpt')}"))

    spec = {
        "crash": ("socket_input_crash", "Bad input on the socket takes the server down", "CRITICAL",
                  "The backend stopped answering /api/health or new WebSocket connections after one bad message.",
                  "Any page (or script) on the machine can stop playback for every user with one message.",
                  "Catch and answer per message; never let a handler's exception reach the server loop."),
        "dead": ("socket_input_dead_connection", "A bad message leaves the connection unable to serve valid commands",
                 "HIGH", "After one malformed or wrongly typed message, the same connection no longer answers a valid "
                         "ping or play within the deadline, while staying open.",
                 "The player looks connected but nothing plays; only a reload recovers it.",
                 "Validate each field before use and keep the receive loop alive whatever a handler raises."),
        "dropped": ("socket_input_connection_dropped", "A bad message makes the server close the connection",
                    "MEDIUM", "The server closed the WebSocket in answer to a bad message instead of replying with an "
                              "error and carrying on.",
                    "Any stream on that connection stops; the client's reconnect logic misreads it as a network drop.",
                    "Answer bad input with a typed error message and keep the connection."),
        "silent": ("socket_input_no_reply", "A bad message is met with silence", "MEDIUM",
                   "The server neither answered nor closed the connection within the deadline.",
                   "The client cannot tell a rejected command from a slow one and waits or retries blindly.",
                   "Answer every rejected message with {type: error, error: <code>, message}."),
        "traceback": ("socket_input_traceback", "Error messages carry a Python traceback", "MEDIUM",
                      "An error sent to the client contains stack-trace text.",
                      "Leaks file paths and internals to any client; noisy in the UI.",
                      "Log the traceback server-side; send a code and a short message only."),
        "internal": ("socket_input_handler_exception", "A wrongly typed field raises inside the handler", "LOW",
                     "The message passed validation and the handler raised on it; the dispatch loop's catch-all "
                     "answered internal_error ('Command failed') instead of a field-specific validation error.",
                     "The client gets no hint what was wrong; the server logs a stack trace per message, and the "
                     "field is used unchecked until it fails.",
                     "Validate every field of play/seek payloads (type, finiteness, range) before using it, as "
                     "track_id already is, and answer with a specific code."),
    }
    findings: list[Finding] = []
    for name, items in groups.items():
        if not items:
            continue
        kind, title, sev, desc, impact, fix = spec[name]
        first = items[0][0]
        findings.append(Finding(
            kind=kind, title=title, severity=sev, dimension="Error Handling",
            description=f"{desc} Cases: {', '.join(c.get('name', '?') for c, _ in items)}.",
            impact=impact, suggested_fix=fix,
            location=Location(route=f"/ws {first.get('msg_type')}", scenario=scenario,
                              stream=f"socket_input {first.get('name')}"),
            evidence=[line for _, line in items[:8]], figures={"cases": len(items)}, key=name,
            # the same bad messages misbehaving twice (silence, then a dead connection) are one defect
            sites=[{"read": first.get("msg_type")}, {"probe": ",".join(sorted(c.get("name", "?") for c, _ in items))}],
        ))
    burst = next((c for c in cases if c.get("name") == "burst"), None)
    if burst and burst.get("accepted") is not None:
        limit = result.get("rate_limit_documented") or 10
        if not burst.get("limited") or burst.get("accepted", 0) > 2 * limit:
            findings.append(Finding(
                kind="socket_input_no_rate_limit", title="A burst of messages is not rate limited",
                severity="MEDIUM", dimension="Middleware & Config",
                description=f"{burst.get('sent_count')} messages sent back to back within {burst.get('send_s')} s: "
                            f"{burst.get('accepted')} accepted, {burst.get('limited')} refused with "
                            f"rate_limit_exceeded (documented limit {limit}/s).",
                impact="One client can flood the server with commands (each play starts work) and starve others.",
                suggested_fix="Enforce the per-connection message rate before dispatch, answering "
                              "rate_limit_exceeded.",
                location=Location(route="/ws resume (burst)", scenario=scenario, stream="socket_input burst"),
                sites=[{"read": "resume"}],
                evidence=[f"burst of {burst.get('sent_count')} 'resume': accepted {burst.get('accepted')}, "
                          f"limited {burst.get('limited')}; first error {burst.get('limit_message')}"],
                figures={"accepted": burst.get("accepted", 0), "limited": burst.get("limited", 0)},
                key="rate_limit",
            ))
    return findings
