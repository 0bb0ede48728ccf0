"""Who took the CPU during host stalls: per-thread CPU deltas over the stall
windows name the target's own pools, or the load generator and the machine."""
from __future__ import annotations

import json

from analysis.cpu_share import pool_of, who_took_the_cpu


def _write(tmp_path, worker_ticks_per_sample: int, loadgen_ticks: int, other_ticks: int):
    (tmp_path / "agent").mkdir()
    (tmp_path / "agent" / "threads.jsonl").write_text(json.dumps(
        {"t": 0, "names": {"100": "MainThread", "101": "ThreadPoolExecutor-0_0", "102": "ThreadPoolExecutor-0_1"}}) + "\n")
    rows = [{"meta": True, "pid": 100, "clk_tck": 100, "ncpu": 2, "period_s": 0.1}]
    w = lg = busy = 0
    for i in range(40):  # 4 s sampled every 100 ms
        rows.append({"t": 1000.0 + i * 0.1, "threads": {"100": ["python", i // 10], "101": ["python", w],
                                                        "102": ["python", w]},
                     "loadgen": lg, "busy": busy, "total": i * 20})
        w += worker_ticks_per_sample
        lg += loadgen_ticks
        busy += 2 * worker_ticks_per_sample + loadgen_ticks + other_ticks
    (tmp_path / "cpu_threads.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    # ten 150 ms stalls in which the loop thread waited for a CPU
    return [{"t": 1000.25 + k * 0.3, "duration_ms": 150.0, "runq_wait_ms": 140.0} for k in range(10)]


def test_own_worker_pool_taking_the_cores_is_the_targets_finding(tmp_path):
    stalls = _write(tmp_path, worker_ticks_per_sample=9, loadgen_ticks=1, other_ticks=0)
    [f], m = who_took_the_cpu(tmp_path, stalls)
    assert f.kind == "loop_starved_by_own_threads" and f.section == "target"
    assert "ThreadPoolExecutor" in f.title and "ThreadPoolExecutor-0_1" in f.evidence[1]
    assert m["host_stall_cpu_target_threads_ms"] > 5 * m["host_stall_cpu_loadgen_ms"] > 0


def test_the_load_generator_and_others_taking_the_cores_is_the_environment(tmp_path):
    stalls = _write(tmp_path, worker_ticks_per_sample=0, loadgen_ticks=8, other_ticks=8)
    [f], m = who_took_the_cpu(tmp_path, stalls)
    assert f.kind == "loop_starved_by_host" and f.section == "environment" and not f.counts_against_gate
    assert m["host_stall_cpu_target_threads_ms"] == 0 and m["host_stall_cpu_other_ms"] > 0


def test_no_sampler_file_no_finding(tmp_path):
    assert who_took_the_cpu(tmp_path, [{"t": 1.0, "duration_ms": 900.0}]) == ([], {})


def test_pool_names():
    assert pool_of("ThreadPoolExecutor-2_3") == "ThreadPoolExecutor" and pool_of("asyncio_0") == "asyncio"
