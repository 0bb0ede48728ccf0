"""Writes through the target's own REST API, as its OpenAPI spec declares
them, each carrying a marker string that is looked for afterwards in what
the API reads back. Shared by the crash_restart and concurrent_writes checks.

A body is built from the operation's request schema: every property, a
marker in each string, numbers inside their bounds, enums' last value (the
one least likely to be the default). A hand-written generator rather than
schemathesis's: the checks need one deterministic, recognisable write per
call, not a search for failures (the openapi check does that)."""
from __future__ import annotations

import itertools
import json
import re
import time
import uuid
from typing import Any

import requests

from .openapi_check import fetch_spec

MUTATING = ("POST", "PUT", "PATCH")
# writes that would destroy the run's own state, reach the network, or start
# long jobs; library scans are driven separately (they are the check's own load)
UNSAFE_WORDS = ("reset", "clear", "delete", "remove", "upload", "download", "cleanup", "process", "fit", "build",
                "enqueue", "extract", "import", "export", "restore", "backup", "scan", "shutdown", "restart")
TIMEOUT_S = 10.0
BODY_EXCERPT = 300
_counter = itertools.count(1)


def route(method: str, path: str) -> str:
    return f"{method.upper()} {path}"


def new_marker(tag: str = "w") -> str:
    return f"es{tag}{uuid.uuid4().hex[:6]}{next(_counter)}"


def _resolve(schema: Any, spec: dict[str, Any], depth: int = 0) -> dict[str, Any]:
    while isinstance(schema, dict) and "$ref" in schema and depth < 20:
        node: Any = spec
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        schema, depth = node, depth + 1
    return schema if isinstance(schema, dict) else {}


def example(schema: Any, spec: dict[str, Any], marker: str, ids: dict[str, Any], name: str = "",
            depth: int = 0) -> Any:
    s = _resolve(schema, spec)
    if depth > 6:
        return None
    if "enum" in s and s["enum"]:
        return s["enum"][-1]
    if "const" in s:
        return s["const"]
    for key in ("anyOf", "oneOf", "allOf"):
        options = [o for o in s.get(key) or [] if _resolve(o, spec).get("type") != "null"]
        if options:
            return example(options[0], spec, marker, ids, name, depth + 1)
    t = s.get("type")
    low = name.lower()
    if t == "object" or "properties" in s:
        return {k: example(v, spec, marker, ids, k, depth + 1) for k, v in (s.get("properties") or {}).items()}
    if t == "array":
        n = max(1, int(s.get("minItems") or 1))
        return [example(s.get("items") or {}, spec, marker, ids, name.rstrip("s"), depth + 1) for _ in range(n)]
    if t == "integer":
        for key, v in ids.items():
            if key in low and isinstance(v, int):
                return v
        lo = s.get("minimum", s.get("exclusiveMinimum", 0) + 1 if "exclusiveMinimum" in s else 1)
        hi = s.get("maximum")
        return int(lo if hi is None else min(max(lo, 1), hi))
    if t == "number":
        lo, hi = s.get("minimum", s.get("exclusiveMinimum")), s.get("maximum", s.get("exclusiveMaximum"))
        if lo is not None and hi is not None:
            return round((lo + hi) / 2 * 0.9 + lo * 0.1, 3)  # inside the bounds, not a round default
        return 0.37 if lo is None else lo + 0.37
    if t == "boolean":
        return True
    if t == "string" or not t:
        if s.get("format") == "date-time":
            return "2026-01-02T03:04:05Z"
        if "path" in low or "folder" in low or "director" in low:
            return ids.get("path") or f"/{marker}"  # a folder that exists (in the run's HOME) when given
        text = marker
        if s.get("minLength") and len(text) < s["minLength"]:
            text = text + "x" * (s["minLength"] - len(text))
        if s.get("maxLength"):
            text = text[: s["maxLength"]]
        return text
    return None


def _body_schema(op: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any] | None:
    content = ((_resolve(op.get("requestBody") or {}, spec)).get("content") or {})
    js = content.get("application/json")
    return _resolve(js.get("schema") or {}, spec) if js else None


def _params(op: dict[str, Any], item: dict[str, Any], spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [_resolve(p, spec) for p in (item.get("parameters") or []) + (op.get("parameters") or [])]


def operations(spec: dict[str, Any], methods: tuple[str, ...] = MUTATING) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """(operations to exercise, [{route, reason}] skipped) of the given methods under /api."""
    ops, skipped = [], []
    for path, item in sorted((spec.get("paths") or {}).items()):
        for method, op in (item or {}).items():
            if method.upper() not in methods or not isinstance(op, dict):
                continue
            r = route(method, path)
            if not path.startswith("/api"):
                skipped.append({"route": r, "reason": "outside /api"})
                continue
            words = re.split(r"[^a-z]+", path.lower())  # whole words: "presets" is not "reset"
            word = next((w for w in UNSAFE_WORDS if any(x.startswith(w) for x in words)), None)
            if word:
                skipped.append({"route": r, "reason": f"destructive or long ({word})"})
                continue
            form = (_resolve(op.get("requestBody") or {}, spec).get("content") or {})
            if form and "application/json" not in form:
                skipped.append({"route": r, "reason": f"body is {next(iter(form))}"})
                continue
            ops.append({"method": method.upper(), "path": path, "route": r, "op": op,
                        "params": _params(op, item, spec)})
    return ops, skipped


def has_get(spec: dict[str, Any], path: str) -> bool:
    return "get" in ((spec.get("paths") or {}).get(path) or {})


def read_back_path(spec: dict[str, Any], path: str) -> str | None:
    """Where a write to `path` can be read: a GET on the same path, else on
    the nearest parent path the spec declares."""
    p = path
    while p and p != "/api":
        if has_get(spec, p):
            return p
        p = p.rsplit("/", 1)[0]
    return None


def fill(path: str, ids: dict[str, Any]) -> str:
    def one(m: re.Match) -> str:
        name = m.group(1).lower()
        for key, v in ids.items():
            if key in name:
                return str(v)
        return "1"
    return re.sub(r"\{([^}]+)\}", one, path)


def write(base_url: str, spec: dict[str, Any], op: dict[str, Any], ids: dict[str, Any], marker: str,
          session: requests.Session | None = None) -> dict[str, Any]:
    """One write; {route, marker, status, acked, t, elapsed_s, excerpt}."""
    body_schema = _body_schema(op["op"], spec)
    body = example(body_schema, spec, marker, ids) if body_schema is not None else None
    query = {p["name"]: example(p.get("schema") or {}, spec, marker, ids, p["name"])
             for p in op["params"] if p.get("in") == "query" and p.get("required")}
    url = base_url + fill(op["path"], ids)
    rec: dict[str, Any] = {"route": op["route"], "marker": marker, "t": time.time()}
    t0 = time.monotonic()
    try:
        r = (session or requests).request(op["method"], url, json=body, params=query or None, timeout=TIMEOUT_S)
        rec.update(status=r.status_code, acked=200 <= r.status_code < 300, excerpt=r.text[:BODY_EXCERPT])
    except requests.RequestException as e:
        rec.update(status=None, acked=False, error=f"{type(e).__name__}: {str(e)[:200]}")
    rec["elapsed_s"] = round(time.monotonic() - t0, 3)
    return rec


def list_limit(spec: dict[str, Any] | None, path: str) -> int | None:
    """The largest page a listing route allows (its `limit` query maximum)."""
    op = (((spec or {}).get("paths") or {}).get(path) or {}).get("get") or {}
    for p in op.get("parameters") or []:
        p = _resolve(p, spec or {})
        if p.get("name") == "limit" and p.get("in") == "query":
            sch = _resolve(p.get("schema") or {}, spec or {})
            return int(min(sch.get("maximum", 500), 500))
    return None


def read(base_url: str, path: str, ids: dict[str, Any], spec: dict[str, Any] | None = None,
         timeout_s: float = 30.0) -> tuple[int | None, str]:
    try:
        limit = list_limit(spec, path) if spec else (100 if path.endswith("/tracks") else None)
        r = requests.get(base_url + fill(path, ids), params={"limit": limit} if limit else None, timeout=timeout_s)
        return r.status_code, r.text
    except requests.RequestException as e:
        return None, f"{type(e).__name__}: {e}"


def canonical(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def spec_of(base_url: str, tries: int = 3) -> dict[str, Any] | None:
    """The target's OpenAPI document; a target still busy after the load may
    take longer than one request's timeout to build it."""
    for _ in range(tries):
        spec = fetch_spec(base_url)[1]
        if spec is not None:
            return spec
        time.sleep(2.0)
    return None
