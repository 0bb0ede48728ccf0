"""Known answers for runtime coverage, on a synthetic run directory: a route
whose endpoint body did not run is unreached, the WebSocket dispatch is found
in the target's own code from the types the load sent, and a test suite's
coverage file (SQLite data file or JSON report) that omits a live function
shows it as an untested live path, while tested code the load never ran is a
blind spot."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from analysis.coverage import analyse_coverage, read_test_coverage
from reports import coverage as rc

APP = '''\
def health():
    return {"ok": True}


def tracks():
    return []


def dispatch(kind, data):
    if kind == "ping":
        return "pong"
    elif kind in ("play_normal", "play_enhanced"):
        return play(data)
    elif kind == "seek":
        return seek(data)


def play(data):
    out = data * 2
    return out


def seek(data):
    return data
'''
# lines that "ran" under the load: health, dispatch of play_normal, play
RAN = [1, 2, 9, 10, 12, 13, 18, 19, 20]
ALL = [1, 2, 5, 6, 9, 10, 11, 12, 13, 14, 15, 18, 19, 20, 23, 24]


def _run(tmp: Path) -> Path:
    root = tmp / "target"
    root.mkdir()
    (root / "app.py").write_text(APP)
    run = tmp / "run"
    (run / "agent").mkdir(parents=True)
    (run / "load" / "connections").mkdir(parents=True)
    (run / "load" / "connections" / "c1.jsonl").write_text(
        json.dumps({"kind": "sent", "msg": {"type": "play_normal", "data": {}}}) + "\n")
    rep = {"files": {"app.py": {"executed_lines": RAN, "missing_lines": sorted(set(ALL) - set(RAN))}}}
    (run / "agent" / "coverage.json").write_text(json.dumps(rep))
    (run / "agent" / "coverage_meta.json").write_text(json.dumps({"cwd": str(root), "code_roots": [str(root)]}))
    routes = [{"path": "/api/health", "kind": "http", "methods": ["GET"], "function": "health",
               "file": str(root / "app.py"), "first_line": 1, "last_line": 2},
              {"path": "/api/tracks", "kind": "http", "methods": ["GET"], "function": "tracks",
               "file": str(root / "app.py"), "first_line": 5, "last_line": 6}]
    (run / "agent" / "coverage_routes.json").write_text(json.dumps({"code_roots": [str(root)], "routes": routes}))
    (run / "agent" / "busy_samples.jsonl").write_text(json.dumps({"frames": {"app.py:19 play": 7}}) + "\n")
    return run


def test_unreached_route_and_dispatch_handlers(tmp_path):
    run = _run(tmp_path)
    _, m = analyse_coverage(run)
    assert m["coverage_routes_reached"] == 1 and m["coverage_routes_total"] == 2  # /api/tracks never ran
    # ping, play_normal, play_enhanced (one branch), seek: the play branch ran
    assert m["coverage_ws_handlers_total"] == 4 and m["coverage_ws_handlers_reached"] == 2
    assert m["coverage_lines_pct"] == round(100 * len(RAN) / len(ALL), 2)


def _sqlite(path: Path, lines: dict[str, list[int]]) -> None:
    con = sqlite3.connect(path)
    con.executescript("create table file (id integer primary key, path text);"
                      "create table line_bits (file_id integer, context_id integer, numbits blob);"
                      "create table arc (file_id integer, context_id integer, fromno integer, tono integer);")
    for i, (p, ls) in enumerate(lines.items(), 1):
        bits = bytearray(max(ls) // 8 + 1)
        for n in ls:
            bits[n // 8] |= 1 << (n % 8)
        con.execute("insert into file values (?, ?)", (i, p))
        con.execute("insert into line_bits values (?, 0, ?)", (i, bytes(bits)))
    con.commit()
    con.close()


def test_a_test_suite_that_omits_a_live_function_shows_it_untested_and_live(tmp_path):
    run = _run(tmp_path)
    tested = [1, 2, 9, 10, 12, 13, 23, 24]  # the tests never call play(); they do call seek(), the load never does
    data = tmp_path / "tests.coverage"
    _sqlite(data, {"/elsewhere/checkout/app.py": tested})
    assert read_test_coverage(data)["/elsewhere/checkout/app.py"] == set(tested)
    res = rc.compare(run, data)
    live = res["untested_live"]
    assert [(g["function"], g["line_start"], g["line_end"], g["samples"]) for g in live] == [("play", 18, 20, 7)]
    assert [(g["function"], g["line_start"], g["line_end"]) for g in res["blind_spots"]] == [("seek", 23, 24)]
    found = rc.findings_of(res, "smoke")
    assert {(f.kind, f.dimension, f.severity, f.location.function) for f in found} == {
        ("untested_live_path", "Test Coverage", "LOW", "play"), ("gate_blind_spot", "Test Coverage", "LOW", "seek")}
    # the same suite as coverage.py's JSON report gives the same answer
    js = tmp_path / "tests.json"
    js.write_text(json.dumps({"files": {"/elsewhere/checkout/app.py": {"executed_lines": tested}}}))
    assert [g["function"] for g in rc.compare(run, js)["untested_live"]] == ["play"]


def test_a_suite_that_tests_everything_the_load_ran_has_no_live_gap(tmp_path):
    run = _run(tmp_path)
    js = tmp_path / "tests.json"
    js.write_text(json.dumps({"files": {"app.py": {"executed_lines": RAN}}}))
    res = rc.compare(run, js)
    assert res["untested_live"] == [] and res["blind_spots"] == []


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    run = _run(tmp_path)
    bad = tmp_path / "bad.txt"
    bad.write_text("not coverage")
    assert rc.main([str(run), "--against", str(bad)]) == 2
    assert rc.main([str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(e.startswith("error: ") for e in err)


def test_samples_rank_the_untested_lines_not_their_function(tmp_path):
    """play's line 18 is tested and hot; 19-20 are untested and never sampled:
    the untested path gets none of the function's samples."""
    run = _run(tmp_path)
    (run / "agent" / "busy_samples.jsonl").write_text(json.dumps({"frames": {"app.py:18 play": 40}}) + "\n")
    data = tmp_path / "tests.coverage"
    _sqlite(data, {"/elsewhere/checkout/app.py": [1, 2, 9, 10, 12, 13, 18, 23, 24]})
    live = rc.compare(run, data)["untested_live"]
    assert [(g["function"], g["line_start"], g["line_end"], g["samples"]) for g in live] == [("play", 19, 20, 0)]
