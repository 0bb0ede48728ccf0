"""The analysis's split of loop stalls: a stall whose stack samples find the
loop in the agent's own heartbeat was not caused by a callback of the target
(the thread waited for the GIL or a CPU); it is counted apart and becomes a
LOW finding only when it adds up. A stall inside the target's code stays a
loop_stall, and one mostly spent in the run queue stays the machine's."""
from __future__ import annotations

import json

from analysis.loop import analyse_loop

HEARTBEAT = [{"file": "/x/instrument/agent/__main__.py", "line": 172, "function": "main", "own": False},
             {"file": "/x/instrument/agent/watchdog.py", "line": 131, "function": "_heartbeat", "own": False}]
TARGET = [{"file": "/x/instrument/agent/__main__.py", "line": 172, "function": "main", "own": False},
          {"file": "/app/core/send.py", "line": 40, "function": "send_blocking", "own": True}]


def _stall(t: float, ms: float, frames: list, *, runq: float = 0.0, cpu: float = 10.0, loc=None) -> dict:
    return {"t": t, "duration_ms": ms, "location": loc, "stacks": [{"at_ms": 55.0, "frames": frames}],
            "gc_ms": 0.0, "cpu_ms": cpu, "runq_wait_ms": runq, "cpu_bound": False, "threshold_ms": 50.0}


def _write(tmp, stalls):
    (tmp / "agent").mkdir()
    (tmp / "agent" / "agent.json").write_text(json.dumps({"stall_threshold_ms": 50}))
    (tmp / "agent" / "stalls.jsonl").write_text("".join(json.dumps(s) + "\n" for s in stalls))


def test_one_heartbeat_delay_is_counted_not_reported(tmp_path):
    _write(tmp_path, [_stall(1.0, 98.3, HEARTBEAT, runq=45.7, cpu=19.2)])  # seen on CI: 47% run-queue wait
    findings, metrics = analyse_loop(tmp_path)
    assert findings == []
    assert metrics["loop_stall_count"] == 0 and metrics["loop_contention_stall_count"] == 1
    assert metrics["loop_contention_stall_total_ms"] == 98.3


def test_target_stalls_stay_stalls_and_many_delays_are_a_low_finding(tmp_path):
    loc = {"file": "core/send.py", "line": 40, "function": "send_blocking"}
    stalls = [_stall(float(i), 120.0, TARGET, loc=loc) for i in range(3)]
    stalls += [_stall(10.0 + i, 80.0, HEARTBEAT, runq=10.0) for i in range(6)]
    stalls += [_stall(30.0, 200.0, HEARTBEAT, runq=150.0)]  # mostly run queue: the machine's, first
    # a stall sampled once in the target and once in the heartbeat is the target's
    stalls += [{**_stall(40.0, 300.0, TARGET, loc=loc), "stacks": [{"frames": TARGET}, {"frames": HEARTBEAT}]}]
    _write(tmp_path, stalls)
    findings, metrics = analyse_loop(tmp_path)
    by = {f.kind: f for f in findings}
    assert set(by) == {"loop_stall", "loop_contention"}
    assert by["loop_stall"].figures["count"] == 4 and by["loop_stall"].location.function == "send_blocking"
    assert by["loop_contention"].severity == "LOW" and by["loop_contention"].figures["count"] == 6
    assert metrics["loop_host_stall_count"] == 1 and metrics["loop_contention_stall_count"] == 6


def test_a_starved_turn_is_contention_and_a_sleep_or_a_computation_is_a_stall(tmp_path):
    loc = {"file": "streaming.py", "line": 124, "function": "saturate_loop_turn"}
    busy = [{"file": "/app/streaming.py", "line": 124, "function": "saturate_loop_turn", "own": True}]
    stalls = [_stall(1.0, 169.3, busy, runq=73.4, cpu=11.7, loc=loc),  # seen in a full-suite run: an 8 ms turn
              _stall(2.0, 121.0, TARGET, runq=2.0, cpu=0.5, loc={**loc, "function": "send_blocking"}),  # a sleep
              _stall(3.0, 160.0, TARGET, runq=40.0, cpu=1.0, loc={**loc, "function": "send_blocking"}),  # late wake
              _stall(4.0, 90.0, TARGET, runq=10.0, cpu=80.0, loc={**loc, "function": "render_on_loop"})]  # computes
    _write(tmp_path, stalls)
    findings, metrics = analyse_loop(tmp_path)
    stalls_found = {f.location.function: f.figures["count"] for f in findings if f.kind == "loop_stall"}
    assert stalls_found == {"send_blocking": 2, "render_on_loop": 1}
    assert metrics["loop_contention_stall_count"] == 1 and metrics["loop_stall_count"] == 3



def _waiting(t: float, ms: float, calls: list, *, cpu: float = 1.0) -> dict:
    loc = {"file": "streaming.py", "line": 215, "function": "_frames"}
    frames = [{"file": "/app/streaming.py", "line": 215, "function": "_frames", "own": True}]
    return {**_stall(t, ms, frames, runq=3.0, cpu=cpu, loc=loc), "loop_tid": 100,
            "stacks": [{"at_ms": 55.0 + 30 * i, "frames": frames, "syscall": c} for i, c in enumerate(calls)]}


def _sampler(tmp, queued_ms: dict[float, float]) -> None:
    """cpu_threads.jsonl: every 0.1 s from t=0, the loop thread (100) never
    queued, a worker thread (101) queued queued_ms[t] ms in the 0.1 s before t."""
    rows, total = [{"meta": True, "pid": 100, "clk_tck": 100, "ncpu": 2, "period_s": 0.1}], 0.0
    for k in range(0, 120):
        t = round(k * 0.1, 1)
        total += queued_ms.get(t, 0.0)
        rows.append({"t": t, "threads": {"100": ["python", 0], "101": ["python", 0]},
                     "waits": {"100": 0.0, "101": total}, "busy": 0, "total": 0})
    (tmp / "cpu_threads.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_a_loop_waiting_on_a_starved_threads_gil_is_the_machines(tmp_path):
    # the worker thread waited for a CPU 95 ms in each 0.1 s from 1.0 s to 2.0 s, and at 5.1-5.4 s
    _sampler(tmp_path, {**{round(1.0 + k / 10, 1): 95.0 for k in range(1, 11)},
                        **{round(5.0 + k / 10, 1): 95.0 for k in range(1, 5)}})
    _write(tmp_path, [
        # seen on CI: 156 ms "in" a generator's yield, the loop neither computing nor queued
        _waiting(1.2, 156.4, ["futex", "futex"]),
        # the loop slept: the target's stall, whoever else the machine starved
        _waiting(1.5, 156.4, ["clock_nanosleep"]),
        # a sample in a sleep, then a wait for the GIL: the sleep's
        _waiting(1.7, 156.4, ["clock_nanosleep", "futex"]),
        # a futex wait while no other thread queued: the target's (its lock, its GIL-holding thread)
        _waiting(3.0, 156.4, ["futex"]),
        # the loop computed: its own turn
        _waiting(5.1, 156.4, ["futex"], cpu=120.0),
        # a run from before the readings: as before
        _waiting(5.2, 156.4, [None]),
    ])
    findings, metrics = analyse_loop(tmp_path)
    assert metrics["loop_host_proxy_stall_count"] == 1 and metrics["loop_host_stall_count"] == 1
    assert metrics["loop_stall_count"] == 5
    stall = next(f for f in findings if f.kind == "loop_stall")
    assert stall.figures["count"] == 5 and stall.location.function == "_frames"
    assert any("clock_nanosleep 2x" in e and "futex 3x" in e for e in stall.evidence), stall.evidence


def test_without_the_samplers_readings_a_futex_wait_stays_the_targets(tmp_path):
    _write(tmp_path, [_waiting(1.2, 156.4, ["futex"])])
    findings, metrics = analyse_loop(tmp_path)
    assert metrics["loop_stall_count"] == 1 and metrics["loop_host_proxy_stall_count"] == 0


def test_a_gil_held_by_another_threads_c_call_is_recorded_and_is_contention(tmp_path):
    """The watchdog cannot run while another thread's C call holds the GIL,
    and when the call lets go the loop often takes the GIL first and beats:
    the heartbeat records that late beat itself. Every hold is a stall on
    record (seen by the watchdog, or by the heartbeat with no stack), and
    none is a line of the target's."""
    from .starved_loop import run

    stalls = run(tmp_path, "target-gil", 3.0)
    # ~200 ms holds every ~0.5 s for 3 s, after the calibration's own
    assert len(stalls) >= 4, stalls
    assert all(s["duration_ms"] >= 50 for s in stalls)
    findings, metrics = analyse_loop(tmp_path)
    assert not [f for f in findings if f.kind == "loop_stall"], [(f.location.render(), f.evidence) for f in findings]
    assert metrics["loop_contention_stall_count"] + metrics["loop_host_stall_count"] == len(stalls)
