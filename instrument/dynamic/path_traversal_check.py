"""path_traversal: can a route be made to serve a file outside the library?

A canary file with a random token is written in the run directory, outside
the fresh HOME (so outside its library); symlinks to it are planted inside
the library. Every parameter that names a path or file, and every parameter
of a route that serves files (from the OpenAPI spec), is sent traversal
forms that reach the canary: ../, URL-encoded and double-encoded, with
backslashes, the canary's absolute path, the planted symlinks, a NUL byte
before an audio suffix, and a long name. So are the /ws messages that name
tracks. The token in any answer means the canary was served. Only the
canary is ever named: no real file outside the run directory is asked for.
The judge is analysis.dynamic.path_traversal."""
from __future__ import annotations

import os
import re
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from . import rest_writes as rw
from .ws_probe import try_open

# parameter names that name a file or path, and routes that serve files
PATH_PARAM = re.compile(r"path|file|dir|folder|name|src|uri|url|image|cover|artwork", re.I)
FILE_ROUTE = re.compile(r"file|artwork|cover|image|stream|audio|download|waveform|lyrics|media|static", re.I)
LONG_NAME = 5000
TIMEOUT_S = 8.0
WS_MESSAGES = ("play_normal", "play_enhanced", "seek")


def payloads(canary: Path, music: Path, links: list[Path]) -> list[tuple[str, str]]:
    """(form, the value as it goes into the URL, already percent-encoded)."""
    rel = os.path.relpath(canary, music)
    deep = "../" * 12 + str(canary).lstrip("/")  # past any library root, back down to the canary
    out = [
        ("dotdot", quote(rel, safe="/")),
        ("dotdot_deep", quote(deep, safe="/")),
        ("encoded", rel.replace(".", "%2E").replace("/", "%2F")),
        ("double_encoded", rel.replace(".", "%252E").replace("/", "%252F")),
        ("backslash", quote(rel.replace("/", "\\"), safe="")),
        ("absolute", quote(str(canary), safe="/")),
        ("absolute_encoded", quote(str(canary), safe="")),
        ("nul_suffix", quote(rel, safe="/") + "%00.wav"),
        ("long_name", "a" * LONG_NAME),
    ]
    for ln in links:
        out.append((f"symlink:{ln.name}", quote(os.path.relpath(ln, music), safe="/")))
        out.append((f"symlink_abs:{ln.name}", quote(str(ln), safe="/")))
    return out


def targets(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """GET operations and the parameters to attack: path/file-named ones,
    and every parameter of a file-serving route."""
    out = []
    for path, item in sorted((spec.get("paths") or {}).items()):
        op = (item or {}).get("get")
        if not isinstance(op, dict) or not path.startswith("/api"):
            continue
        params = rw._params(op, item, spec)
        for p in params:
            if p.get("in") not in ("path", "query"):
                continue
            if PATH_PARAM.search(p.get("name", "")) or FILE_ROUTE.search(path):
                out.append({"path": path, "param": p["name"], "in": p["in"], "route": rw.route("GET", path),
                            "others": [q for q in params if q is not p and q.get("in") in ("path", "query")
                                       and q.get("required")]})
    return out


def _url(base_url: str, t: dict[str, Any], value: str, ids: dict[str, Any], spec: dict[str, Any]) -> str:
    path = t["path"]
    if t["in"] == "path":
        # a path parameter is one segment: its slashes must stay encoded
        path = path.replace("{" + t["param"] + "}", value.replace("/", "%2F"))
    path = rw.fill(path, ids)
    query = []
    if t["in"] == "query":
        query.append(f"{quote(t['param'])}={value}")
    for q in t["others"]:
        if q.get("in") == "query":
            query.append(f"{quote(q['name'])}={quote(str(rw.example(q.get('schema') or {}, spec, 'x', ids, q['name'])))}")
    return base_url + path + ("?" + "&".join(query) if query else "")


def _get(url: str, retries: int = 4) -> requests.Response | str:
    """GET the URL exactly as built (no re-quoting, no dot-segment removal);
    a 429 (the target's rate limit) is waited out and asked again."""
    s = requests.Session()
    for attempt in range(retries + 1):
        req = requests.Request("GET", url).prepare()
        req.url = url
        try:
            r = s.send(req, timeout=TIMEOUT_S, allow_redirects=False, stream=True)
        except requests.RequestException as e:
            return f"{type(e).__name__}"
        if r.status_code != 429 or attempt == retries:
            return r
        r.close()
        try:
            wait = min(float(r.headers.get("retry-after") or 1.0), 5.0)
        except ValueError:
            wait = 1.0
        time.sleep(max(wait, 0.5))
    return "unreachable"


def path_traversal(*, base_url: str, run_dir: Path, tracks: list[dict[str, Any]], compression: bool, home: Path,
                   **_: Any) -> dict[str, Any]:
    run_dir, home = Path(run_dir), Path(home)
    music = home / "Music"
    token = f"earshot-canary-{secrets.token_hex(12)}"
    canary_dir = run_dir / "checks" / "path_traversal"
    canary_dir.mkdir(parents=True, exist_ok=True)
    canary = canary_dir / "canary.txt"
    canary.write_text(token + "\n")
    links = []
    for name in ("es-canary-link.txt", "es-canary-link.wav"):
        ln = music / name
        try:
            ln.symlink_to(canary)
            links.append(ln)
        except OSError:
            pass
    res: dict[str, Any] = {"outcome": "done", "canary": str(canary.relative_to(run_dir)),
                           "symlinks": [str(ln.relative_to(home)) for ln in links], "probes": 0, "served": [],
                           "server_errors": [], "targets": []}
    try:
        spec = rw.spec_of(base_url)
        res["spec"] = spec is not None
        ids = {"track": next((t["track_id"] for t in tracks if t.get("track_id") is not None), 1)}
        forms = payloads(canary, music, links)
        for t in targets(spec or {}):
            statuses: dict[str, int] = {}
            for form, value in forms:
                url = _url(base_url, t, value, ids, spec or {})
                r = _get(url)
                res["probes"] += 1
                if isinstance(r, str):
                    statuses[r] = statuses.get(r, 0) + 1
                    continue
                body = r.raw.read(1 << 20, decode_content=True) or b""
                r.close()
                statuses[str(r.status_code)] = statuses.get(str(r.status_code), 0) + 1
                rec = {"route": t["route"], "param": t["param"], "in": t["in"], "form": form,
                       "request": url.replace(base_url, ""), "status": r.status_code}
                if token.encode() in body:
                    res["served"].append(rec)
                elif r.status_code >= 500:
                    res["server_errors"].append({**rec, "excerpt": body[:200].decode("utf-8", "replace")})
            res["targets"].append({"route": t["route"], "param": t["param"], "in": t["in"], "statuses": statuses})
        res["ws"] = _ws(base_url, compression, canary, music, token, ids["track"])
        res["served"] += res["ws"].pop("served")
    finally:
        for ln in links:  # the library is the target's again
            ln.unlink(missing_ok=True)
    return res


def _ws(base_url: str, compression: bool, canary: Path, music: Path, token: str, track_id: Any) -> dict[str, Any]:
    """/ws messages that name a track, given a path where the id goes, and
    file-ish fields beside a real id."""
    rel = os.path.relpath(canary, music)
    values = [rel, str(canary), rel + "\x00.wav"]
    out: dict[str, Any] = {"sent": 0, "served": [], "closed": None}
    p, why = try_open(base_url, compression=compression)
    if p is None:
        return {**out, "error": why}
    try:
        for kind in WS_MESSAGES:
            for v in values:
                forms = [{"track_id": v}, {"track_id": v, "position": 0}]
                if kind == "play_normal":  # file-ish fields beside a real id: this one starts a real stream
                    forms.append({"track_id": track_id, "filepath": v, "path": v, "file": v})
                for data in forms:
                    if p.closed:
                        break
                    p.send(kind, data)
                    out["sent"] += 1
                    got = p.drain(0.12)  # also keeps under the 10 messages/s rate limit
                    if "filepath" in data:
                        p.send("stop")
                        got += p.drain(0.12)
                    for r in got:
                        text = (r.raw or "") + (str(r.msg) if r.msg is not None else "")
                        if token in text:
                            out["served"].append({"route": f"/ws {kind}", "param": next(iter(data)),
                                                  "in": "message", "form": "ws", "request": str(data)[:200],
                                                  "status": None})
        p.send("stop")
        p.drain(0.3)
    except OSError as e:
        out["error"] = f"{type(e).__name__}: {e}"
    finally:
        out["closed"] = p.closed
        p.close()
    return out
