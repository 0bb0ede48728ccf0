"""Auralis's boundary signatures end to end on the reference backend: the
pre-echo and fade-in-dip injections are each one named finding per path and
nothing else audio; the clean reference gives none (the clean smoke test in
test_run_reference.py asserts no audio finding at all)."""
from __future__ import annotations

import pytest

from analysis.model import load_findings

from .helpers import leftovers, run_cli

pytestmark = pytest.mark.slow

AUDIO = ("Chunked Processing", "Processing Engine")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = {}
    for inj in ("pre-echo", "fade-in-dip"):
        d = tmp_path_factory.mktemp("sig") / inj
        # 30 s tracks: boundaries at 15 s (normal) and 15, 25 s (enhanced)
        r = run_cli("--scenario", "smoke", "--duration", "10", "--track-seconds", "30", "--inject", inj,
                    "--out", str(d))
        out[inj] = (r, d, load_findings((d / "findings.json").read_text())[0])
    return out


@pytest.mark.parametrize("inj,kind", [("pre-echo", "pre_echo"), ("fade-in-dip", "fade_in_dip")])
def test_signature_is_one_finding_per_path_and_nothing_else(runs, inj, kind):
    r, d, findings = runs[inj]
    assert r.returncode == 1, r.stdout + r.stderr
    audio = [f for f in findings if f.dimension in AUDIO]
    assert sorted((f.kind, f.title) for f in audio) == sorted(
        (kind, f"{t} at chunk boundaries ({p} path)") for p in ("enhanced", "normal")
        for t in [{"pre_echo": "Pre-echo", "fade_in_dip": "Fade-in dip"}[kind]]), [f.title for f in audio]
    for f in audio:
        assert f.severity == "HIGH"
        assert "pattern: every-boundary" in f.evidence[0]
        if kind == "pre_echo":
            assert f.figures["worst_magnitude"] == pytest.approx(200.0, abs=0.1)  # ms replayed
        else:
            assert f.figures["worst_magnitude"] >= 20.0  # dB deep
    assert leftovers(d) == []
