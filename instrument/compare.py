"""`python -m instrument.compare`: A/B of two targets on one scenario.

    python -m instrument.compare --scenario S --repeat N \\
        --auralis-root OLD --auralis-root NEW [--auralis-python PY [--auralis-python PY2]]
    python -m instrument.compare --scenario S --repeat N --a-inject "" --b-inject boundary-click

The runs alternate A, B, A, B, ... so whatever drifts on the machine (other
load, thermal state, caches) hits both sides alike. Each run is an ordinary
run directory with a fresh HOME and the same generated tracks. After the
last capture every run is analysed (in parallel), each side is gated on its
own (a side whose runs cannot be trusted makes the comparison INVALID), and
B is compared with A figure by figure (reports.gate statistics: Mann-Whitney
U and the ratio of medians, asv's rule) and finding by finding (fingerprint).

Output directory:
```
OUT/a/repeat-1..N, OUT/b/repeat-1..N   run directories; a/gate.json, b/gate.json each side's gate
OUT/compare.md, OUT/compare.json       the comparison, verdict first
```
Exit codes: 0 no regression of B vs A, 1 regression (a figure regressed, or
a finding of severity MEDIUM or above is in every run of B and in no run of
A), 2 invalid. A finding in some runs of B and none of A is reported as
intermittent but does not fail: with a few runs a side, one loop stall more
on a busy machine is not evidence of a regression.
The verdict is the last line printed.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

from scenarios import catalogue

from . import repeat
from .procs import stop_all
from .stages import install_stop_signals
from .targets import DEFAULT_STANDIN
from .errors import EXIT_FAIL, EXIT_INVALID, EXIT_PASS, RunError
from .run import build_parser as run_parser

SIDES = ("a", "b")
# a finding only B has at these severities is a regression; LOW is reported only
REGRESSING_SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m instrument.compare", description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", required=True, help="scenario name (see python -m instrument.run --list-scenarios)")
    p.add_argument("--repeat", type=int, default=3, metavar="N", help="runs per side (default 3; 2N runs in all)")
    p.add_argument("--auralis-root", action="append", default=[], metavar="DIR",
                   help="an Auralis checkout; give it twice (A first, then B)")
    p.add_argument("--auralis-python", action="append", default=[], metavar="PY",
                   help="the Python of the checkout's environment: once for both, or twice (A, then B)")
    p.add_argument("--auralis-dsp-standin", nargs="?", const="", default=None, metavar="DIR",
                   help="put the pure-numpy auralis_dsp stand-in on both backends' path")
    p.add_argument("--a-inject", default=None, metavar="NAMES",
                   help='reference backend: injections of side A (comma-separated; "" = clean, the default)')
    p.add_argument("--b-inject", default=None, metavar="NAMES", help="reference backend: injections of side B")
    p.add_argument("--out", help="output directory (default runs/<timestamp>_<scenario>_ab)")
    p.add_argument("--gate", help="gate rules TOML (validity checks and the comparison's tolerances)")
    for flag, kw in (("--duration", {"type": float}), ("--users", {"type": int}), ("--spawn-rate", {"type": float}),
                     ("--track-seconds", {"type": float}), ("--loop", {"choices": ["uvloop", "asyncio"]}),
                     ("--ws-compression", {"choices": ["on", "off"]}), ("--startup-timeout", {"type": float}),
                     ("--stall-threshold-ms", {"type": float})):
        p.add_argument(flag, help="as for python -m instrument.run", **kw)
    p.add_argument("--scenario-opt", action="append", default=[], metavar="KEY=VALUE", help="as for instrument.run")
    p.add_argument("--quiet", action="store_true", help="no live progress line")
    return p


def abab_order(n: int) -> list[tuple[str, int]]:
    """(side, repeat) in the order the runs happen: A1, B1, A2, B2, ..."""
    return [(side, i) for i in range(1, n + 1) for side in SIDES]


def side_overrides(a: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """instrument.run options that differ between A and B; RunError on bad input."""
    if a.auralis_root:
        if len(a.auralis_root) != 2:
            raise RunError(f"--auralis-root must be given twice (A, then B), got {len(a.auralis_root)}")
        if a.a_inject is not None or a.b_inject is not None:
            raise RunError("--a-inject/--b-inject apply to the reference backend, not to --auralis-root")
        pythons = a.auralis_python or [None]
        if len(pythons) > 2:
            raise RunError("--auralis-python takes one interpreter for both sides or two (A, then B)")
        pythons = pythons * 2 if len(pythons) == 1 else pythons
        return tuple({"target": "auralis", "auralis_root": root, "auralis_python": py or run_parser().get_default(
            "auralis_python")} for root, py in zip(a.auralis_root, pythons))  # type: ignore[return-value]
    if a.auralis_python:
        raise RunError("--auralis-python needs --auralis-root (twice)")
    from instrument.reference.injections import parse_injections

    sides = []
    for flag, text in (("--a-inject", a.a_inject), ("--b-inject", a.b_inject)):
        try:
            names = parse_injections(text or "")
        except ValueError as e:
            raise RunError(f"{flag}: {e}") from None
        sides.append({"target": "reference", "inject": ",".join(sorted(names))})
    return sides[0], sides[1]


def side_label(over: dict[str, Any]) -> str:
    if over["target"] == "auralis":
        return f"auralis at {over['auralis_root']}"
    return f"reference ({'inject: ' + over['inject'] if over['inject'] else 'clean'})"


def run_args(a: argparse.Namespace) -> argparse.Namespace:
    """instrument.run's own defaults, with the options given here."""
    base = run_parser().parse_args(["--scenario", a.scenario])
    for k in ("duration", "users", "spawn_rate", "track_seconds", "loop", "ws_compression", "startup_timeout",
              "stall_threshold_ms", "gate"):
        v = getattr(a, k)
        if v is not None:
            setattr(base, k, v)
    base.scenario_opt = list(a.scenario_opt)
    base.quiet = a.quiet
    if a.auralis_dsp_standin is not None:
        base.auralis_dsp_standin = a.auralis_dsp_standin or str(DEFAULT_STANDIN)
    return base


def judge(res: Any, side_gates: dict[str, dict[str, Any]]) -> tuple[str, int, str]:
    """(verdict, exit code, reason) of B against A."""
    for side in SIDES:
        g = side_gates[side]
        if g["verdict"] == "INVALID":
            return "INVALID", EXIT_INVALID, f"side {side.upper()} is invalid: {g['reason']}"
    new = [f for f in res.findings_only_b if f["severity"] in REGRESSING_SEVERITIES and f["consistent"]]
    intermittent = [f for f in res.findings_only_b if f["severity"] in REGRESSING_SEVERITIES and not f["consistent"]]
    if res.regressions or new:
        parts = []
        if res.regressions:
            parts.append(f"{len(res.regressions)} figure(s) regressed: " + "; ".join(c.describe() for c in res.regressions))
        if new:
            parts.append(f"{len(new)} finding(s) in B and not in A: "
                         + "; ".join(f"[{f['severity']}] {f['title']} (seen {f['seen_b']}/{res.n_b})" for f in new))
        return "FAIL", EXIT_FAIL, "B regresses vs A: " + "; ".join(parts)
    if not res.decided and not (res.findings_only_a or res.findings_only_b):
        return "INVALID", EXIT_INVALID, (f"too few samples to decide: all {len(res.undecided)} figure(s) undecided "
                                         "(use a larger --repeat)")
    parts = [f"{len(res.decided)} figure(s) compared, none regressed"]
    if res.improvements:
        parts.append(f"{len(res.improvements)} improved: " + ", ".join(c.figure for c in res.improvements))
    if res.findings_only_a:
        parts.append(f"{len(res.findings_only_a)} finding(s) only in A (gone in B)")
    if intermittent:
        parts.append(f"{len(intermittent)} intermittent finding(s) only in B: "
                     + "; ".join(f"[{f['severity']}] {f['title']} (seen {f['seen_b']}/{res.n_b})" for f in intermittent))
    low = [f for f in res.findings_only_b if f["severity"] not in REGRESSING_SEVERITIES]
    if low:
        parts.append(f"{len(low)} LOW finding(s) only in B")
    return "PASS", EXIT_PASS, "no regression of B vs A: " + "; ".join(parts)


def execute(a: argparse.Namespace) -> int:
    repeat.check_repeat(a.repeat)
    try:
        catalogue.get(a.scenario)
    except ValueError as e:
        raise RunError(str(e)) from None
    over = dict(zip(SIDES, side_overrides(a)))
    labels = {s: side_label(over[s]) for s in SIDES}
    base = run_args(a)
    stamp = dt.datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
    out = Path(a.out) if a.out else repeat.PROJECT_ROOT / "runs" / f"{stamp}_{a.scenario}_ab"
    repeat.check_out_dir(out)
    for s in SIDES:
        (out / s).mkdir(parents=True, exist_ok=True)
    print(f"A: {labels['a']}\nB: {labels['b']}\noutput: {out}", file=sys.stderr)
    t0 = time.monotonic()
    order, ran = abab_order(a.repeat), []
    for k, (side, i) in enumerate(order, 1):
        print(f"run {k}/{len(order)}: {side.upper()} repeat {i}", file=sys.stderr, flush=True)
        try:
            info = repeat.capture(base, out / side / f"repeat-{i}", **over[side])
        except KeyboardInterrupt:
            break
        ran.append({"side": side, "repeat": i, **info})
        if repeat.interrupted(out / side / f"repeat-{i}"):
            print("interrupted: the remaining runs are skipped", file=sys.stderr)
            break
    finished = repeat.finish_all([out / r["side"] / r["dir"] for r in ran], gate=a.gate)
    for r in ran:
        r["verdict_line"] = finished.get(out / r["side"] / r["dir"], (EXIT_INVALID, ""))[1]

    from reports.gate import GateFileError, find_gate
    from reports.gate.comparison import compare_runsets, render_markdown
    from reports.gate.measurements import MeasurementError, load_runset

    side_gates: dict[str, dict[str, Any]] = {}
    for s in SIDES:
        dirs = [r for r in ran if r["side"] == s]
        root = repeat.target_root_of(out / s / dirs[0]["dir"]) if dirs else None
        side_gates[s] = (repeat.gate_set(out / s, gate=a.gate, baseline=None, target_root=root) if dirs else
                         {"verdict": "INVALID", "exit_code": EXIT_INVALID, "reason": "no run", "lines": []})
    doc: dict[str, Any] = {
        "tool": "earshot", "kind": "compare", "scenario": a.scenario, "repeat": a.repeat,
        "a": {"label": labels["a"], **over["a"]}, "b": {"label": labels["b"], **over["b"]},
        "order": [f"{r['side'].upper()}{r['repeat']}" for r in ran], "runs": ran,
        "side_verdicts": {s: {k: side_gates[s][k] for k in ("verdict", "reason")} for s in SIDES},
    }
    res = None
    if len(ran) < len(order):
        verdict, code, reason = "INVALID", EXIT_INVALID, f"only {len(ran)} of {len(order)} runs ran"
    else:
        try:
            cfg = find_gate(Path(a.gate) if a.gate else None, repeat.target_root_of(out / "b" / "repeat-1"))
            res = compare_runsets(load_runset(out / "a"), load_runset(out / "b"), cfg)
            verdict, code, reason = judge(res, side_gates)
        except (GateFileError, MeasurementError) as e:
            verdict, code, reason = "INVALID", EXIT_INVALID, str(e)
    doc.update(verdict=verdict, exit_code=code, reason=reason, run_s=round(time.monotonic() - t0, 1),
               comparison=res.to_dict() if res else None)
    (out / "compare.json").write_text(json.dumps({"verdict": verdict, **doc}, indent=1, default=_plain))
    md = _markdown(doc, res, labels, render_markdown)
    (out / "compare.md").write_text(md)
    _print_summary(doc, res, labels, out)
    print(f"VERDICT: {verdict} - {reason}", flush=True)
    return code


def _markdown(doc: dict[str, Any], res: Any, labels: dict[str, str], render_markdown: Any) -> str:
    head = [f"**VERDICT: {doc['verdict']}** (exit {doc['exit_code']}): {doc['reason']}", "",
            f"- A: {labels['a']}: side gate {doc['side_verdicts']['a']['verdict']}",
            f"- B: {labels['b']}: side gate {doc['side_verdicts']['b']['verdict']}",
            f"- order: {' '.join(doc['order'])} ({doc['run_s']:.0f} s)", ""]
    title = f"A/B: {doc['scenario']}, {doc['repeat']} run(s) per side"
    if res is None:
        return "\n".join([f"# {title}", "", *head])
    body = render_markdown(res, title=title).split("\n")
    return "\n".join(body[:2] + head + body[2:])


def _print_summary(doc: dict[str, Any], res: Any, labels: dict[str, str], out: Path) -> None:
    print("")
    print(f"A/B {doc['scenario']}: A = {labels['a']}, B = {labels['b']}; order {' '.join(doc['order'])}")
    for r in doc["runs"]:
        print(f"  {r['side'].upper()}{r['repeat']}: {r['verdict_line'].removeprefix('VERDICT: ')[:160]}")
    for s in SIDES:
        print(f"  side {s.upper()} gate: {doc['side_verdicts'][s]['verdict']}")
    if res is not None:
        for c in res.regressions:
            print(f"  REGRESSION  {c.describe()}")
        for c in res.improvements:
            print(f"  improved    {c.describe()}")
        for c in res.changed:
            print(f"  changed     {c.describe()}")
        for tag, items, n in (("only in A", res.findings_only_a, "seen_a"), ("only in B", res.findings_only_b, "seen_b")):
            for f in items:
                runs = res.n_a if n == "seen_a" else res.n_b
                print(f"  {tag}: [{f['severity']}] {f['title']} ({f[n]}/{runs} runs)")
        print(f"  {len(res.decided)} figure(s) compared, {len(res.undecided)} undecided, "
              f"{len(res.findings_both)} finding(s) in both")
    print(f"  report: {out / 'compare.md'}")


def _plain(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    return str(o)


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    install_stop_signals()  # SIGTERM (a CI runner cancelling us) stops like Ctrl-C, each named
    try:
        return execute(a)
    except RunError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt as e:
        print(f"\ninterrupted by {str(e) or 'Ctrl-C (SIGINT)'}", file=sys.stderr)
        return EXIT_INVALID
    finally:
        stop_all()


if __name__ == "__main__":
    sys.exit(main())
