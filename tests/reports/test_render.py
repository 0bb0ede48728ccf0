"""The renderers on a synthetic run directory: formats exact, verdict right,
nothing lost, nothing leaked, and a run that died early still reported."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from analysis.model import Finding, Location, assign_ids
from reports import render_all
from reports.context import load_context
from reports.redact import redact

from .synthetic import RUN_DATE, hand_findings, make_run_dir

ROOT = Path(__file__).resolve().parents[2]
AUDIT_FIELDS = ["Severity", "Dimension", "Location", "Status", "Description", "Evidence", "Impact", "Suggested Fix"]


@pytest.fixture
def rendered(tmp_path):
    rd = make_run_dir(tmp_path)
    paths = render_all(rd, audit_dir=tmp_path / "checkout" / "docs" / "audits")
    return rd, paths, tmp_path


def test_render_all_writes_every_format(rendered):
    rd, paths, tmp = rendered
    names = {p.relative_to(tmp).as_posix() for p in paths}
    assert names == {
        f"{rd.name}/report.md", f"{rd.name}/report.html", f"{rd.name}/results.sarif", f"{rd.name}/junit.xml",
        f"{rd.name}/audit/AUDIT_BACKEND_{RUN_DATE}.md", f"checkout/docs/audits/AUDIT_BACKEND_{RUN_DATE}.md",
    }
    assert (tmp / "checkout/docs/audits" / f"AUDIT_BACKEND_{RUN_DATE}.md").read_text() == (rd / "audit" / f"AUDIT_BACKEND_{RUN_DATE}.md").read_text()


def test_audit_has_the_exact_per_finding_format(rendered):
    rd, _, _ = rendered
    text = (rd / "audit" / f"AUDIT_BACKEND_{RUN_DATE}.md").read_text()
    assert text.startswith(f"# Backend Audit — {RUN_DATE}\n")
    blocks = re.split(r"^### ", text, flags=re.M)[1:]
    findings = {f.id: f for f in hand_findings()}
    seen = []
    for b in blocks:
        head = b.splitlines()[0]
        m = re.match(r"(B\d+-\d+): (.+)$", head)
        if not m:
            continue  # "### Run problems" and the like
        fid = m.group(1)
        seen.append(fid)
        f = findings[fid]
        assert m.group(2) == f.title
        fields = re.findall(r"^- \*\*([A-Za-z ]+)\*\*:", b, re.M)
        assert fields == AUDIT_FIELDS, (fid, fields)
        assert f"- **Severity**: {f.severity}\n" in b
        assert f"- **Dimension**: {f.dimension}\n" in b
        assert "- **Status**: NEW\n" in b
        if f.location.has_code:
            span = f"{f.location.line_start}" + (f"-{f.location.line_end}" if f.location.line_end else "")
            assert f"- **Location**: `{f.location.file}:{span}`" in b
        for k in f.figures:
            assert f"`{k}` = " in b
    assert sorted(seen) == sorted(findings)
    # severity sections in order, CRITICAL first
    order = [m.group(1) for m in re.finditer(r"^## (CRITICAL|HIGH|MEDIUM|LOW)$", text, re.M)]
    assert order == ["CRITICAL", "HIGH", "MEDIUM", "LOW"]
    # the summary table at the end, one row per finding
    tail = text.split("## Summary", 1)[1]
    assert "| Finding | Severity | Dimension | Action | Issue |" in tail
    rows = [ln for ln in tail.splitlines() if re.match(r"^\| B\d+-\d+: ", ln)]
    assert len(rows) == len(findings)
    # a pipe in a title must not break the table
    assert all(ln.count(" | ") == 4 for ln in rows), rows
    assert "| Executive Summary" not in text and "| CRITICAL | 1 | B8-1 |" in text
    assert "| **Total** | **7** | |" in text
    # the stack excerpt is kept, its home path is not
    assert "wav_encoder.py\", line 91" in text and "/home/" not in text and "alice" not in text


def test_audit_shows_what_publishing_found(tmp_path):
    rd = make_run_dir(tmp_path)
    fs = {f.kind: f for f in hand_findings()}
    (rd / "issues").mkdir()
    (rd / "issues" / "published.json").write_text(json.dumps({"repo": "a/b", "entries": {
        fs["loop_stall"].fingerprint: {"action": "created", "status": "NEW", "issue": 41},
        fs["ws_disconnect_leak"].fingerprint: {"action": "existing", "status": "Existing: #12", "issue": 12},
        fs["rss_growth"].fingerprint: {"action": "created", "status": "Regression of #7", "issue": 42},
    }}))
    render_all(rd)
    text = (rd / "audit" / f"AUDIT_BACKEND_{RUN_DATE}.md").read_text()
    assert "- **Status**: Existing: #12" in text and "- **Status**: Regression of #7" in text
    assert re.search(r"\| B8-1: .*\| Filed \| #41 \|", text)
    assert re.search(r"\| B2-1: .*\| Skipped \(existing\) \| #12 \|", text)
    assert re.search(r"\| B8-2: .*\| Filed \(regression\) \| #42 \|", text)


def test_report_md_puts_the_verdict_first(rendered):
    rd, _, _ = rendered
    text = (rd / "report.md").read_text()
    first_heading = re.findall(r"^##? .+$", text, re.M)[1]
    assert first_heading.startswith("## Verdict:") and "FAIL" in first_heading
    assert text.index("## Verdict") < text.index("## Findings") < text.index("## Summary")
    assert [m.group(1) for m in re.finditer(r"^### (CRITICAL|HIGH|MEDIUM|LOW) \(", text, re.M)] == ["CRITICAL", "HIGH", "MEDIUM", "LOW"]
    assert "| 1 | 2 | 2 | 2 | 7 |" in text


def test_sarif_has_only_code_located_findings(rendered):
    rd, _, _ = rendered
    doc = json.loads((rd / "results.sarif").read_text())
    assert doc["version"] == "2.1.0" and "sarif-2.1.0" in doc["$schema"]
    run = doc["runs"][0]
    coded = [f for f in hand_findings() if f.location.has_code]
    assert len(coded) == 4 and len(run["results"]) == 4
    by_id = {r["properties"]["id"]: r for r in run["results"]}
    for f in coded:
        r = by_id[f.id]
        loc = r["locations"][0]["physicalLocation"]
        assert loc["artifactLocation"]["uri"] == f.location.file
        assert loc["region"]["startLine"] == f.location.line_start
        if f.location.line_end:
            assert loc["region"]["endLine"] == f.location.line_end
        assert r["ruleId"] == f.kind and r["partialFingerprints"]["earshotFingerprint/v1"] == f.fingerprint
        assert r["level"] == {"CRITICAL": "error", "HIGH": "error", "MEDIUM": "warning", "LOW": "note"}[f.severity]
    assert {r["id"] for r in run["tool"]["driver"]["rules"]} == {f.kind for f in coded}


def test_junit_has_one_case_per_gate_rule(rendered):
    rd, _, _ = rendered
    root = ET.parse(rd / "junit.xml").getroot()
    cases = root.findall(".//testcase")
    assert [c.get("name") for c in cases] == ["no_critical", "stall_max", "ttfa_p95", "rss_growth"]
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    assert failed == ["no_critical", "stall_max"]  # the warn rule does not turn the build red
    assert root.find("testsuite").get("failures") == "2" and root.find("testsuite").get("tests") == "4"
    assert "RSS grew 186 MiB" in cases[3].find("system-out").text


def test_junit_absent_without_gate_and_invalid_run_is_error_everywhere(tmp_path):
    rd = make_run_dir(tmp_path / "nogate", gate=False)
    names = {p.name for p in render_all(rd)}
    assert "junit.xml" not in names and not (rd / "junit.xml").exists()
    rd2 = make_run_dir(tmp_path / "invalid", run={"status": "invalid", "invalid_reason": "load generator saturated (CPU 99%)"})
    render_all(rd2)
    root = ET.parse(rd2 / "junit.xml").getroot()
    assert all(c.find("error") is not None for c in root.findall(".//testcase"))
    assert "load generator saturated" in (rd2 / "report.md").read_text().split("## Findings")[0]


@pytest.mark.parametrize(
    "severities,run,gate,expected",
    [
        (["LOW", "MEDIUM"], {}, False, "PASS"),
        (["LOW", "HIGH"], {}, False, "FAIL"),
        (["CRITICAL"], {}, False, "FAIL"),
        ([], {}, False, "PASS"),
        (["LOW"], {"status": "invalid", "invalid_reason": "target died"}, False, "INVALID"),
        (["CRITICAL"], {}, {"verdict": "PASS", "exit_code": 0, "reason": "waived", "rules": []}, "PASS"),
        (["LOW"], {"status": "invalid", "invalid_reason": "x"}, {"verdict": "PASS", "exit_code": 0, "reason": "stale", "rules": []}, "INVALID"),
        # no gate.json: the verdict the run printed and exited with wins over a recount
        (["LOW"], {"verdict": "FAIL", "exit_code": 1, "verdict_reason": "p95 TTFA over budget"}, False, "FAIL"),
        (["LOW"], {"started_at": "2026-09-21T10:00:00+00:00", "started": None}, False, "PASS"),
    ],
)
def test_verdict(tmp_path, severities, run, gate, expected):
    fs = assign_ids([Finding(kind=f"k{i}", title=f"t{i}", severity=s, dimension="Performance", description="d",
                             impact="i", suggested_fix="f", key=str(i)) for i, s in enumerate(severities)])
    rd = make_run_dir(tmp_path, findings=fs, run=run, gate=gate)
    v = load_context(rd).verdict()
    assert v.verdict == expected
    render_all(rd)
    assert f"## Verdict: " in (rd / "report.md").read_text() and expected in (rd / "report.md").read_text().split("\n\n")[1]
    html = (rd / "report.html").read_text()
    assert html.index(f"<h1>{expected}</h1>") < html.index("Findings</h2>")


def test_a_run_that_died_early_still_gets_every_report(tmp_path):
    rd = tmp_path / "2026-09-21T10-00-00_crashed"
    rd.mkdir()
    (rd / "run.json").write_text(json.dumps({"status": "invalid", "invalid_reason": "target exited with code -9 at t=3.2 s"}))
    (rd / "samples.jsonl").write_text('{"t": 1.0, "rss": 1000')  # torn first line
    paths = render_all(rd)
    assert {p.name for p in paths} == {"report.md", "report.html", f"AUDIT_BACKEND_{RUN_DATE}.md", "results.sarif"}
    md = (rd / "report.md").read_text()
    assert "INVALID" in md and "findings.json missing" in md and "exited with code -9" in md
    html = (rd / "report.html").read_text()
    assert "Not shown: no process samples" in html and "Not shown: no agent data" in html
    assert json.loads((rd / "results.sarif").read_text())["runs"][0]["results"] == []


def test_html_is_self_contained_and_embeds_plots_and_boundary_images(rendered):
    rd, _, _ = rendered
    html = (rd / "report.html").read_text()
    # nothing fetched from anywhere: no external src/href, no script
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "<script" not in html.lower()
    imgs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    # stalls, process samples, TTFA/gaps, buffer levels, and the audio boundary zoom
    assert len(imgs) == 5 and "Not shown" not in html
    import base64

    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in imgs)
    # the audio finding's own waveform/spectrogram sits in its card
    card = html.split('id="B3-1"', 1)[1].split("</section>", 1)[0]
    assert "plots/s003_boundary_10s.png" in card and "data:image/png" in card
    # verdict, then findings by severity, then plots
    assert html.index("<h1>FAIL</h1>") < html.index("CRITICAL (1)") < html.index("HIGH (2)") < html.index("Plots</h2>")
    assert "/home/" not in html and "alice" not in html


def test_html_escapes_what_it_shows(tmp_path):
    fs = assign_ids([Finding(kind="x", title="<script>alert(1)</script>", severity="LOW", dimension="Performance",
                             description="a & b", impact="i", suggested_fix="f")])
    rd = make_run_dir(tmp_path, findings=fs)
    render_all(rd)
    html = (rd / "report.html").read_text()
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_artifacts_outside_the_run_dir_are_not_embedded(tmp_path):
    secret = tmp_path / "outside.png"
    secret.write_bytes(b"\x89PNG\r\n\x1a\n" + b"secret")
    fs = assign_ids([Finding(kind="x", title="t", severity="LOW", dimension="Performance", description="d", impact="i",
                             suggested_fix="f", artifacts=["../outside.png"])])
    rd = make_run_dir(tmp_path, findings=fs)
    render_all(rd)
    import base64

    assert base64.b64encode(secret.read_bytes()).decode() not in (rd / "report.html").read_text()


def test_redact():
    home, root = "/" + "home/alice/x.py", "/" + "root/z"  # split: the repo guard greps for such paths
    r = redact(f"File {home}, /Users/bob/y, {root} and C:\\Users\\carol\\w, token ghp_" + "a" * 36)
    assert "alice" not in r and "bob" not in r and "carol" not in r and "/" + "root/" not in r and "ghp_" not in r
    assert "~/x.py" in r and "<redacted-token>" in r
    assert redact("the root cause in /work/main") == "the root cause in /work/main"
    # a user name seen in a home path is removed where it stands alone too
    assert redact("opened /" + "home/dave/a by dave") == "opened ~/a by <user>"


def test_cli(tmp_path):
    rd = make_run_dir(tmp_path)
    r = subprocess.run([sys.executable, "-m", "reports", str(rd)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert str(rd / "report.html") in r.stdout.splitlines()
    bad = subprocess.run([sys.executable, "-m", "reports", str(tmp_path / "nope")], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "not found" in bad.stderr


def test_gate_rules_as_the_gate_writes_them(tmp_path):
    """gate.json rules carry a status; an optional rule the run could not
    measure is skipped, a required one fails."""
    gate = {"verdict": "FAIL", "exit_code": 1, "reason": "required figure missing", "rules": [
        {"name": "streams measured", "expr": "streams_total >= 1", "severity": "error", "required": True, "status": "passed", "passed": True, "value": 10.0, "message": ""},
        {"name": "loadgen", "expr": "loadgen_cpu_max_percent < 95", "severity": "warn", "required": False, "status": "not measured", "passed": False, "value": None, "message": "loadgen_cpu_max_percent not measured"},
        {"name": "ttfa", "expr": "ttfa_p95_ms < 1500", "severity": "error", "required": True, "status": "not measured", "passed": False, "value": None, "message": "ttfa_p95_ms not measured"},
    ], "regressions": [{"figure": "ttfa_p95_ms", "median_a": 130.0, "median_b": 420.0, "ratio": 3.23, "p_value": 0.002, "verdict": "worse", "note": ""}]}
    rd = make_run_dir(tmp_path, gate=gate)
    render_all(rd)
    cases = {c.get("name"): c for c in ET.parse(rd / "junit.xml").getroot().iter("testcase")}
    assert cases["streams measured"].find("failure") is None and cases["streams measured"].find("skipped") is None
    assert cases["loadgen"].find("skipped") is not None and cases["loadgen"].find("failure") is None
    assert cases["ttfa"].find("failure") is not None
    md = (rd / "report.md").read_text()
    assert "| `loadgen` | warn | — | not measured |" in md and "| `ttfa` | error | — | **FAIL** |" in md
    assert "ttfa_p95_ms: 130.0 → 420.0 (×3.23, p=0.002)" in md
    assert "ttfa_p95_ms: 130.0 → 420.0" in (rd / "report.html").read_text()
