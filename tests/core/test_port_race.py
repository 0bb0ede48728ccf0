"""A port the wrapper chose can be taken by another process between
free_port() closing it and the target binding it (CI's parallel runs did
this to the aiomonitor port): the wrapper sees the target fail to bind a
port it chose and chooses again; a port the user named is never swapped."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# the first port the wrapper asks for is one this test holds
RUN_WITH_A_TAKEN_PORT = """
import sys
import instrument.stages as stages
real, taken = stages.free_port, int(sys.argv[1])
calls = []
def first_taken(host="127.0.0.1"):
    calls.append(1)
    return taken if len(calls) == 1 else real(host)
stages.free_port = first_taken
from instrument.run import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.slow
def test_a_chosen_port_that_was_taken_is_chosen_again(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        out = tmp_path / "run"
        r = subprocess.run([sys.executable, "-c", RUN_WITH_A_TAKEN_PORT, str(taken), "--scenario", "smoke",
                            "--duration", "4", "--users", "1", "--out", str(out)],
                           cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, (r.stdout[-1500:], r.stderr[-1500:])
    assert f"port {taken} was taken before the target bound it" in r.stderr
    port = json.loads((out / "run.json").read_text())["target"]["port"]
    assert port != taken
