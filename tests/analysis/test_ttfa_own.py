"""The gate's time to first audio is the target's own: each stream's TTFA
less the time the agent saw its loop wait for a CPU meanwhile. A stream the
machine held is not the target's latency; a target's own delay (a sleep
before the first chunk) has no CPU wait in it and stays whole."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis.client import analyse_client, waited_for_cpu_ms

T0 = 1_800_000_000.0


def _stream(rd: Path, sid: str, sent: float, ttfa_s: float) -> None:
    rows = [{"t": sent, "dir": "out", "kind": "play_enhanced", "msg": {"type": "play_enhanced", "data": {"track_id": 1}}}]
    rows += [{"t": sent + ttfa_s + 0.1 * i, "dir": "in", "kind": "binary", "bytes": 35280, "frame_offset": 4410 * i,
              "frames": 4410} for i in range(5)]
    d = rd / "streams" / sid
    d.mkdir(parents=True)
    (d / "meta.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "stream.json").write_text(json.dumps({"sample_rate": 44100, "request_t": sent}))


def _run(tmp_path: Path, stalls: list[dict], ttfas: list[float]) -> dict:
    rd = tmp_path / "run"
    rd.mkdir()
    (rd / "run.json").write_text(json.dumps({"scenario": "smoke", "status": "ok"}))
    for k, ttfa in enumerate(ttfas):
        _stream(rd, f"s{k:03d}", T0 + 10 * k, ttfa)
    (rd / "agent").mkdir()
    (rd / "agent" / "stalls.jsonl").write_text("".join(json.dumps(s) + "\n" for s in stalls))
    return analyse_client(rd)[1]


def test_the_machines_hold_on_the_loop_is_taken_out(tmp_path):
    # stream 0 waited 1.8 s, 1.2 s of it in a stall whose loop waited 1.0 s for a CPU
    stalls = [{"t": T0 + 0.3, "duration_ms": 1200.0, "runq_wait_ms": 1000.0, "cpu_ms": 50.0}]
    m = _run(tmp_path, stalls, [1.8])
    assert m["ttfa_p95_ms"] == pytest.approx(1800, abs=1)
    assert m["ttfa_own_p95_ms"] == pytest.approx(800, abs=1)


def test_a_targets_own_delay_stays_whole(tmp_path):
    # a 2 s sleep before the first chunk (slow-start): the loop was idle, not waiting for a CPU;
    # the other stream's stall lies outside this one's wait
    stalls = [{"t": T0 + 10.5, "duration_ms": 300.0, "runq_wait_ms": 280.0, "cpu_ms": 5.0}]
    m = _run(tmp_path, stalls, [2.0, 0.9])
    assert m["ttfa_own_p95_ms"] == pytest.approx(m["ttfa_p95_ms"] - 0.05 * 280, abs=1)  # p95 of [2000, 620]
    assert m["ttfa_own_p95_ms"] > 1900


def test_only_the_overlap_of_a_stall_counts():
    waits = [(10.0, 12.0, 1000.0)]  # 2 s stall, 1 s of it waiting for a CPU
    assert waited_for_cpu_ms(waits, 11.0, 20.0) == pytest.approx(500.0)
    assert waited_for_cpu_ms(waits, 0.0, 10.0) == 0.0
    assert waited_for_cpu_ms(waits, 0.0, 30.0) == pytest.approx(1000.0)


def test_no_agent_stalls_leave_the_figure_as_measured(tmp_path):
    m = _run(tmp_path, [], [0.3, 0.5])
    assert m["ttfa_own_p95_ms"] == pytest.approx(m["ttfa_p95_ms"])
