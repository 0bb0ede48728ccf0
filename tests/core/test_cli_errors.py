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
