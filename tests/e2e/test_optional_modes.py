"""The tool's optional modes cost the target something, but nothing they do
is blamed on it: a clean `smoke` on the reference backend exits 0 with each
of --monitor, --profile pyinstrument, --profile yappi and --trace-memory, and
run.json says what the agent's own threads cost."""
from __future__ import annotations

import pytest

from analysis.model import load_findings

from .helpers import leftovers, run_cli, run_json

pytestmark = pytest.mark.slow

MODES = {
    "monitor": ("--monitor",),
    "pyinstrument": ("--profile", "pyinstrument"),
    "yappi": ("--profile", "yappi"),
    "trace-memory": ("--trace-memory",),
}


@pytest.fixture(scope="module", params=list(MODES))
def mode_run(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param) / "run"
    r = run_cli("--scenario", "smoke", "--duration", "12", *MODES[request.param], "--out", str(out))
    return request.param, out, r


def test_a_clean_run_passes_in_each_optional_mode(mode_run):
    mode, out, r = mode_run
    findings = load_findings((out / "findings.json").read_text())[0]
    loud = [(f.severity, f.kind, f.title, f.location.render()) for f in findings if f.severity in ("CRITICAL", "HIGH")]
    assert r.returncode == 0, (mode, loud, r.stdout[-2000:], r.stderr[-2000:])
    assert not [f for f in findings if f.kind == "loop_stall"], [f.evidence for f in findings if f.kind == "loop_stall"]
    assert leftovers(out) == []


def test_tracemallocs_own_slowdown_is_measured_in_the_target(mode_run):
    import json
    mode, out, _ = mode_run
    slowdown = json.loads((out / "agent" / "agent.json").read_text()).get("tracemalloc_slowdown")
    if mode == "trace-memory":
        assert slowdown is not None and slowdown > 1.5, slowdown
    else:
        assert slowdown is None, (mode, slowdown)


def test_the_agents_own_cpu_is_recorded_and_reported(mode_run):
    mode, out, _ = mode_run
    cost = run_json(out).get("instrumentation") or {}
    assert cost.get("process_cpu_s", 0) > 0, cost
    assert cost.get("agent_cpu_pct") is not None and 0 <= cost["agent_cpu_pct"] < 100, cost
    assert "earshot-watchdog" in cost.get("threads", {}), cost
    assert "of the target's CPU" in (out / "report.md").read_text()


def test_only_the_slowing_mode_leaves_speed_unjudged(mode_run):
    import json
    mode, out, _ = mode_run
    rules = json.loads((out / "gate.json").read_text())["rules"]
    unjudged = {r["expr"] for r in rules if r["status"] == "not judged"}
    if mode == "trace-memory":  # tracemalloc's hook on every allocation: the figures are ours
        assert "loop_busy_fraction < 0.5" in unjudged and "ttfa_own_p95_ms < 1500" in unjudged, unjudged
        assert not any("rss_" in e or "findings." in e for e in unjudged), unjudged
    else:
        assert unjudged == set(), (mode, unjudged)
