"""Issue 7's "done when": a run of the reference backend with several
injections produces every format, and publishing it to the loopback GitHub
twice files each finding once."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reports.context import load_context
from reports.github import GitHub
from reports.publish import publish

from .fake_github import TOKEN, FakeGitHub

ROOT = Path(__file__).resolve().parents[2]
# Two real injections whose defects the default gate fails on: a repeated
# 5 s overlap (HIGH audio finding) and a blocked event loop (stalls over 100 ms).
INJECTED = ["repeat-overlap", "blocking-send"]


def test_injected_names_exist():
    from instrument.reference.injections import INJECTIONS

    assert set(INJECTED) <= set(INJECTIONS), set(INJECTED) - set(INJECTIONS)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("instrument") is None or not (ROOT / "instrument" / "reference").is_dir(),
                    reason="the reference backend (instrument/reference) is not in this tree yet")
def test_reference_run_with_injections_produces_every_format_and_publishes_once(tmp_path):
    out = tmp_path / "run"
    inj = INJECTED
    env = {**os.environ, "HOME": str(tmp_path), "TMPDIR": str(tmp_path)}
    r = subprocess.run(
        [sys.executable, "-m", "instrument.run", "--scenario", "smoke", "--inject", ",".join(inj),
         "--duration", "12", "--out", str(out), "--quiet"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=240,
    )
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-2000:]  # defects injected: the gate must FAIL
    assert r.stdout.strip().splitlines()[-1].startswith("VERDICT: FAIL")
    ctx = load_context(out)
    assert {f.kind for f in ctx.findings} >= {"repeated_audio", "loop_stall"}, [f.kind for f in ctx.findings]
    for name in ["report.md", "report.html", "results.sarif", f"audit/AUDIT_BACKEND_{ctx.date}.md"]:
        assert (out / name).is_file(), name
    if (out / "gate.json").exists():
        assert (out / "junit.xml").is_file()
    html = (out / "report.html").read_text()
    assert f"<h1>{ctx.verdict().verdict}</h1>" in html
    with FakeGitHub() as gh:
        first = publish(ctx, GitHub(gh.repo, TOKEN, api_url=gh.url, sleep=lambda s: None), log=lambda s: None)
        assert first.exit_code == 0 and first.created == len(ctx.findings)
        second = publish(load_context(out), GitHub(gh.repo, TOKEN, api_url=gh.url, sleep=lambda s: None), log=lambda s: None)
        assert second.created == 0 and len(gh.created()) == len(ctx.findings)
