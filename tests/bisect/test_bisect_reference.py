"""Known answers, end to end: `python -m instrument.bisect` over a throwaway
git repository laid out like an Auralis checkout whose backend is the
reference backend with an injection read from a file of the commit. Every
step is a real, short earshot run (real uvicorn, real WebSockets, real
Locust) of the `smoke` scenario.

History (first parent, oldest first):
  0 clean           --good
  1 clean
  2 chunk-timeout   the known answer: every enhanced stream now errors
  3 unstartable     imports a module that does not exist (skipped, reason named)
  4 chunk-timeout   the import fixed
  5 chunk-timeout   --bad
The search tests 3 first (skip), then 2 (bad), then 1 (good): 4 full runs
with the two pre-checks, and one start that fails at once.

A second history has a commit whose injection fires in odd-numbered runs
only: with --repeat 2 its runs disagree and the step is reported uncertain.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .repo import BACKEND, git, make_repo, repo_state

ROOT = Path(__file__).resolve().parents[2]

# The backend of every commit: the reference backend, with the injections the
# commit's inject.txt names. A `flaky` file makes them fire only in runs whose
# directory ends in an odd number (the bisect names them <commit>-r1, -r2, ...):
# deterministic, per run, and different between the repeats of one step.
MAIN_PY = '''\
import os
from pathlib import Path

here = Path(__file__).resolve().parent
inject = (here / "inject.txt").read_text().strip()
if (here / "flaky").exists() and int(Path(os.environ["HOME"]).parent.name[-1]) % 2 == 0:
    inject = ""
os.environ["EARSHOT_REF_INJECT"] = inject
from instrument.reference.app import app  # noqa: E402
'''
BROKEN_PY = "import auralis_module_that_was_never_committed  # noqa: F401\n" + MAIN_PY
RUN = ["--scenario", "smoke", "--duration", "10", "--track-seconds", "20", "--startup-timeout", "40"]


def bisect_cli(repo: Path, good: str, bad: str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "instrument.bisect", "--auralis-root", str(repo), "--auralis-python",
            sys.executable, "--good", good, "--bad", bad, "--out", str(out), "--finding", "stream_error", *RUN,
            *extra]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=900)


def _files(inject: str, main: str = MAIN_PY, flaky: bool | None = None) -> dict[str, str | None]:
    files: dict[str, str | None] = {str(BACKEND / "main.py"): main, str(BACKEND / "inject.txt"): inject + "\n"}
    if flaky is not None:
        files[str(BACKEND / "flaky")] = "" if flaky else None
    return files


@pytest.fixture(scope="module")
def bisected(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bisect")
    repo = tmp / "Auralis"
    shas = make_repo(repo, [
        ("backend: reference, clean", _files("")),
        ("docs: a clean change", {"README.md": "auralis\n"}),
        ("engine: chunk processing with a timeout", _files("chunk-timeout")),
        ("deps: import a module not committed", _files("chunk-timeout", BROKEN_PY)),
        ("deps: fix the import", _files("chunk-timeout")),
        ("ui: unrelated", {"README.md": "auralis 2\n"}),
    ])
    (repo / "scratch.txt").write_text("the user's untracked work\n")
    (repo / "README.md").write_text("edited, unstaged\n")
    before = repo_state(repo)
    out = tmp / "bisect"
    r = bisect_cli(repo, shas[0], shas[5], out)
    return {"r": r, "shas": shas, "out": out, "before": before, "after": repo_state(repo),
            "doc": json.loads((out / "bisect.json").read_text()) if (out / "bisect.json").exists() else {}}


@pytest.mark.slow
def test_names_the_commit_that_switched_the_injection_on(bisected):
    r, shas, doc = bisected["r"], bisected["shas"], bisected["doc"]
    assert r.returncode == 0, r.stdout + r.stderr
    res = doc["result"]
    assert res["status"] == "found"
    assert res["first_bad"]["commit"] == shas[2]
    assert res["first_bad"]["subject"] == "engine: chunk processing with a timeout"
    assert res["last_good"]["commit"] == shas[1]
    assert any("stream_error" in e and "HIGH" in e for e in res["first_bad"]["evidence"])
    assert any("timed out on chunk" in e for e in res["first_bad"]["evidence"])
    assert res["last_good"]["evidence"][0].startswith("no stream_error finding")
    assert res["last_good"]["evidence"][-1] == "last exception in target.log: none"
    assert f"first bad commit: {shas[2]}" in r.stdout


@pytest.mark.slow
def test_unstartable_commit_is_skipped_with_its_reason(bisected):
    step = next(s for s in bisected["doc"]["steps"] if s["commit"] == bisected["shas"][3])
    assert step["verdict"] == "skip"
    assert "missing module 'auralis_module_that_was_never_committed'" in step["reason"]
    assert "auralis-web/backend/main.py:1" in step["reason"]
    assert len(step["runs"]) == 1


@pytest.mark.slow
def test_every_tested_commit_is_in_the_table_with_its_run(bisected):
    out, doc, shas = bisected["out"], bisected["doc"], bisected["shas"]
    assert [s["commit"] for s in doc["steps"]] == [shas[0], shas[5], shas[3], shas[2], shas[1]]
    md = (out / "bisect.md").read_text()
    for s in doc["steps"]:
        assert s["short"] in md and s["runs"][0]["dir"] in md
        assert (out / s["runs"][0]["dir"] / "run.json").exists()
        assert s["wall_s"] > 0
    assert str(out.parent) not in md


@pytest.mark.slow
def test_the_users_checkout_is_untouched(bisected):
    assert bisected["after"] == bisected["before"]
    assert not any((bisected["out"] / "worktrees").iterdir())


@pytest.mark.slow
def test_an_injection_that_fires_in_some_runs_is_uncertain(tmp_path):
    repo = tmp_path / "Auralis"
    shas = make_repo(repo, [
        ("clean", _files("", flaky=False)),
        ("sometimes", _files("chunk-timeout", flaky=True)),
        ("always", _files("chunk-timeout", flaky=False)),
    ])
    out = tmp_path / "bisect"
    r = bisect_cli(repo, shas[0], shas[2], out, "--repeat", "2")
    assert r.returncode == 1, r.stdout + r.stderr
    doc = json.loads((out / "bisect.json").read_text())
    step = next(s for s in doc["steps"] if s["commit"] == shas[1])
    assert step["verdict"] == "uncertain"
    assert [x["verdict"] for x in step["runs"]] == ["bad", "good"]
    assert doc["result"]["status"] == "ambiguous"
    assert [c["commit"] for c in doc["result"]["candidates"]] == shas[1:]
    assert "uncertain" in (out / "bisect.md").read_text()
