"""The four lifecycle checks' judges on synthetic records: each defect gives
its one finding with the right route, severity and figures; the clean record
gives none."""
from __future__ import annotations

from analysis.dynamic import concurrent_writes, crash_restart, path_traversal, shutdown


# -- path_traversal ---------------------------------------------------------------
def _pt(served=(), errors=()) -> dict:
    return {"outcome": "done", "probes": 26, "canary": "checks/path_traversal/canary.txt",
            "served": list(served), "server_errors": list(errors)}


def test_path_traversal_served_canary_is_critical_on_its_route():
    hit = {"route": "GET /api/library/file", "param": "path", "in": "query", "form": "dotdot",
           "request": "/api/library/file?path=../../checks/path_traversal/canary.txt", "status": 200}
    found, metrics = path_traversal.analyse(_pt([hit, {**hit, "form": "absolute"}]), "s")
    assert [f.kind for f in found] == ["path_traversal"]
    f = found[0]
    assert f.severity == "CRITICAL" and f.location.route == "GET /api/library/file" and f.dimension == "Route Handlers"
    assert f.figures == {"forms_served": 2.0, "requests_served": 2.0}
    assert metrics["path_traversal_served"] == 2.0


def test_path_traversal_clean_and_refused_gives_nothing():
    assert path_traversal.analyse(_pt(), "s") == ([], {"path_traversal_served": 0.0, "path_traversal_probes": 26.0})
    assert path_traversal.analyse({"outcome": "no_spec"}, "s") == ([], {})


def test_path_traversal_5xx_is_an_error_handling_finding():
    err = {"route": "GET /api/x/{name}", "param": "name", "in": "path", "form": "long_name", "request": "/api/x/aaa",
           "status": 500, "excerpt": "Internal Server Error"}
    found, _ = path_traversal.analyse(_pt(errors=[err]), "s")
    assert [(f.kind, f.severity, f.location.route) for f in found] == [
        ("path_input_server_error", "HIGH", "GET /api/x/{name}")]


# -- concurrent_writes --------------------------------------------------------------
def _cw(**over) -> dict:
    base = {"outcome": "done", "duration_s": 10.0, "writers": 4,
            "routes": [{"route": "POST /api/presets", "read_back": "GET /api/presets", "mode": "accumulating",
                        "first": {"status": 200, "acked": True}, "second": {"status": 200, "acked": True}}],
            "writes": {"POST /api/presets": {"n": 100, "acked": 100, "by_status": {"200": 100}, "locked_5xx": 0,
                                             "examples_5xx": [], "max_s": 0.1}},
            "read_back": {"POST /api/presets": {"status": 200, "acked": 100, "missing_count": 0, "missing": []}},
            "integrity": [{"db": ".earshot-reference/state.db", "result": "ok", "wal_bytes": 4096}],
            "stream_results": [{"track": "t", "outcome": "completed", "delivered_s": 40.0, "expected_s": 40.0}],
            "log_locked": {"count": 0, "lines": []}}
    base.update(over)
    return base


def test_concurrent_writes_clean_record_is_quiet():
    found, metrics = concurrent_writes.analyse(_cw(), "s")
    assert found == []
    assert metrics == {"concurrent_writes_total": 100.0, "concurrent_writes_acked": 100.0,
                       "concurrent_writes_lost": 0.0}


def test_concurrent_writes_locked_500s_and_lost_writes():
    rec = _cw(writes={"POST /api/presets": {"n": 100, "acked": 70, "by_status": {"200": 70, "500": 30},
                                            "locked_5xx": 0, "examples_5xx": [{"status": 500, "excerpt": "ISE"}],
                                            "max_s": 0.2}},
              read_back={"POST /api/presets": {"status": 200, "acked": 70, "missing_count": 12, "missing": ["esx1"]}},
              log_locked={"count": 30, "lines": ["sqlite3.OperationalError: database is locked"]})
    found = {f.kind: f for f in concurrent_writes.analyse(rec, "s")[0]}
    assert set(found) == {"db_locked_500", "lost_acknowledged_writes"}
    assert found["db_locked_500"].severity == "HIGH" and found["db_locked_500"].figures["server_errors"] == 30
    assert found["lost_acknowledged_writes"].severity == "CRITICAL"
    assert found["lost_acknowledged_writes"].figures == {"lost": 12.0, "acknowledged": 70.0}
    assert all(f.location.route == "POST /api/presets" for f in found.values())


def test_concurrent_writes_a_failed_read_back_is_not_a_loss():
    rec = _cw(read_back={"POST /api/presets": {"status": None, "acked": 6, "missing_count": 6, "missing": ["a"]}})
    assert concurrent_writes.analyse(rec, "s")[0] == []


def test_concurrent_writes_route_failing_alone_is_not_a_concurrency_defect():
    rec = _cw(routes=[{"route": "POST /api/presets", "read_back": None, "mode": "unverifiable",
                       "first": {"status": 500}, "second": {"status": 500}}],
              writes={"POST /api/presets": {"n": 10, "acked": 0, "by_status": {"500": 10}, "locked_5xx": 0,
                                            "examples_5xx": [], "max_s": 0.1}}, read_back={})
    assert concurrent_writes.analyse(rec, "s")[0] == []


def test_concurrent_writes_integrity_and_stream_breaks():
    rec = _cw(integrity=[{"db": ".auralis/library.db", "result": "*** in database main *** Page 5: btree",
                          "wal_bytes": 0}],
              stream_results=[{"track": "t", "outcome": "closed", "delivered_s": 12.0, "expected_s": 40.0}])
    found = {f.kind: f for f in concurrent_writes.analyse(rec, "s")[0]}
    assert set(found) == {"db_integrity_failed", "stream_broken_by_writes"}
    assert found["db_integrity_failed"].severity == "CRITICAL"


# -- crash_restart -----------------------------------------------------------------
def _cr(after_settings=None, **over) -> dict:
    settings = {"status": 200, "body": {"theme": "esc1", "volume": 0.5}}
    tracks = {"status": 200, "body": {"tracks": [{"id": 1, "title": "a"}, {"id": 2, "title": "b"}], "total": 2}}
    base = {"outcome": "done", "writes": [{"route": "PUT /api/settings", "marker": "esc1", "acked": True}],
            "before": {"/api/settings": settings, "/api/library/tracks": tracks},
            "after": {"/api/settings": after_settings or settings, "/api/library/tracks": tracks},
            "restart_healthy_s": 3.2, "integrity": [{"db": "x.db", "result": "ok"}],
            "stream_after": {"track": "a", "outcome": "completed", "delivered_s": 20.0, "expected_s": 20.0},
            "locks_before": [], "locks_after_kill": []}
    base.update(over)
    return base


def test_crash_restart_clean_record_is_quiet_and_times_the_restart():
    assert crash_restart.analyse(_cr(), "s") == ([], {"crash_restart_healthy_s": 3.2})


def test_crash_restart_lost_settings_names_the_route_and_every_difference():
    found, _ = crash_restart.analyse(_cr({"status": 200, "body": {}}), "s")
    assert [f.kind for f in found] == ["restart_lost_state"]
    f = found[0]
    assert f.location.route == "GET /api/settings" and f.severity == "HIGH" and f.figures["differences"] == 2
    assert any("theme was \"esc1\"" in e for e in f.evidence)


def test_crash_restart_lost_track_and_failed_start():
    lost = _cr()
    lost["after"]["/api/library/tracks"] = {"status": 200, "body": {"tracks": [{"id": 1, "title": "a"}], "total": 1}}
    found, _ = crash_restart.analyse(lost, "s")
    assert [f.location.route for f in found] == ["GET /api/library/tracks"]
    assert any("track 2 'b' gone" in e for e in found[0].evidence)
    failed = {"outcome": "restart_failed", "error": "target exited with code 1", "locks_before": [],
              "locks_after_kill": [".auralis/app.lock"], "killed_pid": 5}
    found, _ = crash_restart.analyse(failed, "s")
    assert [(f.kind, f.severity) for f in found] == [("stale_lock_blocks_start", "HIGH")]


# -- shutdown --------------------------------------------------------------------
def _sd(**over) -> dict:
    base = {"outcome": "done", "grace_s": 15.0, "pid": 10, "exit_s": 0.8, "exit_code": 0, "survivors": [],
            "port_accepts": False, "tmp_leftovers": {"files": 0, "bytes": 0, "examples": []},
            "wal": [{"db": ".earshot-reference/state.db", "wal_bytes": 0}],
            "threads_at_exit": {"code_roots": ["/src/app"], "threads": [
                {"name": "pool_0", "daemon": False, "idle_pool_worker": True, "own_frames": [], "frames": []}]}}
    base.update(over)
    return base


def test_shutdown_clean_record_is_quiet():
    assert shutdown.analyse(_sd(), "s") == ([], {"shutdown_survivors": 0.0, "shutdown_exit_s": 0.8})


def test_shutdown_each_leftover_is_one_finding():
    rec = _sd(survivors=[{"pid": 99, "name": "python", "cmdline": "python -c sleep"}],
              tmp_leftovers={"files": 2, "bytes": 20 << 20, "examples": [{"path": "auralis_chunks/a.wav",
                                                                          "bytes": 10 << 20}]},
              wal=[{"db": ".auralis/library.db", "wal_bytes": 8192}],
              threads_at_exit={"code_roots": ["/src/app"], "threads": [
                  {"name": "dsp", "daemon": True, "idle_pool_worker": False,
                   "own_frames": [{"file": "/src/app/core/proc.py", "line": 42, "function": "render"}]}]})
    found = {f.kind: f for f in shutdown.analyse(rec, "s")[0]}
    assert set(found) == {"shutdown_orphan_children", "shutdown_temp_files_left", "shutdown_wal_not_checkpointed",
                          "shutdown_threads_running"}
    assert found["shutdown_orphan_children"].severity == "HIGH"
    assert found["shutdown_temp_files_left"].severity == "MEDIUM"
    t = found["shutdown_threads_running"].location
    assert (t.file, t.line_start, t.function) == ("core/proc.py", 42, "render")


def test_shutdown_that_never_exits_names_the_handler_it_waits_for():
    pending = {"code_roots": ["/src/app"], "tasks": [
        {"coro": "Server.serve", "own_frames": [], "frames": [{"file": "/lib/uvicorn/server.py", "line": 9,
                                                              "function": "serve"}]},
        {"coro": "_recommend", "own_frames": [{"file": "/src/app/ws/rec.py", "line": 5, "function": "_recommend"}],
         "frames": []},
        {"coro": "RequestResponseCycle.run_asgi", "connection": True, "frames": [], "own_frames": [
            {"file": "/src/app/routers/ws.py", "line": 30, "function": "websocket_endpoint"},
            {"file": "/src/app/core/stream.py", "line": 77, "function": "wait_chunk"}]}]}
    found, metrics = shutdown.analyse(_sd(exit_s=None, exit_code=None, port_accepts=True, pending_tasks=pending,
                                          tmp_leftovers={"files": 1, "bytes": 4, "examples": []},
                                          wal=[{"db": "x.db", "wal_bytes": 5}]), "s")
    # the port, WAL and temp files of a process still running say nothing yet
    assert [f.kind for f in found] == ["shutdown_timeout"]
    loc = found[0].location
    assert (loc.file, loc.line_start, loc.function) == ("core/stream.py", 77, "wait_chunk")
    assert any("routers/ws.py:30 websocket_endpoint" in e for e in found[0].evidence)
    assert "shutdown_exit_s" not in metrics


def test_shutdown_held_by_a_thread_after_the_server_finished_names_that_thread():
    threads = {"pid": 10, "code_roots": ["/src/app"], "threads": [
        {"name": "io_0", "daemon": False, "idle_pool_worker": False,
         "own_frames": [{"file": "/src/app/analysis/spectral.py", "line": 172, "function": "spectral_centroid"},
                        {"file": "/src/app/core/rec.py", "line": 64, "function": "recommend"}]}]}
    found, _ = shutdown.analyse(_sd(exit_s=None, exit_code=None, threads_at_exit=threads, pending_tasks=None), "s")
    assert [f.kind for f in found] == ["shutdown_timeout"]  # one defect: no separate threads finding
    loc = found[0].location
    assert (loc.file, loc.line_start, loc.function) == ("analysis/spectral.py", 172, "spectral_centroid")
    assert any("thread 'io_0'" in e and "core/rec.py:64 recommend" in e for e in found[0].evidence)
