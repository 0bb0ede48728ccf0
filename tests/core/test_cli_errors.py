"""Bad input: a clear one-line error, exit code 2, nothing left running."""
from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def cli(*args, timeout=120):
    r = subprocess.run([sys.executable, "-m", "instrument.run", *args], cwd=ROOT, capture_output=True, text=True,
                       timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def one_line_error(stderr: str) -> str:
    lines = [l for l in stderr.strip().splitlines() if l.startswith("error:")]
    assert len(lines) == 1, stderr
    return lines[0]


def test_list_scenarios_names_the_catalogue():
    code, out, _ = cli("--list-scenarios")
    assert code == 0
    for name in ("smoke", "concurrent-tracks", "slow-client", "disconnect-storm", "seek-storm", "track-switch",
                 "library-browse", "soak", "release"):
        assert any(line.startswith(name + " ") for line in out.splitlines()), name


def test_unknown_scenario(tmp_path):
    code, _, err = cli("--scenario", "nope", "--out", str(tmp_path / "r"))
    assert code == 2
    assert "unknown scenario 'nope'" in one_line_error(err)


def test_not_an_auralis_checkout(tmp_path):
    code, _, err = cli("--scenario", "smoke", "--target", "auralis", "--auralis-root", str(tmp_path),
                       "--auralis-python", sys.executable, "--out", str(tmp_path / "r"))
    assert code == 2
    assert "is not an Auralis checkout" in one_line_error(err)


def test_auralis_python_missing_requirements_names_the_module(tmp_path):
    root = tmp_path / "Auralis"
    (root / "auralis-web" / "backend").mkdir(parents=True)
    (root / "auralis-web" / "backend" / "main.py").write_text("app = None\n")
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    code, _, err = cli("--scenario", "smoke", "--target", "auralis", "--auralis-root", str(root),
                       "--auralis-python", str(bare / "bin" / "python"), "--out", str(tmp_path / "r"))
    assert code == 2
    assert "lacks module 'fastapi'" in one_line_error(err)


def test_port_in_use(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        code, _, err = cli("--scenario", "smoke", "--port", str(port), "--out", str(tmp_path / "r"))
    assert code == 2
    assert f"port {port}" in one_line_error(err)


def test_bad_scenario_option(tmp_path):
    code, _, err = cli("--scenario", "smoke", "--scenario-opt", "novalue", "--out", str(tmp_path / "r"))
    assert code == 2
    assert "KEY=VALUE" in one_line_error(err)


@pytest.mark.parametrize("bad", [["--stall-threshold-ms", "5"], ["--duration", "0"]])
def test_out_of_range_numbers(tmp_path, bad):
    code, _, err = cli("--scenario", "smoke", *bad, "--out", str(tmp_path / "r"))
    assert code == 2
    one_line_error(err)


# ---- issue 17: every bad input is refused before anything launches


def _nothing_launched(out: Path) -> None:
    assert not (out / "target.log").exists() and not (out / "load").exists()


def test_out_is_a_file(tmp_path):
    f = tmp_path / "taken"
    f.write_text("x")
    code, _, err = cli("--scenario", "smoke", "--out", str(f))
    assert code == 2
    assert f"--out {f} is a file" in one_line_error(err)
    assert f.read_text() == "x"


def test_out_cannot_be_created(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    code, _, err = cli("--scenario", "smoke", "--out", str(f / "run"))
    assert code == 2
    assert "cannot be created" in one_line_error(err)


@pytest.mark.parametrize("users,duration,what", [
    ("0", "20", "--users must be at least 1, not 0"),
    ("-3", "20", "--users must be at least 1"),
    ("100000", "20", "--users 100000: at 10 users/s only 171 can start"),
    ("2", "1", "--duration 1 s is too short for the scenario's first stream"),
])
def test_users_and_duration_the_scenario_cannot_place(tmp_path, users, duration, what):
    out = tmp_path / "r"
    code, _, err = cli("--scenario", "smoke", "--users", users, "--duration", duration, "--out", str(out))
    assert code == 2
    assert what in one_line_error(err)
    _nothing_launched(out)


def test_auralis_python_that_is_not_python(tmp_path):
    root = tmp_path / "Auralis"
    (root / "auralis-web" / "backend").mkdir(parents=True)
    (root / "auralis-web" / "backend" / "main.py").write_text("app = None\n")
    out = tmp_path / "r"
    code, _, err = cli("--scenario", "smoke", "--target", "auralis", "--auralis-root", str(root),
                       "--auralis-python", "/bin/true", "--out", str(out))
    assert code == 2
    assert "Auralis Python /bin/true is not a Python interpreter" in one_line_error(err)
    _nothing_launched(out)


def test_auralis_python_too_old(tmp_path):
    root = tmp_path / "Auralis"
    (root / "auralis-web" / "backend").mkdir(parents=True)
    (root / "auralis-web" / "backend" / "main.py").write_text("app = None\n")
    old = tmp_path / "python3.9"
    old.write_text("#!/bin/sh\necho '(3, 9)'\n")
    old.chmod(0o755)
    code, _, err = cli("--scenario", "smoke", "--target", "auralis", "--auralis-root", str(root),
                       "--auralis-python", str(old), "--out", str(tmp_path / "r"))
    assert code == 2
    assert "is Python 3.9; Auralis needs 3.11 or later" in one_line_error(err)


def test_list_metrics_prints_the_catalogue():
    code, out, _ = cli("--list-metrics")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["metric", "unit", "better"]
    assert any(line.split()[:3] == ["ttfa_p95_ms", "ms", "lower"] for line in lines)
    assert any(line.startswith("audio_streams_analysed_* ") for line in lines)
