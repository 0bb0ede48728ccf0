"""concurrent_writes: does concurrent use lose or corrupt what the target
acknowledged?

Procedure: every mutating REST route the OpenAPI spec declares (minus those
that would destroy the run's state or reach the network, rest_writes.py) is
first written twice in a row with two markers and read back, which says
whether its writes accumulate (both markers there: every acknowledged write
must survive), overwrite (the last one there), or cannot be read back. Then,
for a bounded time, writer threads cycle through those routes with a fresh
marker per write, beside a thread of library scans and a stream played again
and again. Afterwards each route is read back once; the databases under HOME
are checked on a copy. The judge is analysis.dynamic.concurrent_writes."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import requests

from . import rest_writes as rw
from .state_probe import BackgroundStreams, find_dbs, integrity, playable, scan, scan_route


def _classify(base_url: str, spec: dict[str, Any], op: dict[str, Any], ids: dict[str, Any]) -> dict[str, Any]:
    a = rw.write(base_url, spec, op, ids, rw.new_marker("a"))
    b = rw.write(base_url, spec, op, ids, rw.new_marker("b"))
    path = rw.read_back_path(spec, op["path"])
    out: dict[str, Any] = {"route": op["route"], "read_back": rw.route("GET", path) if path else None,
                           "first": a, "second": b}
    if not (a["acked"] and b["acked"]) or path is None:
        out["mode"] = "unverifiable"
        return out
    status, text = rw.read(base_url, path, ids, spec)
    has_a, has_b = a["marker"] in text, b["marker"] in text
    out["mode"] = ("accumulating" if has_a and has_b else "overwriting" if has_b
                   else "unverifiable") if status == 200 else "unverifiable"
    return out


def _locked_in_log(log: Path, offset: int) -> dict[str, Any]:
    """'database is locked' in what the target logged during the storm (an
    unhandled exception's 500 body does not say why; its traceback does)."""
    try:
        with open(log, "rb") as fh:
            fh.seek(offset)
            text = fh.read(32 << 20).decode("utf-8", "replace")
    except OSError:
        return {"count": 0, "lines": []}
    lines = [ln.strip() for ln in text.splitlines() if "database is locked" in ln.lower()]
    return {"count": len(lines), "lines": lines[:3]}


def summarise(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per route: writes by status, how many 5xx said the database was
    locked, a few 5xx bodies as evidence, the slowest write."""
    out: dict[str, dict[str, Any]] = {}
    for w in records:
        r = out.setdefault(w["route"], {"n": 0, "acked": 0, "by_status": {}, "locked_5xx": 0, "examples_5xx": [],
                                        "max_s": 0.0})
        r["n"] += 1
        r["acked"] += int(bool(w.get("acked")))
        key = str(w.get("status"))
        r["by_status"][key] = r["by_status"].get(key, 0) + 1
        r["max_s"] = max(r["max_s"], w.get("elapsed_s") or 0.0)
        if w.get("error"):
            r.setdefault("errors", {})
            kind = w["error"].split(":")[0]
            r["errors"][kind] = r["errors"].get(kind, 0) + 1
        if (w.get("status") or 0) >= 500:
            if "locked" in (w.get("excerpt") or "").lower():
                r["locked_5xx"] += 1
            ex = (w.get("excerpt") or "")[:200]
            if len(r["examples_5xx"]) < 3 and ex not in [e["excerpt"] for e in r["examples_5xx"]]:
                r["examples_5xx"].append({"status": w["status"], "excerpt": (w.get("excerpt") or "")[:200]})
    return out


def concurrent_writes(*, base_url: str, run_dir: Path, tracks: list[dict[str, Any]], compression: bool,
                      home: Path, duration_s: float = 8.0, writers: int = 4, **_: Any) -> dict[str, Any]:
    run_dir, home = Path(run_dir), Path(home)
    usable = playable(tracks)
    spec = rw.spec_of(base_url)
    if spec is None:
        return {"outcome": "no_spec"}
    if not usable:
        return {"outcome": "error", "error": "no track with a server id"}
    ids = {"track": usable[0]["track_id"], "path": str(home / "Music")}
    ops, skipped = rw.operations(spec)
    res: dict[str, Any] = {"outcome": "done", "duration_s": duration_s, "writers": writers, "skipped": skipped,
                           "routes": [_classify(base_url, spec, op, ids) for op in ops]}
    # -- the storm -----------------------------------------------------------------
    stop = threading.Event()
    records: list[dict[str, Any]] = []
    scans: list[dict[str, Any]] = []
    sroute = scan_route(spec)

    # every route, each followed by a write to a route whose every write must
    # survive (on a slow target the storm may not get through the list twice)
    verifiable = [op for op, r in zip(ops, res["routes"]) if r["mode"] == "accumulating"]
    schedule = [x for i, op in enumerate(ops) for x in ([op, verifiable[i % len(verifiable)]] if verifiable else [op])]

    def writer(k: int) -> None:
        s = requests.Session()
        i = k
        while not stop.is_set() and schedule:
            records.append(rw.write(base_url, spec, schedule[i % len(schedule)], ids, rw.new_marker("s"), session=s))
            i += writers

    def scanner() -> None:
        while not stop.is_set() and sroute:
            scans.append(scan(base_url, sroute, home / "Music", 60.0))

    shortest = min(usable, key=lambda t: t.get("duration_s") or 1e9)
    streams = BackgroundStreams(base_url, shortest, compression=compression).start()
    threads = [threading.Thread(target=writer, args=(k,), daemon=True) for k in range(writers)]
    threads.append(threading.Thread(target=scanner, daemon=True))
    log = run_dir / "target.log"
    log_offset = log.stat().st_size if log.exists() else 0
    t0 = time.time()
    for t in threads:
        t.start()
    time.sleep(duration_s)
    stop.set()
    for t in threads:
        t.join(timeout=70)
    res["window"] = [t0, time.time()]
    res["stream_results"] = streams.stop(wait_s=90)
    res["writes"] = summarise(records)
    res["scans"] = scans
    res["log_locked"] = _locked_in_log(log, log_offset)
    # -- what survived ---------------------------------------------------------------
    time.sleep(0.5)
    after: dict[str, Any] = {}
    for r in res["routes"]:
        if r["mode"] != "accumulating":
            continue
        path = r["read_back"].split(" ", 1)[1]
        for _ in range(3):  # a target still busy may time out: a failed read proves nothing lost
            status, text = rw.read(base_url, path, ids, spec, timeout_s=60.0)
            if status == 200:
                break
            time.sleep(2.0)
        acked = [w["marker"] for w in records if w["route"] == r["route"] and w.get("acked")]
        missing = [m for m in acked if m not in text] if status == 200 else []
        after[r["route"]] = {"status": status, "acked": len(acked), "missing_count": len(missing),
                             "missing": missing[:10]}
    res["read_back"] = after
    res["integrity"] = [integrity(db, run_dir / "checks" / "concurrent_writes" / "db-copy", home)
                        for db in find_dbs(home)]
    return res
