"""The loop's busy fraction is the load's: each per-second record counts by
the share of its second the load ran in, so a second of target start-up
(imports, warm-up) just before the load does not decide a short run's mean."""
from __future__ import annotations

import json

from analysis.loop import analyse_loop

T0 = 1_000_000.0


def lag_run(tmp_path, busy, window, trace_memory=False):
    d = tmp_path / "run"
    (d / "agent").mkdir(parents=True)
    (d / "agent" / "agent.json").write_text(json.dumps({"stall_threshold_ms": 50.0}))
    (d / "run.json").write_text(json.dumps({"scenario": "smoke", "load_window": [T0 + window[0], T0 + window[1]],
                                            "options": {"trace_memory": trace_memory}}))
    with open(d / "agent" / "lag.jsonl", "w") as f:
        for i, b in enumerate(busy, start=1):  # record i covers [T0 + i - 1, T0 + i]
            f.write(json.dumps({"t": T0 + i, "busy_fraction": b, "p50_ms": 0.1, "p90_ms": 0.2, "p99_ms": 1.0,
                                "max_ms": 1.0}) + "\n")
    return d


def test_a_start_up_second_counts_by_its_overlap_with_the_load(tmp_path):
    # second 1 is 80% start-up at 0.75 busy; the load (from 0.8 s to 3.0 s) keeps the loop 5% busy
    _, m = analyse_loop(lag_run(tmp_path, [0.75, 0.05, 0.05], (0.8, 3.0)))
    expect = (0.2 * 0.75 + 2 * 0.05) / 2.2
    assert abs(m["loop_busy_fraction"] - round(expect, 4)) < 1e-4, m
    assert m["loop_busy_fraction_max_s"] == 0.05  # the busiest second the load mostly ran in
    # counted whole, the same records read (0.75 + 0.05 + 0.05) / 3 = 0.283


def test_a_busy_loaded_second_still_counts_whole(tmp_path):
    _, m = analyse_loop(lag_run(tmp_path, [0.05, 0.9, 0.9, 0.05], (1.0, 3.0)))
    assert m["loop_busy_fraction"] == 0.9 and m["loop_busy_fraction_max_s"] == 0.9


def test_without_a_window_every_second_counts(tmp_path):
    d = lag_run(tmp_path, [0.2, 0.4], (0, 0))
    run = json.loads((d / "run.json").read_text())
    run.pop("load_window")
    (d / "run.json").write_text(json.dumps(run))
    _, m = analyse_loop(d)
    assert abs(m["loop_busy_fraction"] - 0.3) < 1e-9
