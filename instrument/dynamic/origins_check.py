"""The `origins` check: how the target treats the Origin of a request, on
REST (CORS preflights, simple requests, state-changing requests) and on the
/ws handshake, for foreign, look-alike, missing and allowed Origins. Raw
observations only; analysis.dynamic.origins judges them.

A browser page on any site can make the user's browser send requests to a
backend on 127.0.0.1: CORS decides whether that page may read the answers, an
Origin check decides whether the request is served at all, and the WebSocket
handshake is not covered by CORS whatsoever."""
from __future__ import annotations

from typing import Any

import requests

from scenarios.ws_transport import WSClient, WSClosed, WSRejected

# Origins no loopback backend should trust: a foreign site, the Origin a
# sandboxed iframe or a file page sends ("null"), and look-alikes that a
# prefix or substring check would let through
FOREIGN_ORIGINS = ("http://evil.example", "null", "http://localhost.evil.example:8765",
                   "http://127.0.0.1.evil.example")
# An Origin both targets allow: Auralis allowlists its own port 8765 on both
# loopback spellings (config/origins.py), the reference mirrors that allowlist
ALLOWED_ORIGIN = "http://localhost:8765"
# REST probes: cheap reads, and one state-changing request shaped as a
# browser's "simple request" (text/plain POST: no preflight, it just runs)
READ_PATHS = ("/api/health", "/api/library/tracks?limit=1")
PREFLIGHT = (("/api/library/tracks", "GET", None), ("/api/library/scan", "POST", "content-type"))
STATE_CHANGING = ("POST", "/api/library/scan")
TIMEOUT_S = 10.0
CORS_HEADERS = ("access-control-allow-origin", "access-control-allow-credentials", "access-control-allow-methods",
                "access-control-allow-headers", "vary")


def _cors(resp: requests.Response) -> dict[str, str]:
    return {h: resp.headers[h] for h in CORS_HEADERS if h in resp.headers}


def _http(method: str, url: str, headers: dict[str, str], data: str | None = None) -> dict[str, Any]:
    try:
        r = requests.request(method, url, headers=headers, data=data, timeout=TIMEOUT_S, allow_redirects=False)
    except requests.RequestException as e:
        return {"error": f"{type(e).__name__}: {e}"}
    return {"status": r.status_code, "cors": _cors(r), "body": r.text[:200]}


def _ws(ws_url: str, origin: str | None) -> dict[str, Any]:
    """A handshake, and when it is accepted, whether the server then talks
    (its first message) or closes at once (rejection after accept)."""
    c = WSClient(ws_url, compression=False, origin=origin, timeout=TIMEOUT_S)
    try:
        c.connect()
    except WSRejected as e:
        return {"accepted": False, "http_status": e.status}
    except WSClosed as e:
        return {"accepted": False, "closed": e.code, "reason": e.reason}
    except (OSError, TimeoutError) as e:
        return {"accepted": False, "error": f"{type(e).__name__}: {e}"}
    out: dict[str, Any] = {"accepted": True}
    try:
        msg = c.recv(timeout=3.0)
        out["first_message"] = getattr(msg, "data", b"")[:120] if isinstance(getattr(msg, "data", None), str) \
            else f"<binary {len(msg.data)} bytes>"
    except WSClosed as e:
        out.update(closed_after_accept=e.code, reason=e.reason)
    except TimeoutError:
        out["first_message"] = None
    finally:
        c.close()
    return out


def origins(*, base_url: str, **_: Any) -> dict[str, Any]:
    base = base_url.rstrip("/")
    ws_url = base.replace("http://", "ws://") + "/ws"
    variants: list[tuple[str, str | None]] = [("foreign", o) for o in FOREIGN_ORIGINS]
    variants += [("missing", None), ("allowed", ALLOWED_ORIGIN)]
    probes: list[dict[str, Any]] = []
    for role, origin in variants:
        hdr = {"Origin": origin} if origin is not None else {}
        for path in READ_PATHS:
            probes.append({"surface": "rest_read", "role": role, "origin": origin, "method": "GET", "path": path,
                           **_http("GET", base + path, hdr)})
            # a Cookie makes Starlette's wildcard policy reflect the Origin
            # with credentials, as a browser's credentialed fetch would see it
            probes.append({"surface": "rest_read_credentialed", "role": role, "origin": origin, "method": "GET",
                           "path": path, **_http("GET", base + path, {**hdr, "Cookie": "earshot=1"})})
        if origin is not None:
            for path, method, req_headers in PREFLIGHT:
                h = {**hdr, "Access-Control-Request-Method": method}
                if req_headers:
                    h["Access-Control-Request-Headers"] = req_headers
                probes.append({"surface": "preflight", "role": role, "origin": origin, "method": "OPTIONS",
                               "path": path, "requested_method": method, **_http("OPTIONS", base + path, h)})
        if role == "foreign":
            # an empty directory list: harmless if it is served, and any answer
            # but a refusal (403) shows the request reached the handler. Only
            # foreign Origins: Auralis allows 2 scans a minute, and a refused
            # request does not spend them (the run's bad_files check needs one)
            m, path = STATE_CHANGING
            probes.append({"surface": "rest_state_changing", "role": role, "origin": origin, "method": m,
                           "path": path, "content_type": "text/plain",
                           **_http(m, base + path, {**hdr, "Content-Type": "text/plain"},
                                   data='{"directories": []}')})
        probes.append({"surface": "websocket", "role": role, "origin": origin, "method": "GET", "path": "/ws",
                       **_ws(ws_url, origin)})
    return {"outcome": "done", "foreign_origins": list(FOREIGN_ORIGINS), "allowed_origin": ALLOWED_ORIGIN,
            "probes": probes}
