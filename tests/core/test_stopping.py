"""Stopping: each signal named as what it was; a full disk is one line,
exit 2, and run.json marked failed. In-process known answers (no target is
launched: the failure is injected where the writer would hit it), and one
real full filesystem when root may mount a tiny tmpfs."""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from instrument import stages
from instrument.errors import Stopped
from instrument.run import build_parser

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def restore_signals():
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, h in old.items():
        signal.signal(s, h)


@pytest.mark.parametrize("sig,name", [(signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "Ctrl-C (SIGINT)")])
def test_each_stop_signal_is_named(restore_signals, sig, name):
    stages.install_stop_signals()
    with pytest.raises(Stopped) as e:
        os.kill(os.getpid(), sig)
        time.sleep(1.0)  # the handler runs in the main thread at the next bytecode
    assert str(e.value) == name
    assert isinstance(e.value, KeyboardInterrupt)  # every interrupt path treats both alike


def _enospc(*_a, **_k):
    raise OSError(errno.ENOSPC, "No space left on device", "home/Music/earshot/timecode.wav")


def test_disk_full_while_preparing_is_one_line_exit_2_and_marked_failed(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(stages, "prepare", _enospc)
    out = tmp_path / "run"
    code = stages.execute(build_parser().parse_args(["--scenario", "smoke", "--out", str(out), "--quiet"]))
    assert code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert err == ["error: disk full: no space left on device writing home/Music/earshot/timecode.wav "
                   "(run.json marked failed)"], err
    doc = json.loads((out / "run.json").read_text())
    assert doc["status"] == "failed" and doc["invalid_reason"].startswith("disk full")
    assert doc["stages"]["prepare"]["status"] == "failed"
    assert not (out / "target.log").exists()  # the run stopped where the disk filled


def test_disk_full_while_analysing_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    import analysis.pipeline

    rd = tmp_path / "run"
    rd.mkdir()
    (rd / "run.json").write_text(json.dumps({
        "schema_version": 1, "tool": "earshot", "scenario": "smoke", "status": "ok", "options": {
            "duration_s": 10, "users": {"Listener": 1}}, "target": {"kind": "reference"}, "timings": {}, "stages": {}}))
    monkeypatch.setattr(analysis.pipeline, "analyse_run", _enospc)
    assert stages.finish(rd) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: disk full: no space left on device writing home/Music/earshot/timecode.wav"]
    assert json.loads((rd / "run.json").read_text())["status"] == "failed"


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="mounting a tiny tmpfs needs root")
def test_a_real_full_filesystem(tmp_path):
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("this container may not mount tmpfs")
    try:
        out = mnt / "run"
        r = subprocess.run([sys.executable, "-m", "instrument.run", "--quiet", "--scenario", "smoke",
                            "--track-seconds", "40", "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 2, r.stderr
        err = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
        assert len(err) == 1 and err[0].startswith("error: disk full: no space left on device"), r.stderr
        assert "Traceback" not in r.stderr
        assert json.loads((out / "run.json").read_text())["status"] == "failed"
    finally:
        subprocess.run(["umount", "-l", str(mnt)])
