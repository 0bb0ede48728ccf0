"""python -m reports RUN_DIR [--audit-dir DIR]: re-render every report of a run."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import render_all


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reports", description=__doc__)
    ap.add_argument("run_dir", type=Path, help="a run directory (runs/<timestamp>_<scenario>)")
    ap.add_argument("--audit-dir", type=Path, help="also write the audit here (a target checkout's docs/audits/)")
    args = ap.parse_args(argv)
    if not args.run_dir.is_dir():
        print(f"error: run directory not found: {args.run_dir}", file=sys.stderr)
        return 2
    if args.audit_dir is not None and args.audit_dir.exists() and not args.audit_dir.is_dir():
        print(f"error: --audit-dir is not a directory: {args.audit_dir}", file=sys.stderr)
        return 2
    try:
        paths = render_all(args.run_dir, audit_dir=args.audit_dir)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for p in paths:
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
