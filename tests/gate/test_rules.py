"""Gate rule files: every mistake is one line naming the file and the line of
the mistake; expressions are data (never eval'd); a target's pyproject.toml
can carry the gate under [tool.earshot.gate]."""
from __future__ import annotations

import math

import pytest

from reports.gate.rules import DEFAULT_GATE, GateFileError, NotMeasured, find_gate, load_gate_file, load_gate_text


def error_of(text: str, source: str = "g.toml") -> str:
    with pytest.raises(GateFileError) as e:
        load_gate_text(text, source)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("text,where,what", [
    ('description = "x"\n[[rule]]\nexpr = "a < 1\n', "g.toml:3:", "TOML syntax error"),
    ('[[rule]]\nexpr = "a < 1"\n\n[[rule]]\nexpr = "b < 2"\nsevrity = "warn"\n', "g.toml:6:", "rule #2: unknown key(s) sevrity"),
    ('[[rule]]\nexpr = "a < 1"\nseverity = "fatal"\n', "g.toml:3:", "severity must be one of error/warn, not 'fatal'"),
    ('[[rule]]\nexpr = "a < 1"\nrequired = "yes"\n', "g.toml:3:", "required must be a bool"),
    ('\n[[rule]]\nexpr = "__import__(\'os\').system(\'x\') < 1"\n', "g.toml:3:", "unsupported syntax"),
    ('[[rule]]\nexpr = "a + 1"\n', "g.toml:2:", "must be a comparison"),
    ('[[rule]]\nexpr = "1 < 2"\n', "g.toml:2:", "name a figure"),
    ('[[rule]]\nexpr = "a is None"\n', "g.toml:2:", "unsupported comparison"),
    ('[[rule]]\nexpr = "a < \'x\'"\n', "g.toml:2:", "only numbers and figure names"),
    ('[[check]]\nname = "x"\n', "g.toml:1:", "check #1: missing 'expr'"),
    ('description = "x"\nrules = 1\n', "g.toml:2:", "unknown key 'rules'"),
    ('# c\n[compare]\nalpha = 0.05\nmin_samples = 1\n', "g.toml:4:", "min_samples must be an integer >= 2"),
    ('[compare]\nalpha = 0.05\n\ntolerance = -1\n', "g.toml:4:", "tolerances must be >= 0"),
    ('[compare]\nfoo = 1\n', "g.toml:2:", "compare: unknown key(s) foo"),
    ('\n[figures."x_ms"]\ntolerance = 0.1\nbetter = "up"\n', "g.toml:4:", "better must be lower|higher|none"),
    ('\n[figures."samples.*"]\nbeter = "lower"\n', "g.toml:3:", "figures.samples.*: expected a table"),
])
def test_bad_gate_file_names_the_line(text, where, what):
    msg = error_of(text)
    assert msg.startswith(f"gate file {where} ") and what in msg, msg


def test_unreadable_gate_file_is_one_line(tmp_path):
    with pytest.raises(GateFileError, match=r"^gate file .*missing\.toml: cannot read"):
        load_gate_file(tmp_path / "missing.toml")


def test_default_gate_parses_and_every_rule_names_figures():
    cfg = load_gate_file(DEFAULT_GATE)
    assert cfg.rules and cfg.checks
    assert all(r.figures and r.line for r in cfg.rules + cfg.checks)


def test_expressions_evaluate_chains_arithmetic_and_missing_figures():
    cfg = load_gate_text('[[rule]]\nexpr = "0.5 <= x / y <= 2"\n[[rule]]\nexpr = "findings.HIGH == 0"\n', "g",
                         check_metrics=False)  # x and y are placeholders, not catalogue metrics
    chain, high = cfg.rules
    assert chain.evaluate({"x": 3, "y": 2}) == (True, 1.5)
    assert chain.evaluate({"x": 5, "y": 2})[0] is False
    with pytest.raises(NotMeasured) as e:
        chain.evaluate({"x": 1, "y": 0})
    assert "undefined" in e.value.why
    with pytest.raises(NotMeasured) as e:
        high.evaluate({"x": 1})
    assert e.value.figures == ["findings.HIGH"]
    assert high.evaluate({"findings.HIGH": 0}) == (True, 0.0)
    assert math.isclose(chain.evaluate({"x": 1, "y": 1})[1], 1.0)


PYPROJECT = '''[project]
name = "auralis"

[tool.black]
line-length = 100

[tool.earshot.gate]
description = "Auralis's own gate"

[[tool.earshot.gate.rule]]
expr = "ttfa_p95_ms < 800"
message = "our users notice more than 0.8 s"

[tool.earshot.gate.compare]
alpha = 0.01
'''


def test_target_pyproject_gate_is_used(tmp_path):
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    cfg = find_gate(None, tmp_path)
    assert cfg.source.endswith("pyproject.toml")
    assert [r.expr for r in cfg.rules] == ["ttfa_p95_ms < 800"] and cfg.rules[0].line == 11
    assert cfg.compare.alpha == 0.01


def test_explicit_gate_file_wins_over_target_pyproject(tmp_path):
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    gate = tmp_path / "mine.toml"
    gate.write_text('[[rule]]\nexpr = "underruns == 0"\n')
    assert [r.expr for r in find_gate(gate, tmp_path).rules] == ["underruns == 0"]


def test_target_pyproject_without_our_table_falls_back_to_default(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "auralis"\n')
    assert find_gate(None, tmp_path).source == str(DEFAULT_GATE)
    (tmp_path / "pyproject.toml").write_text('[project\nname = "broken but not ours"\n')
    assert find_gate(None, tmp_path).source == str(DEFAULT_GATE)


def test_bad_rule_in_target_pyproject_names_pyproject_and_line(tmp_path):
    (tmp_path / "pyproject.toml").write_text(PYPROJECT.replace('message = "our', 'sevrity = "warn"\nmessage = "our'))
    with pytest.raises(GateFileError) as e:
        find_gate(None, tmp_path)
    assert f"{tmp_path / 'pyproject.toml'}:12: rule #1: unknown key(s) sevrity" in str(e.value)


def test_unknown_key_in_target_pyproject_gate_names_its_line(tmp_path):
    (tmp_path / "pyproject.toml").write_text(PYPROJECT.replace('description = ', 'rules = 1\ndescription = '))
    with pytest.raises(GateFileError) as e:
        find_gate(None, tmp_path)
    assert "pyproject.toml:8: unknown key 'tool.earshot.gate.rules'" in str(e.value)


def test_misspelt_metric_fails_to_load_naming_the_closest(tmp_path):
    msg = error_of('description = "x"\n\n[[rule]]\nexpr = "ttfa_p59_ms < 800"\n')
    assert msg.startswith("gate file g.toml:4: rule #1: unknown metric 'ttfa_p59_ms'"), msg
    assert "did you mean ttfa_p50_ms" in msg or "did you mean ttfa_p95_ms" in msg, msg
    msg = error_of('[[check]]\nexpr = "streams_totl >= 1"\n')
    assert "check #1: unknown metric 'streams_totl'; did you mean streams_total" in msg, msg
    msg = error_of('\n[figures.ttfa_p95]\ntolerance = 0.1\n')
    assert msg.startswith("gate file g.toml:2: figures.ttfa_p95: unknown metric"), msg


def test_patterned_and_known_metrics_load():
    cfg = load_gate_text('[[rule]]\nexpr = "audio_streams_analysed_enhanced >= 1"\n'
                         '[[rule]]\nexpr = "findings.CRITICAL + findings.HIGH == 0"\n'
                         '[figures."loop_*"]\ntolerance = 0.3\n', "g")
    assert len(cfg.rules) == 2


def test_gate_file_misspelt_metric_is_bad_input_exit_2(tmp_path):
    """End to end through the CLI, before anything launches."""
    import subprocess
    import sys
    from pathlib import Path

    gate = tmp_path / "g.toml"
    gate.write_text('[[rule]]\nexpr = "underuns == 0"\n')
    r = subprocess.run([sys.executable, "-m", "instrument.run", "--scenario", "smoke", "--gate", str(gate),
                        "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=60,
                       cwd=Path(__file__).resolve().parents[2])
    assert r.returncode == 2, r.stderr
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "unknown metric 'underuns'; did you mean underruns" in err[0], r.stderr
    assert not (tmp_path / "run" / "target.log").exists()  # nothing launched
