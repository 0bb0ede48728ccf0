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


def _streams_run(tmp_path, held_mib_per_conn: float | None):
    """Streams open in waves of 1, 2, 3 at once, RSS rising 56 MiB with each
    (the clean reference's track-switch figure), and the agent's readings of
    what each connection held (None: no readings)."""
    tmp_path.mkdir()
    (tmp_path / "run.json").write_text(json.dumps({"scenario": "track-switch"}))
    spans = [(0, 10), (2, 8), (4, 6), (12, 20), (14, 18)]  # 1-3 streams open at once
    for i, (a, b) in enumerate(spans):
        d = tmp_path / "streams" / f"s{i}"
        d.mkdir(parents=True)
        (d / "meta.jsonl").write_text(json.dumps({"t": float(a)}) + "\n" + json.dumps({"t": float(b)}) + "\n")
        (d / "stream.json").write_text(json.dumps({"closed_t": float(b)}))
    rng = np.random.default_rng(2)
    ts = np.arange(0.0, 22.0, 0.25)
    active = [int(sum(a <= t <= b for a, b in spans)) for t in ts]
    (tmp_path / "samples.jsonl").write_text("".join(
        json.dumps({"t": float(t), "rss": (100 + 56 * n + rng.normal(0, 3)) * MIB}) + "\n" for t, n in zip(ts, active)))
    if held_mib_per_conn is not None:
        (tmp_path / "agent").mkdir()
        (tmp_path / "agent" / "sendbuffers.jsonl").write_text("".join(
            json.dumps({"t": float(t), "ws_connections": n, "held_bytes": int(held_mib_per_conn * n * MIB)}) + "\n"
            for t, n in zip(ts[::2], active[::2])))


def test_rss_per_open_stream_is_buffering_only_where_the_connections_hold_it(tmp_path):
    # the connections held the audio (a whole track each, ~28 MiB): per-stream buffering
    _streams_run(tmp_path / "buffered", 28.0)
    findings, metrics = analyse_memory(tmp_path / "buffered")
    [f] = [f for f in findings if f.kind == "memory_per_stream"]
    assert 50 <= f.figures["mib_per_stream"] <= 62 and f.severity == "MEDIUM"
    assert metrics["held_per_active_stream_max_mb"] == 28.0
    # the same RSS, with under 1 MiB held per connection: a working set or a cache, not buffers
    _streams_run(tmp_path / "working-set", 0.3)
    findings, metrics = analyse_memory(tmp_path / "working-set")
    assert not [f for f in findings if f.kind == "memory_per_stream"]
    assert 50 <= metrics["rss_per_active_stream_mb"] <= 62 and metrics["held_per_active_stream_max_mb"] == 0.3
    # no readings of what connections hold: RSS alone decides, as before
    _streams_run(tmp_path / "unmeasured", None)
    findings, _ = analyse_memory(tmp_path / "unmeasured")
    assert [f.kind for f in findings if f.kind == "memory_per_stream"] == ["memory_per_stream"]
