"""Command line of the release gate.

    python -m reports.gate RUN_DIR [--gate FILE] [--baseline RUN_DIR|FILE] [--target-root DIR]
    python -m reports.gate save-baseline RUN_DIR OUT.json

Exit codes: 0 PASS, 1 FAIL (each failing rule / regression named), 2 INVALID
(the reason named) or unusable input (a one-line error). The verdict is the
last line printed.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import evaluate
from .measurements import MeasurementError, load_runset
from .rules import GateFileError


def _save_baseline(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m reports.gate save-baseline", description="Save a run (or a directory of repeat-*/ runs) as a baseline file.")
    p.add_argument("run_dir", type=Path)
    p.add_argument("out", type=Path)
    a = p.parse_args(argv)
    try:
        rs = load_runset(a.run_dir)
    except MeasurementError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.run_dir.is_file():
        print(f"error: {a.run_dir} is already a baseline file", file=sys.stderr)
        return 2
    a.out.write_text(rs.to_json(), encoding="utf-8")
    print(f"baseline of {len(rs.runs)} run(s) from {rs.source} written to {a.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "save-baseline":
        return _save_baseline(argv[1:])
    p = argparse.ArgumentParser(prog="python -m reports.gate", description="Gate a run directory: exit 0 PASS, 1 FAIL, 2 INVALID.")
    p.add_argument("run_dir", type=Path, help="a run directory or a directory of repeat-*/ runs")
    p.add_argument("--gate", type=Path, help="gate TOML file (default: the target's [tool.earshot.gate], else the shipped default)")
    p.add_argument("--baseline", type=Path, help="baseline run directory, directory of repeat-*/ runs, or saved baseline JSON")
    p.add_argument("--target-root", type=Path, help="target checkout whose pyproject.toml may carry [tool.earshot.gate]")
    p.add_argument("--json", action="store_true", help="print gate.json instead of the human lines")
    a = p.parse_args(argv)
    try:
        result = evaluate(a.run_dir, gate_file=a.gate, baseline=a.baseline, target_root=a.target_root)
    except (GateFileError, MeasurementError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.json:
        import json

        print(json.dumps(result.to_dict(), indent=2, default=str))
        print(result.lines()[-1])
    else:
        for line in result.lines():
            print(line)
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
