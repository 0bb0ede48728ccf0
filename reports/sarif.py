"""results.sarif (SARIF 2.1.0) for findings with a code location, so GitHub
code scanning shows them on the line a stack pointed at. Findings observed
only at run level (a stream, a time) have no place in SARIF and are left out."""
from __future__ import annotations

import json
from typing import Any

from analysis.model import Finding

from .context import RunContext
from .redact import redact_obj
from .text import fmt_number

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"

# SARIF has three levels; security-severity lets code scanning rank within them.
_LEVEL = {"CRITICAL": "error", "HIGH": "error", "MEDIUM": "warning", "LOW": "note"}
_SECURITY_SEVERITY = {"CRITICAL": "9.5", "HIGH": "7.5", "MEDIUM": "5.0", "LOW": "2.0"}


def _tool_version() -> str:
    try:
        from importlib.metadata import version

        return version("earshot")
    except Exception:
        return "0"


def _result(f: Finding) -> dict[str, Any]:
    loc = f.location
    region: dict[str, Any] = {"startLine": int(loc.line_start)}
    if loc.line_end and loc.line_end >= loc.line_start:
        region["endLine"] = int(loc.line_end)
    text = f"{f.id}: {f.title}. {f.description}"
    if f.figures:
        text += " Measured: " + ", ".join(f"{k}={fmt_number(v)}" for k, v in f.figures.items()) + "."
    if f.symptoms:
        text += " Symptoms of the same cause: " + "; ".join(
            f"{s.get('kind')} ({s.get('severity')}): {s.get('title')}" for s in f.symptoms) + "."
    if f.section == "environment":
        text += " Caused by the environment the target ran in; not counted by the gate."
    physical = {"artifactLocation": {"uri": str(loc.file).lstrip("/"), "uriBaseId": "SRCROOT"}, "region": region}
    result: dict[str, Any] = {
        "ruleId": f.kind,
        "level": "note" if f.section == "environment" else _LEVEL[f.severity],
        "message": {"text": text},
        "locations": [{"physicalLocation": physical}],
        "partialFingerprints": {"earshotFingerprint/v1": f.fingerprint},
        "properties": {"id": f.id, "severity": f.severity, "dimension": f.dimension, "figures": f.figures,
                       "section": f.section,
                       "symptoms": [{"kind": s.get("kind"), "severity": s.get("severity"), "title": s.get("title"),
                                     "figures": s.get("figures") or {}} for s in f.symptoms]},
    }
    if loc.function:
        result["locations"][0]["logicalLocations"] = [{"name": loc.function, "kind": "function"}]
    return result


def render_sarif(ctx: RunContext) -> str:
    coded = [f for f in ctx.findings if f.location.has_code]
    rules: dict[str, dict[str, Any]] = {}
    for f in coded:
        r = rules.setdefault(
            f.kind,
            {
                "id": f.kind,
                "name": "".join(p.capitalize() for p in f.kind.split("_")),
                "shortDescription": {"text": f.title},
                "fullDescription": {"text": f.description},
                "help": {"text": f.suggested_fix},
                "defaultConfiguration": {"level": _LEVEL[f.severity]},
                "properties": {"tags": [f.dimension], "security-severity": _SECURITY_SEVERITY[f.severity]},
            },
        )
        # a rule's default is its worst observed instance
        if float(_SECURITY_SEVERITY[f.severity]) > float(r["properties"]["security-severity"]):
            r["properties"]["security-severity"] = _SECURITY_SEVERITY[f.severity]
            r["defaultConfiguration"]["level"] = _LEVEL[f.severity]
    doc = {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "earshot",
                        "version": _tool_version(),
                        "rules": list(rules.values()),
                    }
                },
                "originalUriBaseIds": {"SRCROOT": {"description": {"text": "root of the target's checkout"}}},
                "automationDetails": {"id": f"earshot/{ctx.name}"},
                "results": [_result(f) for f in coded],
            }
        ],
    }
    return json.dumps(redact_obj(doc), indent=2)
