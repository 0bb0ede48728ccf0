"""Known answers for the in-process agent on the reference backend: an
injected blocking call is found at its own file and line, an injected leak
is measured at the injected slope, injected saturation names its frame; the
clean backend reports none of them."""
from __future__ import annotations

import inspect

import pytest

from analysis.model import load_findings
from instrument.reference import streaming

from .helpers import concurrent_tracks_clean, injection_run, leftovers, run_cli

pytestmark = pytest.mark.slow


def findings_of(run_dir):
    return load_findings((run_dir / "findings.json").read_text())[0]


def sleep_line() -> int:
    lines, first = inspect.getsourcelines(streaming.send_chunk_blocking)
    return first + next(i for i, l in enumerate(lines) if "time.sleep" in l)


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory, worker_id):
    # test_scenarios.py asserts its scenario checks on this same run
    out, r = concurrent_tracks_clean(tmp_path_factory, worker_id)
    assert "VERDICT" in r.stdout, r.stdout + r.stderr
    return out


def test_clean_backend_has_no_stall_leak_or_saturation(clean_run):
    kinds = {f.kind for f in findings_of(clean_run)}
    assert not kinds & {"loop_stall", "loop_saturation", "rss_leak", "tasks_leak"}, kinds
    assert leftovers(clean_run) == []


def test_blocking_send_is_attributed_to_its_file_and_line(tmp_path_factory, worker_id):
    # the run test_one_finding_per_injection.py checks too: blocking-send with
    # a boundary injection, which acts on the audio and not on the loop
    out, r = injection_run(tmp_path_factory, worker_id, "repeat+blocking")
    assert "VERDICT: FAIL" in r.stdout, r.stdout + r.stderr
    stalls = [f for f in findings_of(out) if f.kind == "loop_stall"]
    assert stalls, "no stall finding"
    top = stalls[0]
    assert top.location.file == "streaming.py"
    assert top.location.function == "send_chunk_blocking"
    assert top.location.line_start == sleep_line()
    assert 100 <= top.figures["p50_ms"] <= 400  # the injected sleep is 120 ms
    assert top.figures["cpu_bound"] == 0  # a sleep is waiting, not computing


def test_leak_on_disconnect_slope_within_25_percent(tmp_path):
    out = tmp_path / "run"
    # The measurement's two noise sources, held still: normal-path drops only
    # (enhanced renders swing RSS by 100-250 MiB between samples: 95% CI +-25
    # per 100 cycles, +-10 without), and a fixed mmap threshold (glibc raises
    # it after big frees, each leaked MiB then lands in the heap and pins the
    # freed memory around it: slopes of 103-129 for the injected 100; now
    # 99.8 [90.6, 109.1] and 98.5 [88.3, 108.7]).
    # 18 s, not 12: the finding also needs the growth in the later half of the
    # cycles (the warm-up guard), and a host the suite's other worker starves
    # ran a 12 s storm to 131-170 cycles, whose later half (18-28 RSS samples)
    # read 0.04 and 0.5 MiB/cycle for the injected 1 (the suite failed once on
    # the first); 18 s under two CPU hogs: 268 cycles, later half 0.98 [0.77, 1.20]
    r = run_cli("--scenario", "disconnect-storm", "--duration", "18", "--inject", "leak-on-disconnect",
                "--scenario-opt", "disconnect_enhanced=false", "--out", str(out),
                env={"MALLOC_MMAP_THRESHOLD_": "131072"})
    assert "VERDICT" in r.stdout, r.stdout + r.stderr
    leak = [f for f in findings_of(out) if f.kind == "rss_leak"]
    assert leak, [f.kind for f in findings_of(out)]
    slope = leak[0].figures["rss_per_100_cycles"]  # MiB per 100 cycles; injected: 1 MiB per cycle
    assert 75 <= slope <= 125, slope


def test_saturation_names_the_busy_frame_and_no_stall(tmp_path):
    out = tmp_path / "run"
    # the recovery check alone after the load: the backpressure check would
    # wait out its two 30 s quiet timeouts on a loop the injection keeps busy
    r = run_cli("--scenario", "slow-client", "--duration", "12", "--inject", "loop-saturation", "--checks", "recovery",
                "--out", str(out))
    assert "VERDICT" in r.stdout, r.stdout + r.stderr
    found = findings_of(out)
    sat = [f for f in found if f.kind == "loop_saturation"]
    assert sat, [f.kind for f in found]
    assert sat[0].location.function == "saturate_loop_turn"
    assert not [f for f in found if f.kind == "loop_stall" and f.location.function == "saturate_loop_turn"]
