"""The overhead benchmark's arithmetic: paired cost ratios with a t interval,
and the guard that fails only when a whole interval lies beyond the budget."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def overhead():
    spec = importlib.util.spec_from_file_location("overhead_bench", ROOT / "benchmarks" / "overhead.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _runs(cpu, mbs, ttfa, p50, p95):
    return [{"cpu_s_per_gb": c, "mb_s": m, "ttfa_ms": t, "rest_p50": a, "rest_p95": b}
            for c, m, t, a, b in zip(cpu, mbs, ttfa, p50, p95)]


def test_ratios_are_paired_and_throughput_is_inverted(overhead):
    res = {"bare": _runs([10, 20], [100, 50], [500, 600], [2, 4], [5, 8]),
           "default": _runs([11, 22], [90, 45], [500, 600], [2, 4], [5, 8])}
    assert overhead.cost_ratios(res, "default", "cpu_s_per_gb") == pytest.approx([1.1, 1.1])
    assert overhead.cost_ratios(res, "default", "mb_s") == pytest.approx([100 / 90, 50 / 45])
    g, lo, hi = overhead.ratio_ci([1.1, 1.1, 1.1, 1.1])
    assert g == pytest.approx(1.1) and lo == pytest.approx(1.1) and hi == pytest.approx(1.1)
    g, lo, hi = overhead.ratio_ci([0.9, 1.1, 0.95, 1.05])
    assert lo < 1.0 < hi


def test_the_guard_fails_a_real_cost_and_not_noise(overhead):
    bare = _runs([10] * 4, [100] * 4, [500] * 4, [2.0] * 4, [5.0] * 4)
    costly = {"bare": bare, "default": _runs([10] * 4, [100] * 4, [500] * 4, [2.6, 2.7, 2.6, 2.68], [5.0] * 4)}
    assert [x.split(":")[0] for x in overhead.beyond_budget(costly)] == ["REST p50 ms"]
    noisy = {"bare": bare, "default": _runs([9.5, 10.6, 9.9, 10.3], [104, 96, 101, 99], [450, 560, 480, 530],
                                            [1.8, 2.3, 1.9, 2.2], [4.5, 5.6, 4.8, 5.3])}
    assert overhead.beyond_budget(noisy) == []
    clean = {"bare": bare, "default": bare}
    assert overhead.beyond_budget(clean) == []
