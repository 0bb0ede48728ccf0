"""How long a run takes to stop: a signal mid-load to the report being out.

Starts `python -m instrument.run` in its own process group, waits until the
load has run `--after` seconds, sends SIGINT to the group (as a terminal's
Ctrl-C does) or SIGTERM to the run (as a CI runner cancelling a job does),
and measures: seconds to the VERDICT line (the report is written before it),
seconds to exit, the run's own breakdown (stop, analyse, report), and any
process left behind that names the run directory. Extra arguments go to the
run, e.g. `--target auralis --auralis-root ... --auralis-python ...`.

    python benchmarks/stop_time.py [--signal int|term] [--after 20] [--repeats 3] -- --scenario concurrent-tracks

On a shared machine the analysis share of the figure grows with the load
average (it is CPU work on what was captured); the stop share does not.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent


def one(sig: str, after: float, run_args: list[str]) -> dict:
    out = Path(tempfile.mkdtemp(prefix="earshot-stop-")) / "run"
    p = subprocess.Popen([sys.executable, "-m", "instrument.run", "--quiet", "--out", str(out), *run_args],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         start_new_session=True)
    while True:
        time.sleep(0.2)
        if p.poll() is not None:
            raise SystemExit(f"the run ended before the load began (exit {p.returncode})")
        try:
            doc = json.loads((out / "run.json").read_text())
        except (OSError, ValueError):
            continue
        if doc.get("load_window"):
            break
    time.sleep(after)
    t0 = time.monotonic()
    if sig == "int":
        os.killpg(p.pid, signal.SIGINT)
    else:
        p.send_signal(signal.SIGTERM)
    seen: dict[str, float] = {}

    def read() -> None:
        for line in p.stdout:
            if line.startswith("VERDICT"):
                seen["verdict"] = time.monotonic() - t0

    th = threading.Thread(target=read)
    th.start()
    p.wait()
    exit_s = time.monotonic() - t0
    th.join()
    left = [q.pid for q in psutil.process_iter(["cmdline"]) if str(out) in " ".join(q.info.get("cmdline") or [])]
    doc = json.loads((out / "run.json").read_text())
    return {"verdict_s": round(seen.get("verdict", float("nan")), 2), "exit_s": round(exit_s, 2),
            "stop_s": doc["timings"].get("stop_s"), "analyse_s": doc["stages"].get("analyse", {}).get("s"),
            "report_s": doc["stages"].get("report", {}).get("s"), "reason": doc.get("invalid_reason"),
            "left_behind": left, "load_avg_1m": round(os.getloadavg()[0], 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--signal", choices=["int", "term"], default="int")
    ap.add_argument("--after", type=float, default=20.0, help="seconds of load before the signal")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("run_args", nargs="*", help="arguments of the run (after --)")
    a = ap.parse_args()
    run_args = a.run_args or ["--scenario", "concurrent-tracks", "--duration", "60"]
    for i in range(a.repeats):
        print(json.dumps({"repeat": i + 1, "signal": a.signal, **one(a.signal, a.after, run_args)}), flush=True)


if __name__ == "__main__":
    main()
