"""A defect Auralis shipped, found at the commit before its fix and not at the
fix: 037eb094 "trim the first chunk on normal-path seek instead of replaying
it (#4560)". Its parent streams a positioned play_normal from the start of
the chunk the position falls in (15 s chunks: asked 80.54 s, audio from
75.0 s). Runs only where AURALIS_ROOT is a git checkout that has the commit;
both commits are checked out into our own scratch worktrees (the bisect's),
the user's checkout is not touched."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from instrument.bisect.gitrepo import GitError, Worktree, resolve, toplevel

from .conftest import AURALIS_PYTHON, AURALIS_ROOT

ROOT = Path(__file__).resolve().parents[2]
FIX = "037eb094"
CHUNK_S = 15.0  # the normal path's chunks at these commits (read from the stream by the tool itself)


def _repo() -> Path:
    try:
        repo = toplevel(Path(AURALIS_ROOT))
        resolve(repo, f"{FIX}^1")
    except (GitError, OSError, TypeError) as e:
        pytest.skip(f"AURALIS_ROOT has no commit {FIX} and its parent: {e}")
    return repo


def _seek_storm(repo: Path, rev: str, tmp: Path) -> list[dict]:
    sha = resolve(repo, rev)
    with Worktree(repo, sha, tmp / f"wt-{sha[:8]}", ["auralis", "auralis-web/backend"]) as wt:
        out = tmp / f"run-{sha[:8]}"
        r = subprocess.run([sys.executable, "-m", "instrument.run", "--target", "auralis", "--auralis-root", str(wt),
                            "--auralis-python", AURALIS_PYTHON, "--auralis-dsp-standin", "--scenario", "seek-storm",
                            "--tracks", "timecode", "--out", str(out), "--quiet", "--no-gate"],
                           cwd=ROOT, capture_output=True, text=True, timeout=900)
        assert "VERDICT" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
    found = json.loads((out / "findings.json").read_text())
    return found["findings"] if isinstance(found, dict) else found


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    repo = _repo()
    tmp = tmp_path_factory.mktemp("history")
    return _seek_storm(repo, f"{FIX}^1", tmp), _seek_storm(repo, FIX, tmp)


def _normal_position_errors(findings: list[dict]) -> list[dict]:
    return [f for f in findings if f["kind"] == "position_error" and f["title"].endswith("(normal path)")]


def test_the_parent_replays_from_the_chunk_start(history):
    parent, _ = history
    (f,) = _normal_position_errors(parent)
    lines = [e for e in f["evidence"] if "play_normal asked" in e]
    assert lines, f["evidence"]
    for line in lines:  # "... play_normal asked 80.540 s, audio starts at 75.000 s of the source (-5.540 s) ..."
        asked = float(line.split("asked ")[1].split(" s")[0])
        starts = float(line.split("audio starts at ")[1].split(" s")[0])
        assert starts == pytest.approx(CHUNK_S * (asked // CHUNK_S), abs=0.05), line


def test_the_fix_starts_where_it_was_asked(history):
    _, fixed = history
    assert _normal_position_errors(fixed) == []
