"""Findings from the `origins` check (run.json["checks"]["origins"]): foreign
Origins that CORS lets read, that the /ws handshake accepts, or that a
state-changing REST route serves. Pure: raw observations in, Findings out."""
from __future__ import annotations

from typing import Any

from ..model import Finding, Location


def _allows(p: dict[str, Any]) -> bool:
    """CORS lets the page of this Origin read the answer."""
    acao = (p.get("cors") or {}).get("access-control-allow-origin")
    return acao is not None and (acao == "*" or acao == p.get("origin"))


def _credentials(p: dict[str, Any]) -> bool:
    return str((p.get("cors") or {}).get("access-control-allow-credentials", "")).lower() == "true"


def _line(p: dict[str, Any]) -> str:
    hdr = ", ".join(f"{k}: {v}" for k, v in (p.get("cors") or {}).items() if k.startswith("access-control-allow-o")
                    or k.endswith("credentials"))
    what = p.get("requested_method")
    return (f"{p['method']} {p['path']} Origin: {p['origin']}" + (f" (preflight for {what})" if what else "")
            + (" with a Cookie" if p["surface"] == "rest_read_credentialed" else "")
            + f" -> HTTP {p.get('status')}" + (f"; {hdr}" if hdr else ""))


def analyse(result: dict[str, Any], scenario: str | None) -> list[Finding]:
    if not result or result.get("outcome") != "done":
        return []
    probes = result.get("probes") or []
    foreign = [p for p in probes if p.get("role") == "foreign"]
    findings: list[Finding] = []

    cors_open = [p for p in foreign if p["surface"] in ("rest_read", "rest_read_credentialed", "preflight")
                 and _allows(p)]
    with_creds = [p for p in cors_open if _credentials(p)]
    if with_creds:
        origins = sorted({p["origin"] for p in with_creds})
        findings.append(Finding(
            kind="cors_wildcard_credentials",
            title="CORS allows any Origin together with credentials",
            severity="HIGH", dimension="Middleware & Config",
            description=f"Foreign Origins ({', '.join(origins)}) are answered with Access-Control-Allow-Origin "
                        "matching them (or *) and Access-Control-Allow-Credentials: true: a wildcard policy "
                        "reflected with credentials.",
            impact="Any web page the user opens can read this backend's API (library, settings) with the "
                   "user's cookies, and preflights let it send state-changing requests too.",
            suggested_fix="List the allowed Origins explicitly (the app's own loopback origins) and never combine "
                          "allow_origins=['*'] with allow_credentials=True.",
            location=Location(scenario=scenario, function="CORS"), evidence=[_line(p) for p in with_creds[:4]],
            figures={"foreign_origins_allowed": float(len(origins))}, key="cors_credentials"))
    elif cors_open:
        origins = sorted({p["origin"] for p in cors_open})
        findings.append(Finding(
            kind="cors_foreign_origin_allowed", title="CORS lets foreign Origins read the API",
            severity="MEDIUM", dimension="Middleware & Config",
            description=f"Foreign Origins ({', '.join(origins)}) are answered with an Access-Control-Allow-Origin "
                        "that admits them.",
            impact="Any web page the user opens can read this backend's answers.",
            suggested_fix="Allow only the app's own loopback Origins.",
            location=Location(scenario=scenario, function="CORS"), evidence=[_line(p) for p in cors_open[:4]],
            figures={"foreign_origins_allowed": float(len(origins))}, key="cors_foreign"))

    rest_refused = {p["origin"] for p in foreign if p["surface"] == "rest_state_changing" and p.get("status") == 403}
    ws_open = [p for p in foreign if p["surface"] == "websocket" and p.get("accepted")]
    if ws_open:
        origins = sorted({p["origin"] for p in ws_open})
        both = sorted(set(origins) & rest_refused)
        findings.append(Finding(
            kind="ws_foreign_origin_accepted", title="/ws accepts WebSocket handshakes from foreign Origins",
            severity="HIGH", dimension="Middleware & Config",
            description=f"The /ws handshake was accepted (101) for {', '.join(origins)}."
                        + (f" The REST API refuses the same Origins (403) for state-changing requests "
                           f"({', '.join(both)}): the socket lacks the check the REST side has." if both else ""),
            impact="Cross-site WebSocket hijacking: any page the user opens can drive playback, read player "
                   "state and stream audio through the user's backend. CORS does not cover WebSockets.",
            suggested_fix="Check the Origin header in the /ws handshake against the same allowlist as CORS, "
                          "and close with 1008 before accept() when it is not in it.",
            location=Location(scenario=scenario, route="/ws (WebSocket handshake)"),
            evidence=[f"GET /ws Upgrade, Origin: {p['origin']} -> accepted"
                      + (f", first message {p.get('first_message')!r}" if p.get("first_message") else "")
                      for p in ws_open[:4]],
            figures={"foreign_origins_accepted": float(len(origins))}, key="ws_origin"))

    rest_open = [p for p in foreign if p["surface"] == "rest_state_changing" and p.get("status") is not None
                 and p["status"] != 403]
    if rest_open:
        origins = sorted({p["origin"] for p in rest_open})
        ws_refused = sorted({p["origin"] for p in foreign if p["surface"] == "websocket" and not p.get("accepted")}
                            & set(origins))
        findings.append(Finding(
            kind="rest_foreign_origin_served",
            title="State-changing REST requests from foreign Origins reach their handlers",
            severity="MEDIUM", dimension="Middleware & Config",
            description=f"A text/plain POST (a browser 'simple request', sent without a CORS preflight) from "
                        f"{', '.join(origins)} was not refused."
                        + (f" The /ws handshake refuses the same Origins ({', '.join(ws_refused)}): the REST side "
                           "lacks the check the socket has." if ws_refused else ""),
            impact="Cross-site request forgery: any page the user opens can trigger scans and other state changes.",
            suggested_fix="Refuse state-changing methods whose Origin is not in the allowlist (403) before any "
                          "handler runs.",
            location=Location(scenario=scenario, route=f"{rest_open[0]['method']} {rest_open[0]['path']}"),
            evidence=[f"{p['method']} {p['path']} Content-Type: text/plain, Origin: {p['origin']} -> HTTP "
                      f"{p['status']} {str(p.get('body', ''))[:120]!r}" for p in rest_open[:4]],
            figures={"foreign_origins_served": float(len(origins))}, key="rest_origin"))
    return findings
