"""Known-answer tests of the HTTP-side dynamic checks (openapi, origins,
bad_files) on real reference servers: each injected defect is found with its
kind, dimension and location, and the clean server gives no finding while
the checks demonstrably did their work on it."""
from __future__ import annotations

import pytest
import requests

from analysis.dynamic import bad_files as bad_files_analysis
from analysis.dynamic import openapi as openapi_analysis
from analysis.dynamic import origins as origins_analysis
from instrument.dynamic.bad_files_check import bad_files_check
from instrument.dynamic.openapi_check import openapi
from instrument.dynamic.origins_check import origins

from ..reference.helpers import scan, start_server, write_tracks

HANG_DEADLINE_S = 3.0  # enough for the reference's millisecond answers, short for the hang case


def _serve(tmp_path_factory, inject: str):
    tmp = tmp_path_factory.mktemp(inject or "clean")
    srv = start_server(tmp, inject=inject)
    write_tracks(srv.home / "Music", seconds=8.0)
    listed = scan(srv)
    tracks = [{"name": t["title"], "track_id": t["id"], "duration_s": t["duration"]} for t in listed]
    return srv, tracks, tmp


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    srv, tracks, tmp = _serve(tmp_path_factory, "")
    yield srv, tracks, tmp
    srv.stop()


def _kw(srv, tracks, tmp):
    return dict(base_url=srv.base, run_dir=tmp / "run", home=srv.home, tracks=tracks, compression=False,
                target_kind="reference")


def _where(findings):
    return {(f.kind, f.dimension, f.location.route or f.location.function or f.location.stream) for f in findings}


def test_clean_reference_gives_no_finding(clean):
    srv, tracks, tmp = clean
    kw = _kw(srv, tracks, tmp)
    api = openapi(**kw)
    # the check did its work: the spec was read and the track routes driven
    assert api["outcome"] == "done" and api["requests"] >= 10
    assert "GET /api/library/tracks" in api["reached"] and "GET /api/library/tracks/{track_id}" in api["reached"]
    assert any(s["operation"] == "POST /api/library/scan" for s in api["skipped_operations"])  # scans are not fuzzed
    org = origins(**kw)
    ws = {p["origin"]: p["accepted"] for p in org["probes"] if p["surface"] == "websocket"}
    assert ws["http://evil.example"] is False and ws[None] is True and ws["http://localhost:8765"] is True
    bad = bad_files_check(**kw, deadline_s=HANG_DEADLINE_S)
    by = {f["file"]: f for f in bad["files"]}
    assert by["bad_vanished_wav.wav"]["listed"] and by["bad_truncated_wav.wav"]["listed"]
    for name in ("bad_vanished_wav.wav", "bad_truncated_flac.flac"):  # unreadable: a clean error, at once
        assert [e["kind"] for e in by[name]["stream"]["events"]] == ["stream_error"]
    assert by["bad_truncated_wav.wav"]["stream"]["ended"] == "completed"  # what is there plays, then ends
    assert by["bad_vanished_wav.wav"]["other_client"]["good_stream"]["outcome"] == "done"
    findings = (openapi_analysis.analyse(api, "release") + origins_analysis.analyse(org, "release")
                + bad_files_analysis.analyse(bad, "release"))
    assert findings == []


def test_schema_violation_is_found(tmp_path_factory):
    srv, tracks, tmp = _serve(tmp_path_factory, "schema-violation")
    try:
        res = openapi(**_kw(srv, tracks, tmp))
    finally:
        srv.stop()
    found = _where(openapi_analysis.analyse(res, "release"))
    assert ("api_schema_violation", "Schema Consistency", "GET /api/library/tracks") in found
    assert ("api_server_error", "Route Handlers", "GET /api/library/tracks") in found
    assert ("api_non_json_error", "Error Handling", "GET /api/library/tracks") in found
    assert ("api_inconsistent_error_body", "Schema Consistency", "GET /api/library/tracks/{track_id}") in found
    assert len(found) == 4
    # the evidence names the request that broke it
    viol = next(p for p in res["problems"] if p["kind"] == "schema_violation")
    assert viol["request"]["path"] == "/api/library/tracks" and "total" in viol["instance_path"]


def test_cors_wildcard_credentials_is_found(tmp_path_factory):
    srv, tracks, tmp = _serve(tmp_path_factory, "cors-wildcard-credentials")
    try:
        res = origins(**_kw(srv, tracks, tmp))
        # what a browser would see: the foreign Origin reflected, with credentials
        r = requests.get(srv.base + "/api/health", headers={"Origin": "http://evil.example", "Cookie": "a=1"},
                         timeout=5)
        assert r.headers.get("access-control-allow-origin") == "http://evil.example"
    finally:
        srv.stop()
    found = {(f.kind, f.dimension) for f in origins_analysis.analyse(res, "release")}
    assert found == {("cors_wildcard_credentials", "Middleware & Config"),
                     ("ws_foreign_origin_accepted", "Middleware & Config"),
                     ("rest_foreign_origin_served", "Middleware & Config")}


@pytest.mark.parametrize("inject,kind", [("bad-file-hang", "bad_file_stream_hang"),
                                         ("bad-file-traceback", "bad_file_traceback_leak")])
def test_bad_file_defects_are_found(tmp_path_factory, inject, kind):
    srv, tracks, tmp = _serve(tmp_path_factory, inject)
    try:
        res = bad_files_check(**_kw(srv, tracks, tmp), deadline_s=HANG_DEADLINE_S)
    finally:
        srv.stop()
    findings = bad_files_analysis.analyse(res, "release")
    # the reference lists exactly two unreadable files: the truncated FLAC and the vanished WAV
    assert _where(findings) == {(kind, "Error Handling", "play_normal bad_truncated_flac.flac"),
                                (kind, "Error Handling", "play_normal bad_vanished_wav.wav")}
    assert {f.key for f in findings} == {"bad_truncated_flac.flac", "bad_vanished_wav.wav"}
