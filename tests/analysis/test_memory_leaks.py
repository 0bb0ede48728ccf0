"""Known answers for the leak judgement: steady growth per cycle is a leak at
its slope; a warm-up that levels off (the clean reference under mixed load)
is not, although a straight line through the whole run would call it one."""
from __future__ import annotations

import json

import numpy as np

from analysis.memory import LEAK_FLOOR_MIB_PER_100, MIB, _regress, analyse_memory


def _run(tmp_path, rss_mib_at_cycle):
    (tmp_path / "load").mkdir()
    (tmp_path / "run.json").write_text(json.dumps({"scenario": "release"}))
    rng = np.random.default_rng(1)
    cycles = np.arange(1, 201) * 0.15  # 200 cycles, one every 150 ms
    with open(tmp_path / "load" / "events.jsonl", "w") as f:
        for t in cycles:
            f.write(json.dumps({"t": float(t), "kind": "cycle_done"}) + "\n")
    ts = np.arange(0.0, 30.0, 0.1)
    with open(tmp_path / "samples.jsonl", "w") as f:
        for t in ts:
            n = np.searchsorted(cycles, t, side="right")
            rss = (300 + rss_mib_at_cycle(n) + rng.normal(0, 0.3)) * MIB
            f.write(json.dumps({"t": float(t), "rss": rss}) + "\n")
    return cycles, ts


def test_steady_growth_is_a_leak_at_its_slope(tmp_path):
    _run(tmp_path, lambda n: 1.0 * n)  # 1 MiB per cycle
    findings, metrics = analyse_memory(tmp_path)
    leak = [f for f in findings if f.kind == "rss_leak"]
    assert leak and 95 <= leak[0].figures["rss_per_100_cycles"] <= 105
    assert metrics["rss_growth_mb_per_100_cycles_low"] > 90  # the gate's figure: the whole run's lower bound


def test_warm_up_that_levels_off_is_not_a_leak(tmp_path):
    curve = lambda n: 30.0 * min(n, 60) / 60  # +30 MiB over the first 60 cycles, then flat  # noqa: E731
    cycles, ts = _run(tmp_path, curve)
    rss = np.array([json.loads(line)["rss"] for line in (tmp_path / "samples.jsonl").open()]) / MIB
    whole = _regress(cycles, ts, rss)
    assert whole["ci_low"] * 100 > LEAK_FLOOR_MIB_PER_100  # a line through it all would say "leak"
    findings, metrics = analyse_memory(tmp_path)
    assert not [f for f in findings if f.kind == "rss_leak"]
    # and the gate's figure says the same: the later half's growth, not the whole line's
    assert metrics["rss_growth_mb_per_100_cycles_low"] <= LEAK_FLOOR_MIB_PER_100 < whole["ci_low"] * 100
