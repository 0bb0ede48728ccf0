"""Gate rules as data: parse a gate TOML file and evaluate its rules.

An expression is one comparison over measured figures and numbers, e.g.
``ttfa_p95_ms < 1500``, ``findings.HIGH == 0``, ``0.5 <= delivery_rate_x_p50``,
``streams_failed / streams_total <= 0.01``. It is parsed with :mod:`ast` and
evaluated by walking a small whitelist of nodes, never with ``eval``: a gate
file is data, not code. The file format is documented in default_gate.toml.
"""
from __future__ import annotations

import ast
import math
import operator
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

SEVERITIES = ("error", "warn")
BETTER = ("lower", "higher", "none")

_CMP = {
    ast.Lt: ("<", operator.lt),
    ast.LtE: ("<=", operator.le),
    ast.Gt: (">", operator.gt),
    ast.GtE: (">=", operator.ge),
    ast.Eq: ("==", operator.eq),
    ast.NotEq: ("!=", operator.ne),
}
_BIN = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}

_RULE_KEYS = {"name", "expr", "severity", "required", "message"}
_CHECK_KEYS = {"name", "expr", "required", "message"}
_COMPARE_KEYS = {"alpha", "tolerance", "abs_tolerance", "min_samples", "correction", "confidence"}
_FIGURE_KEYS = {"better", "tolerance", "abs_tolerance", "ignore"}


class GateFileError(ValueError):
    """A gate file that cannot be used; str() is one line naming file and line."""


class NotMeasured(Exception):
    def __init__(self, figures: list[str], why: str = "not measured"):
        super().__init__(", ".join(figures))
        self.figures = figures
        self.why = why


@dataclass
class Rule:
    name: str
    expr: str
    severity: str = "error"
    required: bool = False
    message: str = ""
    line: int | None = None
    figures: list[str] = field(default_factory=list)
    _tree: ast.Compare | None = field(default=None, repr=False)

    def evaluate(self, figures: Mapping[str, float]) -> tuple[bool, float]:
        """(passed, value): value is the first non-constant operand, the
        number a reader wants to see next to the threshold. Raises
        NotMeasured when a named figure is absent or the value is undefined."""
        assert self._tree is not None
        missing = [f for f in self.figures if f not in figures]
        if missing:
            raise NotMeasured(missing)
        operands = [self._tree.left, *self._tree.comparators]
        values = [_eval(node, figures) for node in operands]
        if any(math.isnan(v) for v in values):
            raise NotMeasured(self.figures, "undefined (division by zero or NaN)")
        value = next((v for node, v in zip(operands, values) if not _is_constant(node)), values[0])
        passed = all(_CMP[type(op)][1](values[i], values[i + 1]) for i, op in enumerate(self._tree.ops))
        return passed, value


@dataclass
class FigurePolicy:
    better: str = "lower"
    tolerance: float | None = None
    abs_tolerance: float | None = None
    ignore: bool = False


@dataclass
class CompareSettings:
    alpha: float = 0.05
    tolerance: float = 0.10
    abs_tolerance: float = 0.0
    min_samples: int = 5
    correction: str = "holm"  # "holm" | "none"
    confidence: float = 0.95


@dataclass
class GateConfig:
    source: str
    rules: list[Rule] = field(default_factory=list)
    checks: list[Rule] = field(default_factory=list)  # validity: failing -> INVALID
    compare: CompareSettings = field(default_factory=CompareSettings)
    figures: dict[str, FigurePolicy] = field(default_factory=dict)

    def policy(self, figure: str) -> FigurePolicy:
        """A figure's policy: exact name, else the longest matching glob
        (``samples.*``, ``loop_*``), else lower-is-better defaults."""
        if figure in self.figures:
            return self.figures[figure]
        best = None
        for pattern, pol in self.figures.items():
            if any(ch in pattern for ch in "*?[") and _fnmatch(figure, pattern):
                if best is None or len(pattern) > len(best[0]):
                    best = (pattern, pol)
        return best[1] if best else FigurePolicy()


def _fnmatch(name: str, pattern: str) -> bool:
    import fnmatch

    return fnmatch.fnmatchcase(name, pattern)


# ---------------------------------------------------------------- expressions


def _is_constant(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.UnaryOp):
        return _is_constant(node.operand)
    if isinstance(node, ast.BinOp):
        return _is_constant(node.left) and _is_constant(node.right)
    return False


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _check_operand(node: ast.AST, figures: list[str]) -> None:
    name = _dotted(node)
    if name is not None:
        figures.append(name)
        return
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise ValueError(f"only numbers and figure names may be compared, not {node.value!r}")
        return
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        _check_operand(node.operand, figures)
        return
    if isinstance(node, ast.BinOp) and type(node.op) in _BIN:
        _check_operand(node.left, figures)
        _check_operand(node.right, figures)
        return
    raise ValueError(f"unsupported syntax {ast.unparse(node)!r} (figures, numbers, + - * / only)")


def parse_expr(expr: str) -> tuple[ast.Compare, list[str]]:
    """Parse and validate one rule expression; ValueError with a short reason."""
    if not isinstance(expr, str) or not expr.strip():
        raise ValueError("expr must be a non-empty string")
    try:
        tree = ast.parse(expr.strip(), mode="eval").body
    except SyntaxError as e:
        raise ValueError(f"not an expression: {e.msg}") from None
    if not isinstance(tree, ast.Compare):
        raise ValueError("must be a comparison such as 'figure < 100'")
    for op in tree.ops:
        if type(op) not in _CMP:
            raise ValueError(f"unsupported comparison {type(op).__name__} (use < <= > >= == !=)")
    figures: list[str] = []
    for node in (tree.left, *tree.comparators):
        _check_operand(node, figures)
    if not figures:
        raise ValueError("compares only numbers; name a figure")
    return tree, list(dict.fromkeys(figures))


def _eval(node: ast.AST, figures: Mapping[str, float]) -> float:
    name = _dotted(node)
    if name is not None:
        return float(figures[name])
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.UnaryOp):
        v = _eval(node.operand, figures)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left, figures), _eval(node.right, figures)
        if isinstance(node.op, ast.Div) and right == 0:
            return math.nan
        return _BIN[type(node.op)](left, right)
    raise AssertionError("validated at parse time")


# ---------------------------------------------------------------- files

_TOML_LINE = re.compile(r"at line (\d+)")


def _table_lines(text: str, prefix: str, table: str) -> list[int]:
    """1-based line numbers of each ``[[<prefix>table]]`` header, in order;
    the i-th entry of the array of tables is the i-th header."""
    pat = re.compile(r"^\s*\[\[\s*" + re.escape(prefix + table) + r"\s*\]\]")
    return [i + 1 for i, line in enumerate(text.splitlines()) if pat.match(line)]


def _key_line(text: str, key: str, header: int | None) -> int | None:
    """Line of `key = ...` inside the table whose header is on line `header`
    (up to the next header); the header line itself when not found."""
    if header is None:
        return None
    lines = text.splitlines()
    pat = re.compile(r"^\s*" + re.escape(key) + r"\s*=")
    for i in range(header, len(lines)):
        if lines[i].lstrip().startswith("["):
            break
        if pat.match(lines[i]):
            return i + 1
    return header


def _header_line(text: str, dotted: str) -> int | None:
    """Line of a `[a.b]` table header, allowing quoted parts and spaces."""
    for i, line in enumerate(text.splitlines()):
        m = re.match(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$", line)
        if m and re.sub(r"\s*\.\s*", ".", m.group(1).replace('"', "").replace("'", "")) == dotted:
            return i + 1
    return None


def _expr_line(text: str, expr: Any, after: int | None) -> int | None:
    lines = text.splitlines()
    start = (after or 1) - 1
    for i in range(start, len(lines)):
        if re.match(r"^\s*expr\s*=", lines[i]) and (not isinstance(expr, str) or expr in lines[i]):
            return i + 1
    if isinstance(expr, str):
        for i, line in enumerate(lines):
            if expr in line:
                return i + 1
    return after


def load_gate_text(text: str, source: str, *, section: tuple[str, ...] = (),
                   check_metrics: bool = True) -> GateConfig:
    """Parse gate TOML. `section` selects a nested table (("tool", "earshot",
    "gate") for a target's pyproject.toml). Errors name `source` and the line.
    With `check_metrics` (the default) a rule or figure policy naming a metric
    the catalogue does not declare is an error naming the closest known ones:
    a typo must not quietly turn a rule into "not measured"."""

    def fail(line: int | None, msg: str) -> GateFileError:
        where = f"{source}:{line}" if line else source
        return GateFileError(f"gate file {where}: {msg}")

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = _TOML_LINE.search(str(e))
        msg = _TOML_LINE.sub("", str(e)).replace("(, column", "(column").strip()
        raise fail(int(m.group(1)) if m else None, f"TOML syntax error: {msg}") from None
    for key in section:
        doc = doc.get(key) if isinstance(doc, dict) else None
        if doc is None:
            raise fail(None, f"no [{'.'.join(section)}] table")
    if not isinstance(doc, dict):
        raise fail(None, f"[{'.'.join(section)}] is not a table")
    prefix = ".".join(section) + "." if section else ""

    known = {"rule", "check", "compare", "figures", "description"}
    for key in doc:
        if key not in known:
            raise fail(_key_line(text, key, _header_line(text, prefix[:-1]) if prefix else 0) or None,
                       f"unknown key {prefix + key!r} (known: {', '.join(sorted(known))})")

    cfg = GateConfig(source=source)
    for table, keys, dest in (("rule", _RULE_KEYS, cfg.rules), ("check", _CHECK_KEYS, cfg.checks)):
        entries = doc.get(table, [])
        if not isinstance(entries, list):
            raise fail(None, f"{prefix + table} must be an array of tables ([[{prefix + table}]])")
        headers = _table_lines(text, prefix, table)
        for i, entry in enumerate(entries):
            header = headers[i] if i < len(headers) else None
            if not isinstance(entry, dict):
                raise fail(header, f"{table} #{i + 1} is not a table")
            line = _expr_line(text, entry.get("expr"), header)
            extra = set(entry) - keys
            if extra:
                first = min(extra, key=lambda k: _key_line(text, k, header) or 0)
                raise fail(_key_line(text, first, header),
                           f"{table} #{i + 1}: unknown key(s) {', '.join(sorted(extra))} (known: {', '.join(sorted(keys))})")
            if "expr" not in entry:
                raise fail(header, f"{table} #{i + 1}: missing 'expr'")
            try:
                tree, figs = parse_expr(entry["expr"])
            except ValueError as e:
                raise fail(line, f"{table} #{i + 1}: bad expr {entry['expr']!r}: {e}") from None
            severity = entry.get("severity", "error")
            if severity not in SEVERITIES:
                raise fail(_key_line(text, "severity", header), f"{table} #{i + 1}: severity must be one of {'/'.join(SEVERITIES)}, not {severity!r}")
            for k, typ in (("required", bool), ("message", str), ("name", str)):
                if k in entry and not isinstance(entry[k], typ):
                    raise fail(_key_line(text, k, header), f"{table} #{i + 1}: {k} must be a {typ.__name__}")
            dest.append(
                Rule(
                    name=entry.get("name") or " ".join(entry["expr"].split()),
                    expr=" ".join(entry["expr"].split()),
                    severity=severity,
                    required=bool(entry.get("required", table == "check")),
                    message=entry.get("message", ""),
                    line=line,
                    figures=figs,
                    _tree=tree,
                )
            )

    comp = doc.get("compare", {})
    if not isinstance(comp, dict):
        raise fail(None, f"{prefix}compare must be a table")
    comp_line = _header_line(text, prefix + "compare")
    extra = set(comp) - _COMPARE_KEYS
    if extra:
        raise fail(_key_line(text, sorted(extra)[0], comp_line), f"{prefix}compare: unknown key(s) {', '.join(sorted(extra))}")
    try:
        cfg.compare = CompareSettings(**comp)
        _validate_compare(cfg.compare)
    except (TypeError, ValueError) as e:
        word = str(e).split()[0] if str(e) else ""
        key = word if word in _COMPARE_KEYS else word.rstrip("s")  # "tolerances must be >= 0"
        raise fail(_key_line(text, key, comp_line) if key in _COMPARE_KEYS else comp_line,
                   f"{prefix}compare: {e}") from None

    figs = doc.get("figures", {})
    if not isinstance(figs, dict):
        raise fail(None, f"{prefix}figures must be a table of tables")
    for name, pol in figs.items():
        fig_line = _header_line(text, f"{prefix}figures.{name}")
        if not isinstance(pol, dict) or set(pol) - _FIGURE_KEYS:
            bad = sorted(set(pol) - _FIGURE_KEYS) if isinstance(pol, dict) else []
            raise fail(_key_line(text, bad[0], fig_line) if bad else fig_line,
                       f"{prefix}figures.{name}: expected a table with keys {', '.join(sorted(_FIGURE_KEYS))}")
        if pol.get("better", "lower") not in BETTER:
            raise fail(_key_line(text, "better", fig_line), f"{prefix}figures.{name}: better must be lower|higher|none")
        cfg.figures[name] = FigurePolicy(**pol)
    if check_metrics:
        _check_metric_names(cfg, text, prefix, fail)
    return cfg


def _check_metric_names(cfg: GateConfig, text: str, prefix: str, fail) -> None:
    from analysis.metrics_catalogue import is_known, unknown_message

    for table, rules in (("rule", cfg.rules), ("check", cfg.checks)):
        for i, r in enumerate(rules):
            for name in r.figures:
                if not is_known(name):
                    raise fail(r.line, f"{table} #{i + 1}: {unknown_message(name)}")
    for name in cfg.figures:
        # globs (`*_ms`) are policies over whatever matches; exact names must exist
        if not any(ch in name for ch in "*?[") and not is_known(name):
            raise fail(_header_line(text, f"{prefix}figures.{name}"), f"{prefix}figures.{name}: {unknown_message(name)}")


def _validate_compare(c: CompareSettings) -> None:
    if not 0 < c.alpha < 1:
        raise ValueError("alpha must be in (0, 1)")
    if c.tolerance < 0 or c.abs_tolerance < 0:
        raise ValueError("tolerances must be >= 0")
    if int(c.min_samples) != c.min_samples or c.min_samples < 2:
        raise ValueError("min_samples must be an integer >= 2")
    if c.correction not in ("holm", "none"):
        raise ValueError("correction must be 'holm' or 'none'")
    if not 0 < c.confidence < 1:
        raise ValueError("confidence must be in (0, 1)")


DEFAULT_GATE = Path(__file__).with_name("default_gate.toml")


def load_gate_file(path: Path) -> GateConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise GateFileError(f"gate file {path}: cannot read ({e.strerror})") from None
    section = ("tool", "earshot", "gate") if path.name == "pyproject.toml" else ()
    return load_gate_text(text, str(path), section=section)


def find_gate(gate_file: Path | None = None, target_root: Path | None = None) -> GateConfig:
    """Explicit file; else [tool.earshot.gate] in the target's pyproject.toml;
    else the shipped default."""
    if gate_file is not None:
        return load_gate_file(gate_file)
    if target_root is not None:
        pyproject = Path(target_root) / "pyproject.toml"
        if pyproject.is_file():
            text = pyproject.read_text(encoding="utf-8", errors="replace")
            try:
                doc = tomllib.loads(text)
            except tomllib.TOMLDecodeError:
                if "earshot" in text:  # meant for us: say why it cannot be used
                    return load_gate_file(pyproject)
                doc = {}  # a target's broken pyproject is not ours to judge otherwise
            if isinstance(doc.get("tool", {}).get("earshot", {}).get("gate"), dict):
                return load_gate_file(pyproject)
    return load_gate_file(DEFAULT_GATE)
