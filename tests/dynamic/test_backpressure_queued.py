"""Known answers for backpressure judged by what the server holds queued.

A server whose send() does not wait on a full socket (Auralis with uvicorn
0.38) or that renders ahead into an unbounded queue holds the track for a
reader that stopped reading; when the reader closes, the bytes are freed but
the allocator keeps the heap, so RSS never falls. The agent, inside the
target, reads the WebSocket transports' write buffers and the send queues
directly; those bytes are the primary evidence, RSS corroborates."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from analysis.dynamic import backpressure as a_backpressure
from instrument.dynamic.backpressure_check import backpressure
from instrument.targets import reference_target

from .agent_reference import agent_reference

SECONDS = 120.0
TRACK_MIB = SECONDS * 44100 * 2 * 4 / (1 << 20)
MIB = 1 << 20


def _held(transport_mib: float, queue_mib: float = 0.0, site: str | None = None) -> dict:
    return {"held_mib": transport_mib + queue_mib, "transport_mib": transport_mib, "queue_mib": queue_mib,
            "readings": 6, "transport_protocol": "uvicorn/protocols/websockets/websockets_sansio_impl.py",
            "queue_sites": [{"site": site, "queues": 2, "items": 40, "bytes": int(queue_mib * MIB)}] if site else []}


def _cycle(rss: tuple[float, float, float], held: dict, base_held: float = 0.0) -> dict:
    base, hold, rel = rss
    return {"rss_base_mib": [base] * 5, "rss_hold_mib": [hold] * 10, "rss_released_mib": [rel] * 5,
            "held_base": _held(base_held), "held_hold": held, "stalled": [{"binary_bytes": 307200}] * 2}


def _result(*cycles: dict) -> dict:
    return {"outcome": "done", "readers": 2, "target_kind": "auralis", "quiet": True,
            "track": {"name": "timecode", "duration_s": 90, "sample_rate": 44100, "channels": 2},
            "cycles": list(cycles)}


def _conn_held(per_conn: list[float], series: list[float]) -> dict:
    h = _held(sum(per_conn))
    h["per_connection_mib"] = sorted(per_conn, reverse=True)
    return h


def test_a_transport_buffer_past_its_bound_is_a_writer_that_does_not_wait():
    """Measured on Auralis c6812bfa with uvicorn 0.52.0 (whose sansio protocol
    never pauses the writer): one stalled reader's transport grew 0.58 ->
    3.64 MiB over the 6 s hold in both cycles, the app's own queue stayed
    empty; at fcb361ff (0.52.1) each transport sat at 0.15 MiB with the
    app's 4-frame queue full. Neither is near the 20 MiB queued limit."""
    series = [[0.9, 0.58, 0.58], [2.4, 1.29, 1.29], [3.9, 1.87, 1.87], [5.4, 3.04, 3.04], [6.0, 3.64, 3.64]]
    bad = _result(*[_cycle((1000, 1034, 1034), _conn_held([3.64, 0.0], [])) for _ in range(2)])
    for c in bad["cycles"]:
        c["held_series"] = series
    (f,), metrics = a_backpressure.analyse(bad, "release")
    assert f.kind == "no_backpressure" and f.figures["transport_max_mib"] == pytest.approx(3.64)
    assert f.figures["transport_growth_mib_per_s"] == pytest.approx(0.56, abs=0.05)
    assert f.location.file == "uvicorn/protocols/websockets/websockets_sansio_impl.py"
    assert "kept writing into their full sockets" in f.description
    assert metrics["backpressure_transport_max_mib"] == pytest.approx(3.64)
    good = _result(*[_cycle((1000, 1030, 1030), _conn_held([0.15, 0.15], [])) for _ in range(2)])
    for c in good["cycles"]:
        c["held_hold"]["queue_mib"] = 1.89
        c["held_hold"]["held_mib"] += 1.89
    found, metrics = a_backpressure.analyse(good, "release")
    assert found == [] and metrics["backpressure_transport_max_mib"] == pytest.approx(0.15)
    # one cycle past the bound is not enough: a real cost shows in every cycle
    once = _result(_cycle((1000, 1034, 1034), _conn_held([3.64], [])), _cycle((1000, 1001, 1001), _conn_held([0.1], [])))
    assert a_backpressure.analyse(once, "r")[0] == []


def test_bytes_held_in_transport_buffers_count_though_rss_never_falls():
    """The uvicorn 0.38 case: RSS rose 35.6 then 22.7 MiB and never fell; the
    transports held the track (2 x 30 MiB) both times."""
    r = _result(_cycle((1000, 1035.6, 1035.6), _held(60.0)), _cycle((1035.6, 1058.3, 1058.3), _held(58.0)))
    assert a_backpressure.held_per_reader(r) == 0  # the RSS-only judgement saw nothing
    found, metrics = a_backpressure.analyse(r, "release")
    assert [f.kind for f in found] == ["no_backpressure"]
    f = found[0]
    assert f.figures["queued_mib_per_reader"] == pytest.approx(29.0)
    assert metrics["backpressure_held_mib_per_reader"] == pytest.approx(29.0)
    assert metrics["backpressure_rss_rise_mib_per_reader"] == pytest.approx(11.35, abs=0.06)  # rounded to 0.1
    assert f.location.file == "uvicorn/protocols/websockets/websockets_sansio_impl.py"
    assert any("never" in e or "did not fall" in e for e in f.evidence)
    assert "never fell" in f.description


def test_bytes_in_the_servers_own_queue_are_located_at_its_creation_site():
    r = _result(_cycle((500, 620, 510), _held(0.1, 90.0, "core/stream.py:187")),
                _cycle((510, 625, 512), _held(0.1, 88.0, "core/stream.py:187")))
    (f,), _ = a_backpressure.analyse(r, "slow-client")
    assert (f.location.file, f.location.line_start) == ("core/stream.py", 187)
    assert f.figures["queued_mib_per_reader"] == pytest.approx(44.05)


def test_a_bounded_server_is_clean_even_when_rss_drifts_up():
    """The uvicorn 0.52.1 case: a frame or two per connection in the buffers
    and a 4-frame queue; RSS moving on its own is not the readers'."""
    r = _result(_cycle((1000, 1030, 1030), _held(0.5, 1.2, "core/stream.py:187")),
                _cycle((1030, 1031, 1031), _held(0.4, 1.2, "core/stream.py:187")))
    found, metrics = a_backpressure.analyse(r, "release")
    assert found == []
    assert metrics["backpressure_queued_mib_per_reader"] < 1.0


def test_without_the_agents_readings_the_rss_judgement_stands():
    r = _result(_cycle((1000, 1100, 1000), _held(0)), _cycle((1000, 1090, 1001), _held(0)))
    for c in r["cycles"]:
        c.pop("held_hold")
    found, metrics = a_backpressure.analyse(r, "s")
    assert [f.kind for f in found] == ["no_backpressure"] and "backpressure_queued_mib_per_reader" not in metrics


def _agent_check(tmp_path, inject: str) -> dict:
    """The reference under the real agent (as in a run), the real sampler,
    the real check."""
    run_dir = tmp_path / (inject or "clean")
    with agent_reference(run_dir, inject, ["sine"], SECONDS, {"MALLOC_ARENA_MAX": "1"}) as (base, tracks, proc):
        res = backpressure(base_url=base, run_dir=run_dir, tracks=tracks, compression=False,
                           target_kind="reference", hold_s=5.0, settle_s=1.0)
        json.dumps(res)
        assert res["outcome"] == "done", res
        assert proc.alive()
        return res


@pytest.mark.slow
def test_agent_measures_the_unbounded_queue_and_the_clean_server_holds_little(tmp_path):
    with ThreadPoolExecutor(2) as pool:  # side by side: each reads its own server
        clean_f, bad_f = pool.submit(_agent_check, tmp_path, ""), pool.submit(_agent_check, tmp_path, "unbounded-buffer")
        clean, bad = clean_f.result(), bad_f.result()
    found, metrics = a_backpressure.analyse(clean, "test")
    assert found == [], [f.description for f in found]
    assert all(c["held_hold"]["readings"] >= 3 for c in clean["cycles"])  # the agent did measure
    # a bounded server: its 4-frame queue and the socket buffers, well under a MiB or two per reader
    assert metrics["backpressure_queued_mib_per_reader"] < 5.0

    found, metrics = a_backpressure.analyse(bad, "test")
    assert [f.kind for f in found] == ["no_backpressure"]
    f = found[0]
    # the injection queues float32 bytes plus float64 work copies: ~3 tracks per stalled reader,
    # measured in the queue itself, independent of what the allocator does with RSS
    assert 2.5 * TRACK_MIB <= f.figures["queued_mib_per_reader"] <= 3.5 * TRACK_MIB, f.figures
    assert f.location.file == "streaming.py" and f.location.line_start
    src = (reference_target(frozenset()).app_dir / "instrument" / "reference" / "streaming.py").read_text()
    assert "asyncio.Queue(" in src.splitlines()[f.location.line_start - 1]
