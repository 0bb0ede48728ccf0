"""junit.xml: one test case per gate rule, so CI systems that read JUnit show
which threshold broke. An error rule that fails is a <failure>; a warn rule
that fails passes with its message in <system-out> (a warning must not turn a
build red); an optional rule the run could not measure is <skipped>; an INVALID run is an <error> on every rule, since nothing was
measured that could be judged."""
from __future__ import annotations

import xml.etree.ElementTree as ET

from .context import RunContext, rule_outcome
from .redact import redact
from .text import fmt_number


def render_junit(ctx: RunContext) -> str | None:
    if not ctx.gate:
        return None
    rules = ctx.gate.get("rules") or []
    v = ctx.verdict()
    invalid = v.verdict == "INVALID"
    suite = ET.Element("testsuite", name=f"earshot gate: {ctx.name}")
    failures = errors = skipped = 0
    for r in rules:
        name = str(r.get("name", "rule"))
        case = ET.SubElement(suite, "testcase", classname="earshot.gate", name=name, time="0")
        detail = f"{r.get('expr', '')} (value {fmt_number(r.get('value'))})"
        msg = redact(str(r.get("message", "")))
        if invalid:
            errors += 1
            e = ET.SubElement(case, "error", message=redact(f"run invalid: {v.reason}"), type="invalid")
            e.text = redact(detail)
        elif (outcome := rule_outcome(r)) == "fail":
            failures += 1
            e = ET.SubElement(case, "failure", message=msg or name, type="threshold")
            e.text = redact(detail)
        elif outcome in ("not measured", "not judged"):
            skipped += 1
            ET.SubElement(case, "skipped", message=msg or outcome)
        elif outcome == "warn":
            out = ET.SubElement(case, "system-out")
            out.text = redact(f"WARNING: {msg} — {detail}")
        else:
            out = ET.SubElement(case, "system-out")
            out.text = redact(detail)
    suite.set("tests", str(len(rules)))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", str(skipped))
    root = ET.Element("testsuites", name="earshot", tests=str(len(rules)), failures=str(failures), errors=str(errors))
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
