"""How a Location reads where no code line is known: the route first, then a
file known to hold the defect, then where it was observed; and findings
written before the route field existed still load."""
from __future__ import annotations

import json

from analysis.model import Finding, Location, dump_findings, load_findings


def test_route_and_file_without_line_are_shown():
    assert Location(route="GET /api/albums/{album_id}/artwork", scenario="release").render() == \
        "GET /api/albums/{album_id}/artwork, scenario release"
    assert Location(file="instrument/reference/streaming.py", function="run_stream", scenario="slow-client").render() == \
        "instrument/reference/streaming.py (run_stream), scenario slow-client"
    assert Location(function="CORS", scenario="release").render() == "CORS, scenario release"
    assert Location(scenario="smoke", stream="s1", time_s=15.0).render() == "scenario smoke, stream s1, t=15.000 s"
    coded = Location(file="core/stream_protocol.py", line_start=122, function="safe_send_bytes", route="/ws")
    assert coded.render() == "core/stream_protocol.py:122 (safe_send_bytes)"  # a code line wins


def test_findings_round_trip_with_route_and_old_files_still_load():
    f = Finding(kind="api_server_error", title="t", severity="MEDIUM", dimension="Route Handlers", description="d",
                impact="i", suggested_fix="s", location=Location(route="POST /api/player/queue"), key="k")
    doc = json.loads(dump_findings([f]))
    assert doc["findings"][0]["location"]["route"] == "POST /api/player/queue"
    assert doc["findings"][0]["location_text"] == "POST /api/player/queue"
    back, _ = load_findings(json.dumps(doc))
    assert back[0].location.route == "POST /api/player/queue" and back[0].fingerprint == f.fingerprint
    del doc["findings"][0]["location"]["route"]  # a findings.json from before the field
    doc["findings"][0]["location"]["extra"] = 1  # or from a later version with a field this one lacks
    old, _ = load_findings(json.dumps(doc))
    assert old[0].location.route is None
