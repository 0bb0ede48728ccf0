"""`python -m analysis RUN_DIR`: redo the analysis stage of an existing run."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .model import count_by_severity
from .pipeline import analyse_run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis", description=__doc__)
    p.add_argument("run_dir")
    a = p.parse_args(argv)
    run_dir = Path(a.run_dir)
    if not (run_dir / "run.json").is_file():
        print(f"error: {run_dir} is not a run directory (no run.json)", file=sys.stderr)
        return 2
    findings, metrics = analyse_run(run_dir)
    counts = count_by_severity(findings)
    print(f"{len(findings)} findings ({', '.join(f'{n} {s}' for s, n in counts.items())}) -> {run_dir / 'findings.json'}")
    for f in findings:
        print(f"  {f.id} {f.severity:<8} {f.title} [{f.location.render()}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
