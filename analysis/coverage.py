"""Runtime coverage of the target (--coverage): which of its own lines,
packages and routes the scenario reached, read from what the agent measured
(agent/coverage.json from coverage.py, agent/coverage_routes.json from the
app's own route table). A route is reached when a line of its endpoint's body
ran. Also: reading a test suite's coverage file (coverage.py's SQLite data
file, or its JSON report) without coverage.py installed, for
`python -m reports.coverage --against`."""
from __future__ import annotations

import ast
import glob
import json
import os
import sqlite3
from collections import defaultdict
from pathlib import Path
from typing import Any

from .model import Finding
from .rundir import AGENT, LOAD, iter_jsonl, read_json

STREAMING_WORDS = ("stream", "chunk")  # path words that mark streaming/chunking code, in the target's own paths


def _norm(path: str, roots: list[str], cwd: str | None) -> str:
    """A measured file as a path relative to the code root that holds it."""
    p = path if os.path.isabs(path) or not cwd else os.path.join(cwd, path)
    p = os.path.normpath(p)
    for r in roots:
        if p.startswith(r.rstrip(os.sep) + os.sep):
            return os.path.relpath(p, r)
    return path


def load_run_coverage(run_dir: Path) -> dict[str, Any] | None:
    """{"files": {relpath: {"executed": set, "missing": set}}, "routes": [...], "meta": {...}} or None."""
    agent = Path(run_dir) / AGENT
    rep = read_json(agent / "coverage.json", None)
    if not rep:
        return None
    meta = read_json(agent / "coverage_meta.json", {}) or {}
    rt = read_json(agent / "coverage_routes.json", {}) or {}
    roots = [os.path.normpath(r) for r in (rt.get("code_roots") or meta.get("code_roots") or [])]
    cwd = meta.get("cwd")
    files = {}
    for path, f in (rep.get("files") or {}).items():
        rel = _norm(path, roots, cwd)
        executed = set(f.get("executed_lines") or [])
        if "missing_lines" in f:
            missing = set(f["missing_lines"])
        else:  # the agent wrote executed lines only: the statements come from the source
            src = next((Path(r) / rel for r in roots if (Path(r) / rel).is_file()), None)
            missing = (statement_lines(src) - executed) if src else set()
        files[rel] = {"executed": executed, "missing": missing}
    routes = []
    for r in rt.get("routes") or []:
        rel = _norm(r.get("file") or "", roots, cwd)
        ran = files.get(rel, {}).get("executed", set())
        body = set(r.get("body_lines") or range(int(r.get("first_line") or 0) + 1, int(r.get("last_line") or 0) + 1))
        routes.append({**r, "file": rel, "own": rel in files or not os.path.isabs(rel),
                       "reached": bool(ran & body)})
    sent = sent_message_types(run_dir)
    handlers = []
    for rel, f in files.items():
        src = next((Path(r) / rel for r in roots if (Path(r) / rel).is_file()), None)
        if src is None or not sent:
            continue
        for h in ws_dispatch(src, sent):
            lines = set(range(h["line_start"], h["line_end"] + 1))
            handlers.append({**h, "file": rel, "reached": bool(f["executed"] & lines)})
    return {"files": files, "routes": routes, "meta": meta, "totals": rep.get("totals") or {}, "ws_handlers": handlers}


def statement_lines(source: Path) -> set[int]:
    """First lines of the statements of a file (close to what coverage.py
    counts: docstrings, which it skips, are left out too)."""
    try:
        tree = ast.parse(source.read_text(encoding="utf-8", errors="replace"))
    except (OSError, SyntaxError, ValueError):
        return set()
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.stmt):
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                continue
            out.add(node.lineno)
    return out


def sent_message_types(run_dir: Path) -> set[str]:
    """The WebSocket message types the load sent, as recorded per connection."""
    out: set[str] = set()
    for p in glob.glob(str(Path(run_dir) / LOAD / "connections" / "*.jsonl")):
        for e in iter_jsonl(Path(p)):
            msg = e.get("msg") if e.get("kind") == "sent" else None
            if isinstance(msg, dict) and isinstance(msg.get("type"), str):
                out.add(msg["type"])
    return out


def _literals(test: ast.expr) -> list[str]:
    """"x == 'a'" -> [a]; "x in ('a', 'b')" -> [a, b]; anything else -> []."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and len(test.comparators) == 1):
        return []
    op, right = test.ops[0], test.comparators[0]
    if isinstance(op, ast.Eq) and isinstance(right, ast.Constant) and isinstance(right.value, str):
        return [right.value]
    if isinstance(op, ast.In) and isinstance(right, (ast.Tuple, ast.List, ast.Set)):
        return [e.value for e in right.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return []


def ws_dispatch(source: Path, sent: set[str], min_branches: int = 3) -> list[dict[str, Any]]:
    """The message handlers of a file: branches of an if/elif chain over string
    literals, at least one of which is a type the load sent (the target's own
    dispatch, found in its code, not named by us). One entry per literal,
    with the line span of its branch's body."""
    try:
        tree = ast.parse(source.read_text(encoding="utf-8", errors="replace"))
    except (OSError, SyntaxError):
        return []
    out, seen = [], set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.If) or id(node) in seen:
            continue
        chain, cur = [], node
        while isinstance(cur, ast.If):
            seen.add(id(cur))
            chain.append(cur)
            cur = cur.orelse[0] if len(cur.orelse) == 1 and isinstance(cur.orelse[0], ast.If) else None
        branches = [(lit, br) for br in chain for lit in _literals(br.test)]
        if len(branches) < min_branches or not {lit for lit, _ in branches} & sent:
            continue
        for lit, br in branches:
            first, last = br.body[0].lineno, max(getattr(b, "end_lineno", b.lineno) or b.lineno for b in br.body)
            out.append({"type": lit, "line_start": first, "line_end": last, "sent": lit in sent})
    return out


def package_table(files: dict[str, dict[str, set]]) -> list[dict[str, Any]]:
    groups: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for rel, f in files.items():
        pkg = os.path.dirname(rel) or "."
        groups[pkg][0] += len(f["executed"])
        groups[pkg][1] += len(f["executed"]) + len(f["missing"])
    return [{"package": k, "lines_run": a, "lines": b, "pct": round(100.0 * a / b, 1) if b else 0.0}
            for k, (a, b) in sorted(groups.items())]


def analyse_coverage(run_dir: Path) -> tuple[list[Finding], dict[str, Any]]:
    cov = load_run_coverage(run_dir)
    if cov is None:
        return [], {}
    files, routes = cov["files"], cov["routes"]
    run = sum(len(f["executed"]) for f in files.values())
    total = run + sum(len(f["missing"]) for f in files.values())
    streaming = {k: f for k, f in files.items() if any(w in k.lower() for w in STREAMING_WORDS)}
    s_run = sum(len(f["executed"]) for f in streaming.values())
    s_total = s_run + sum(len(f["missing"]) for f in streaming.values())
    http = [r for r in routes if r["kind"] == "http" and r["own"]]
    # the message handlers of the WebSocket dispatch, else the WebSocket endpoints themselves
    ws = cov["ws_handlers"] or [r for r in routes if r["kind"] == "websocket" and r["own"]]
    metrics: dict[str, Any] = {
        "coverage_lines_pct": round(100.0 * run / total, 2) if total else 0.0,
        "coverage_routes_reached": sum(r["reached"] for r in http),
        "coverage_routes_total": len(http),
        "coverage_ws_handlers_reached": sum(r["reached"] for r in ws),
        "coverage_ws_handlers_total": len(ws),
    }
    if s_total:
        metrics["coverage_streaming_lines_pct"] = round(100.0 * s_run / s_total, 2)
    return [], metrics


def read_test_coverage(path: Path) -> dict[str, set[int]]:
    """Lines each file ran under the target's own tests: coverage.py's data
    file (SQLite) or its JSON report. Keys are the paths as recorded."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such coverage file")
    head = path.read_bytes()[:16]
    if head.startswith(b"SQLite format 3"):
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            names = dict(con.execute("select id, path from file"))
            out: dict[str, set[int]] = defaultdict(set)
            for fid, bits in con.execute("select file_id, numbits from line_bits"):
                out[names[fid]] |= _numbits(bits)
            for fid, a, b in con.execute("select file_id, fromno, tono from arc"):  # branch data files
                out[names[fid]] |= {x for x in (a, b) if x > 0}
            return dict(out)
        except sqlite3.DatabaseError as e:
            raise ValueError(f"{path}: not a coverage.py data file ({e})") from None
        finally:
            con.close()
    try:
        rep = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"{path}: neither a coverage.py data file nor its JSON report") from None
    return {k: set(v.get("executed_lines") or []) for k, v in (rep.get("files") or {}).items()}


def _numbits(bits: bytes) -> set[int]:
    """coverage.py's numbits: bit j of byte i set means line 8*i+j ran."""
    return {i * 8 + j for i, b in enumerate(bits) for j in range(8) if b & (1 << j)}


def match_paths(run_files: list[str], test_files: list[str]) -> dict[str, str]:
    """run relpath -> test path, by the longest common tail of path parts (the
    tests ran in another checkout, or recorded absolute paths)."""
    out = {}
    by_tail: dict[str, list[str]] = defaultdict(list)
    for t in test_files:
        by_tail[Path(t).name].append(t)
    for r in run_files:
        rp = Path(r).parts
        best, best_n = None, 0
        for t in by_tail.get(Path(r).name, []):
            tp = Path(t).parts
            n = 0
            while n < min(len(rp), len(tp)) and rp[-1 - n] == tp[-1 - n]:
                n += 1
            if n > best_n:
                best, best_n = t, n
        if best is not None and best_n == len(rp):  # every part of the run's relative path matches
            out[r] = best
    return out
