"""`python -m reports.coverage RUN_DIR [--against TESTS_COVERAGE_FILE]`: what
the run's load executed of the target (per package, per route), and, against
the target's own test suite's coverage file (`pytest --cov` in the user's
checkout), the code real load runs that no test does (untested live paths)
and the tested code the scenarios never reach (the gate's blind spots).

Ranking: coverage.py records whether a line ran, not how often, so untested
live paths are ranked by how often the agent's stack samples of the busy loop
found the load on those untested lines themselves (agent/busy_samples.jsonl),
then by how many untested lines ran. Writes RUN_DIR/coverage.md and coverage_findings.json;
exit 0, or 2 with a one-line error on bad input.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from analysis.coverage import STREAMING_WORDS, load_run_coverage, match_paths, package_table, read_test_coverage
from analysis.model import Finding, Location, assign_ids, dump_findings
from analysis.rundir import AGENT, iter_jsonl

TOP = 15


def _functions(source: Path) -> list[tuple[int, int, str]]:
    """(first, last, qualified name) of every function in a file."""
    try:
        tree = ast.parse(source.read_text(encoding="utf-8", errors="replace"))
    except (OSError, SyntaxError):
        return []
    out = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    out.append((child.lineno, child.end_lineno or child.lineno, name))
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    return out


def _by_function(rel: str, lines: set[int], roots: list[str],
                 hits: Counter[tuple[str, int]] | None = None) -> list[dict[str, Any]]:
    src = next((Path(r) / rel for r in roots if (Path(r) / rel).is_file()), None)
    funcs = _functions(src) if src else []
    groups: dict[str, list[int]] = defaultdict(list)
    for ln in sorted(lines):
        inner = [f for f in funcs if f[0] <= ln <= f[1]]
        name = min(inner, key=lambda f: f[1] - f[0])[2] if inner else "<module>"
        groups[name].append(ln)
    out = [{"file": rel, "function": k, "line_start": v[0], "line_end": v[-1], "lines": len(v)}
           for k, v in groups.items()]
    if hits is not None:
        # samples on these very lines: a hot function's samples are not its
        # cold untested branch's (safe_send's 146 were on its send, not its except)
        for g, v in zip(out, groups.values()):
            g["samples"] = sum(hits.get((rel, ln), 0) for ln in v)
    return out


def _sample_hits(run_dir: Path) -> Counter[tuple[str, int]]:
    """Busy-loop stack samples per (file, line) of the target's own frames."""
    hits: Counter[tuple[str, int]] = Counter()
    for rec in iter_jsonl(run_dir / AGENT / "busy_samples.jsonl"):
        for where, n in (rec.get("frames") or {}).items():
            file_line = where.partition(" ")[0]
            file, _, line = file_line.rpartition(":")
            if line.isdigit():
                hits[(file, int(line))] += int(n)
    return hits


def compare(run_dir: Path, tests_file: Path | None) -> dict[str, Any]:
    cov = load_run_coverage(run_dir)
    if cov is None:
        raise ValueError(f"{run_dir}: no runtime coverage (run with --coverage)")
    roots = (cov["meta"].get("code_roots") or [])
    out: dict[str, Any] = {"packages": package_table(cov["files"]), "routes": cov["routes"], "meta": cov["meta"],
                           "ws_handlers": cov["ws_handlers"]}
    if tests_file is None:
        return out
    tested_by_path = read_test_coverage(tests_file)
    mapping = match_paths(list(cov["files"]), list(tested_by_path))
    hits = _sample_hits(run_dir)
    live, blind = [], []
    for rel, f in cov["files"].items():
        tested = tested_by_path.get(mapping.get(rel, ""), set())
        live += _by_function(rel, f["executed"] - tested, roots, hits)
        blind += _by_function(rel, (tested & (f["executed"] | f["missing"])) - f["executed"], roots)
    live.sort(key=lambda g: (-g["samples"], -g["lines"], g["file"], g["line_start"]))
    blind.sort(key=lambda g: (-g["lines"], g["file"], g["line_start"]))
    out.update(untested_live=live, blind_spots=blind, files_matched=len(mapping), files_run=len(cov["files"]))
    return out


def findings_of(res: dict[str, Any], scenario: str | None) -> list[Finding]:
    out = []
    for g in res.get("untested_live", [])[:TOP]:
        streaming = any(w in g["file"].lower() for w in STREAMING_WORDS)
        out.append(Finding(
            kind="untested_live_path", title=f"Untested live path: {g['function']}",
            severity="MEDIUM" if streaming else "LOW", dimension="Test Coverage",
            description=(f"{g['lines']} line(s) of {g['function']} ran under the scenario's load and under no test of "
                         "the target's own suite."),
            impact="A change that breaks this code passes the test suite; only real load would show it.",
            suggested_fix="Add a test that drives this path (for streaming code: chunk boundaries, concurrency, "
                          "errors).",
            location=Location(file=g["file"], line_start=g["line_start"], line_end=g["line_end"],
                              function=g["function"], scenario=scenario),
            evidence=[f"lines {g['line_start']}-{g['line_end']}: {g['lines']} run by the load, 0 by the tests; "
                      f"{g['samples']} busy-loop stack samples in it"],
            figures={"lines": g["lines"], "samples": g["samples"]}, key=f"live {g['file']}:{g['function']}"))
    for g in res.get("blind_spots", [])[:TOP]:
        out.append(Finding(
            kind="gate_blind_spot", title=f"Tested code the scenario never reached: {g['function']}",
            severity="LOW", dimension="Test Coverage",
            description=(f"{g['lines']} tested line(s) of {g['function']} never ran under the scenario, so the "
                         "release gate says nothing about them under load."),
            impact="A PASS from the gate covers none of this code.",
            suggested_fix="Add a scenario (or a scenario option) that exercises it, if it can run in production.",
            location=Location(file=g["file"], line_start=g["line_start"], line_end=g["line_end"],
                              function=g["function"], scenario=scenario),
            evidence=[f"lines {g['line_start']}-{g['line_end']}: {g['lines']} tested, not run by the load"],
            figures={"lines": g["lines"]}, key=f"blind {g['file']}:{g['function']}"))
    return assign_ids(out)


def render_md(res: dict[str, Any], findings: list[Finding]) -> str:
    meta = res.get("meta") or {}
    md = ["# Runtime coverage", "",
          f"coverage.py core `{meta.get('core')}`, branch measurement {'on' if meta.get('branch') else 'off'}, "
          f"Python {meta.get('python')}.", "", "## Per package", "",
          "| package | lines run | lines | % |", "|---|---|---|---|"]
    md += [f"| `{p['package']}` | {p['lines_run']} | {p['lines']} | {p['pct']} |" for p in res["packages"]]
    md += ["", "## Routes and WebSocket endpoints (from the app's own route table)", "",
           "| kind | path | endpoint | reached |", "|---|---|---|---|"]
    md += [f"| {r['kind']} | `{r['path']}` | `{r['file']}:{r['first_line']} {r['function']}` | "
           f"{'yes' if r['reached'] else '**no**'} |" for r in res["routes"] if r.get("own")]
    md += ["", "## WebSocket message handlers (the target's own dispatch on the message types the load sent)", "",
           "| message type | sent by the load | handler lines | reached |", "|---|---|---|---|"]
    md += [f"| `{h['type']}` | {'yes' if h['sent'] else 'no'} | `{h['file']}:{h['line_start']}-{h['line_end']}` | "
           f"{'yes' if h['reached'] else '**no**'} |" for h in res.get("ws_handlers", [])]
    if "untested_live" in res:
        md += ["", f"## Untested live paths ({len(res['untested_live'])}; files matched to the test data: "
                   f"{res['files_matched']} of {res['files_run']})", "",
               "Ranked by busy-loop stack samples on the untested lines themselves, then by lines (coverage.py does not count hits).",
               "", "| file | function | lines | run by load, no test | samples |", "|---|---|---|---|---|"]
        md += [f"| `{g['file']}` | `{g['function']}` | {g['line_start']}-{g['line_end']} | {g['lines']} | "
               f"{g['samples']} |" for g in res["untested_live"][:TOP]]
        md += ["", f"## Tested code the scenarios never reach ({len(res['blind_spots'])})", "",
               "| file | function | lines | tested, not run |", "|---|---|---|---|"]
        md += [f"| `{g['file']}` | `{g['function']}` | {g['line_start']}-{g['line_end']} | {g['lines']} |"
               for g in res["blind_spots"][:TOP]]
    if findings:
        md += ["", "## Findings (Test Coverage)", ""]
        md += [f"- {f.id} {f.severity} {f.title} [{f.location.render()}]" for f in findings]
    return "\n".join(md) + "\n"


def coverage_md(run_dir: Path) -> str:
    """coverage.md of a run without a test suite's data (the run's own tables)."""
    return render_md(compare(run_dir, None), [])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reports.coverage", description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir")
    ap.add_argument("--against", help="the target's own test suite's coverage data file (.coverage) or JSON report")
    a = ap.parse_args(argv)
    run_dir = Path(a.run_dir)
    try:
        res = compare(run_dir, Path(a.against) if a.against else None)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    scenario = (json.loads((run_dir / "run.json").read_text()).get("scenario")
                if (run_dir / "run.json").is_file() else None)
    findings = findings_of(res, scenario)
    (run_dir / "coverage.md").write_text(render_md(res, findings))
    (run_dir / "coverage_findings.json").write_text(dump_findings(findings, {"scenario": scenario,
                                                                             "against": os.path.basename(a.against or "")}))
    print(render_md(res, findings))
    print(f"written: {run_dir / 'coverage.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
