"""Judge run.json["checks"]["path_traversal"]: a canary outside the library
served by a route is CRITICAL (the audit's own example); a traversal form
that makes a route fail with a 5xx is an unhandled input. Pure."""
from __future__ import annotations

from typing import Any

from ..model import Finding, Location


def analyse(result: dict[str, Any], scenario: str | None) -> tuple[list[Finding], dict[str, float]]:
    if not result or result.get("outcome") != "done":
        return [], {}
    served = result.get("served") or []
    errors = result.get("server_errors") or []
    metrics = {"path_traversal_served": float(len(served)), "path_traversal_probes": float(result.get("probes") or 0)}
    findings: list[Finding] = []
    by_route: dict[str, list[dict[str, Any]]] = {}
    for s in served:
        by_route.setdefault(s["route"], []).append(s)
    for route, hits in sorted(by_route.items()):
        forms = sorted({h["form"] for h in hits})
        params = sorted({h["param"] for h in hits})
        findings.append(Finding(
            kind="path_traversal", title=f"{route} serves a file outside the library",
            severity="CRITICAL", dimension="Route Handlers",
            description=(f"A canary file placed outside the library (in the run directory, outside the target's "
                         f"HOME) was served by {route} through its '{', '.join(params)}' parameter, with "
                         f"{len(forms)} traversal form(s): {', '.join(forms)}."),
            impact="Any client of the API (any page the user opens, when the origin checks let it through) can "
                   "read any file the backend's user can read: keys, browser profiles, documents.",
            suggested_fix="Resolve the requested path (following symlinks) and refuse anything outside the library "
                          "root; better, serve files by database id only, never by a client-supplied path.",
            location=Location(scenario=scenario, route=route),
            evidence=[f"GET {h['request'][:160]} -> HTTP {h['status']}: the canary's token in the answer ({h['form']})"
                      if h["in"] != "message" else f"{route} {h['request']}: the canary's token in a reply"
                      for h in hits[:6]] + [f"canary: {result.get('canary')} (run directory)"],
            figures={"forms_served": float(len(forms)), "requests_served": float(len(hits))},
            key=f"path_traversal:{route}"))
    errs: dict[str, list[dict[str, Any]]] = {}
    for e in errors:
        errs.setdefault(e["route"], []).append(e)
    for route, hits in sorted(errs.items()):
        forms = sorted({h["form"] for h in hits})
        findings.append(Finding(
            kind="path_input_server_error", title=f"{route} answers 5xx to a crafted path",
            severity="HIGH", dimension="Error Handling",
            description=(f"{route} failed with a server error on {len(hits)} path-like input(s) ({', '.join(forms)}) "
                         "instead of refusing them with a 4xx."),
            impact="An unhandled exception on client input: a 500 for a bad path, a traceback in the log, and a "
                   "handler whose validation runs after it touched the filesystem.",
            suggested_fix="Validate and confine the path before using it; answer 400/404 for what is refused.",
            location=Location(scenario=scenario, route=route),
            evidence=[f"GET {h['request'][:160]} -> HTTP {h['status']}: {h.get('excerpt', '')[:120]}" for h in hits[:4]],
            figures={"requests": float(len(hits))}, key=f"path_input_5xx:{route}"))
    return findings, metrics
