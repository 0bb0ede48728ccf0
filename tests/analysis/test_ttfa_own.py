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


def _sampler(rd: Path, *, wait_ms: float, target_ticks: int, other_ticks: int) -> None:
    """cpu_threads.jsonl as the sampler writes it, every 100 ms from 0.5 s
    before stream 0's play to 3 s after: the executor thread 101 waits
    wait_ms per sample for a CPU over [T0, T0 + 1.9] and runs target_ticks;
    other processes run other_ticks (2 CPUs, 100 ticks a second)."""
    rows = [{"meta": True, "pid": 100, "clk_tck": 100, "ncpu": 2, "period_s": 0.1}]
    w = ticks = busy = 0.0
    for k in range(36):
        t = T0 - 0.5 + 0.1 * k
        rows.append({"t": t, "threads": {"100": ["python", 0], "101": ["python", int(ticks)]},
                     "waits": {"100": 0.0, "101": w}, "loadgen": 0, "busy": int(busy), "total": 20 * k})
        if T0 - 1e-6 <= t < T0 + 1.9 - 1e-6:
            w += wait_ms
            ticks += target_ticks
            busy += target_ticks + other_ticks
    (rd / "cpu_threads.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _slow_first_chunk(tmp_path: Path, **sampler):
    from analysis.severity import apply_severity_rules

    rd = tmp_path / "run"
    rd.mkdir()
    (rd / "run.json").write_text(json.dumps({"scenario": "smoke", "status": "ok"}))
    _stream(rd, "s000", T0, 1.9)
    (rd / "agent").mkdir()
    (rd / "agent" / "stalls.jsonl").write_text("")  # the loop never stalled: the render thread waited
    _sampler(rd, **sampler)
    findings, m = analyse_client(rd)
    [f] = [f for f in apply_severity_rules(findings, rd, m) if f.kind == "slow_time_to_first_audio"]
    return f, m


def test_a_first_chunk_rendered_behind_other_processes_is_the_machines(tmp_path):
    # the render thread waited 60 of every 100 ms while other processes ran 80% of the busy CPU:
    # 1.14 s of waits, 0.91 s of them the machine's; the loop never stalled
    f, m = _slow_first_chunk(tmp_path, wait_ms=60.0, target_ticks=4, other_ticks=16)
    assert m["ttfa_p95_ms"] == pytest.approx(1900, abs=1)
    assert m["ttfa_own_p95_ms"] == pytest.approx(1900 - 0.8 * 1140, abs=70)
    assert f.section == "environment" and "machine's delay" in f.evidence[-1]


def test_a_targets_threads_queueing_behind_each_other_are_its_own(tmp_path):
    # the same waits, but only the target's threads ran: its pool is larger than the machine
    f, m = _slow_first_chunk(tmp_path, wait_ms=60.0, target_ticks=20, other_ticks=0)
    assert m["ttfa_own_p95_ms"] == pytest.approx(1900, abs=1)
    assert f.section == "target" and f.severity == "MEDIUM"


def test_the_sampler_sees_a_process_wait_behind_others(tmp_path):
    """The real sampler on a real process that shares an oversubscribed
    machine with busy others: its run-queue waits are recorded and the
    machine's share of them is found."""
    import os
    import subprocess
    import sys
    import time

    from analysis.cpu_share import outside_delay
    from instrument.cpu_threads import ThreadCpuSampler

    if not os.path.exists("/proc/self/schedstat"):
        pytest.skip("no schedstat on this kernel")
    spin = [sys.executable, "-c", "import time\nt = time.time() + 3\nwhile time.time() < t: pass"]
    procs = [subprocess.Popen(spin) for _ in range((os.cpu_count() or 1) + 1)]
    try:
        sampler = ThreadCpuSampler(procs[0].pid, tmp_path / "cpu_threads.jsonl", period_s=0.05).start()
        t0 = time.time()
        time.sleep(1.2)
        t1 = time.time()
        sampler.stop()
    finally:
        for p in procs:
            p.kill()
            p.wait()
    delay = outside_delay(tmp_path)
    assert delay is not None and delay(t0 + 0.1, t1 - 0.1) > 50.0


@pytest.mark.parametrize("runq_ms, explained", [(1100.0, 1), (700.0, 0)])
def test_the_slow_ttfa_rule_takes_out_the_same_delay_the_gate_does(tmp_path, runq_ms, explained):
    """A 2.5 s first audio, 1.0 s over the slow threshold, with a 1.2 s
    stall inside it: the machine explains it when the loop waited 1.1 s of
    the stall for a CPU, not when it waited 0.7 s. The rule once counted a
    mostly-waiting stall's whole length (1.2 s either way), where the gate's
    own TTFA counts its wait: the two now share client.machine_delay_ms."""
    from analysis.severity import starved_ttfa

    stalls = [{"t": T0 + 0.5, "duration_ms": 1200.0, "runq_wait_ms": runq_ms, "cpu_ms": 50.0}]
    m = _run(tmp_path, stalls, [2.5])
    assert m["ttfa_own_p95_ms"] == pytest.approx(2500 - runq_ms, abs=1)
    assert starved_ttfa(tmp_path / "run") == (explained, 1, pytest.approx(runq_ms, abs=1))
