"""Publishing against a real HTTP server on loopback that plays GitHub."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reports.context import load_context
from reports.github import GitHub
from reports.issues import FINGERPRINT_RE, titles_match
from reports.publish import publish

from .fake_github import TOKEN, Fault, FakeGitHub
from .synthetic import RUN_DATE, hand_findings, make_run_dir

ROOT = Path(__file__).resolve().parents[2]


class Sleeps(list):
    def __call__(self, s: float) -> None:
        self.append(s)


@pytest.fixture
def gh_server():
    with FakeGitHub() as srv:
        yield srv


@pytest.fixture
def run_dir(tmp_path):
    return make_run_dir(tmp_path)


def seed(srv: FakeGitHub) -> dict[str, int]:
    """An open human-filed issue matching one finding by title keywords, a
    closed earshot issue matching another by fingerprint, unrelated issues and
    a pull request: enough for several pages at the fake's page cap."""
    fs = {f.kind: f for f in hand_findings()}
    nums = {}
    for i in range(4):
        srv.add_issue(f"Unrelated UI glitch number {i} in the album grid", "nothing to do with the backend", state="closed" if i % 2 else "open")
    srv.add_issue("Refactor stream controller", "touches core", pull_request=True)
    # a human's wording of the disconnect leak (no fingerprint): title keywords must find it
    nums["open_title"] = srv.add_issue("[2026-08-01] HIGH - Disconnect mid-stream leaks producer task", "seen in prod")
    fp = fs["rss_growth"].fingerprint
    nums["closed_fp"] = srv.add_issue("[2026-07-01] MEDIUM - memory keeps growing", f"old body\n<!-- earshot-fingerprint: {fp} -->", state="closed")
    # an open issue on the same code path as the CRITICAL stall: gets a Related comment
    nums["same_path"] = srv.add_issue("Encoder is slow", "profiling shows auralis-web/backend/core/encoding/wav_encoder.py encode_chunk dominating")
    return nums


def gh_for(srv: FakeGitHub, sleeps=None, max_wait=60.0) -> GitHub:
    return GitHub(srv.repo, TOKEN, api_url=srv.url, max_wait_s=max_wait, sleep=sleeps if sleeps is not None else Sleeps())


def fingerprints_on_server(srv: FakeGitHub) -> list[str]:
    return [m.group(1) for i in srv.issues if (m := FINGERPRINT_RE.search(i.get("body") or ""))]


def test_publishing_twice_files_each_finding_once(gh_server, run_dir):
    nums = seed(gh_server)
    ctx = load_context(run_dir)
    findings = {f.kind: f for f in ctx.findings}
    first = publish(ctx, gh_for(gh_server), log=lambda s: None)
    assert not first.aborted and first.exit_code == 0
    by_kind = {o.finding.kind: o for o in first.outcomes}
    # open match by title: Existing, not filed
    assert by_kind["ws_disconnect_leak"].dedup == f"Existing: #{nums['open_title']}"
    # closed match by fingerprint: filed as a regression, and the old issue told
    reg = by_kind["rss_growth"]
    assert reg.dedup == f"Regression of #{nums['closed_fp']}" and reg.issue
    assert any(c["body"].startswith(f"Related: #{reg.issue} - regression") for c in gh_server.comments[nums["closed_fp"]])
    # the CRITICAL stall's new issue links the open issue on the same code path, both ways
    crit = by_kind["loop_stall"]
    assert any(c["body"].startswith(f"Related: #{crit.issue} - same code path") for c in gh_server.comments[nums["same_path"]])
    created = gh_server.created()
    assert len(created) == len(findings) - 1 == first.created
    # titles, labels and body sections as /audit-publish makes them
    for issue in created:
        assert re.match(rf"^\[{RUN_DATE}\] (CRITICAL|HIGH|MEDIUM|LOW) - \S", issue["title"]), issue["title"]
        sev = issue["title"].split("] ")[1].split(" - ")[0].lower()
        assert sorted(l["name"] for l in issue["labels"]) == sorted([sev, "backend", "bug"])
        body = issue["body"]
        heads = re.findall(r"^## (.+)$", body, re.M)
        for section in ["Summary", "Evidence / Code Paths", "Impact", "Related Issues", "Proposed Fix", "Acceptance Criteria", "Test Plan"]:
            assert section in heads, (section, heads)
        assert FINGERPRINT_RE.search(body)
    reg_issue = next(i for i in created if i["number"] == reg.issue)
    assert f"#{nums['closed_fp']}" in reg_issue["body"].split("## Related Issues")[1].split("##")[0]
    assert {l["name"] for l in gh_server.labels} >= {"critical", "high", "medium", "low", "backend", "bug"}
    # pagination was followed: the seeded issues span several pages
    issue_gets = [r for r in gh_server.requests if r[0] == "GET" and r[1].split("?")[0].endswith("/issues")]
    assert len(issue_gets) >= 3
    # bodies written to the run directory, ledger written
    for f in ctx.findings:
        assert (run_dir / "issues" / f"{f.id}.md").exists()
    ledger = json.loads((run_dir / "issues" / "published.json").read_text())
    assert len(ledger["entries"]) == len(findings)

    # the second run files nothing
    second = publish(load_context(run_dir), gh_for(gh_server), log=lambda s: None)
    assert second.exit_code == 0 and second.created == 0
    assert len(gh_server.created()) == len(findings) - 1
    fps = fingerprints_on_server(gh_server)
    for f in findings.values():
        assert fps.count(f.fingerprint) <= 1 or f.kind == "rss_growth"  # the closed original keeps its fingerprint
    assert sum(1 for i in gh_server.issues if i["state"] == "open" and FINGERPRINT_RE.search(i.get("body") or "")
               and FINGERPRINT_RE.search(i["body"]).group(1) == findings["rss_growth"].fingerprint) == 1
    # and comments are not repeated either
    assert len(gh_server.comments[nums["closed_fp"]]) == 1


def test_a_fresh_run_dir_also_files_nothing_twice(gh_server, tmp_path):
    """Dedup must not depend on the local ledger: a second run directory of
    the same defects finds the issues by fingerprint on GitHub."""
    a = make_run_dir(tmp_path / "a")
    # same defects, worded so differently that only the fingerprint can tell
    reworded = hand_findings()
    for n, f in enumerate(reworded):
        f.title = f"Zyx qwv {n} plonk"
    b = make_run_dir(tmp_path / "b", findings=reworded)
    publish(load_context(a), gh_for(gh_server), log=lambda s: None)
    n = len(gh_server.created())
    res = publish(load_context(b), gh_for(gh_server), log=lambda s: None)
    assert len(gh_server.created()) == n == 7
    assert all(o.dedup.startswith("Existing: #") for o in res.outcomes)


def test_retry_after_is_waited_out(gh_server, run_dir):
    gh_server.faults = [
        Fault("POST", "/issues", 429, {"Retry-After": "2"}),
        Fault("GET", "/labels", 403, {"Retry-After": "1"}, {"message": "secondary rate limit"}),
        Fault("POST", "/issues", 403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "0"}, {"message": "API rate limit exceeded"}),
    ]
    sleeps = Sleeps()
    res = publish(load_context(run_dir), gh_for(gh_server, sleeps), log=lambda s: None)
    assert res.exit_code == 0 and res.created == 7
    assert sorted(sleeps) == [0.0, 1.0, 2.0]


def test_long_rate_limit_stops_and_a_rerun_continues(gh_server, run_dir):
    gh_server.faults = [Fault("POST", "/issues", 429, {"Retry-After": "3600"})]
    # let two issues through first
    real_faults = gh_server.faults
    gh_server.faults = []
    ctx = load_context(run_dir)
    gh = gh_for(gh_server, max_wait=30)
    orig = gh.create_issue
    calls = {"n": 0}

    def create(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            gh_server.faults = real_faults
        return orig(*a, **kw)

    gh.create_issue = create
    res = publish(ctx, gh, log=lambda s: None)
    assert res.aborted and "rate limit" in res.aborted and res.exit_code == 1
    assert res.created == 2 and len(gh_server.created()) == 2
    assert sum(1 for o in res.outcomes if o.dedup == "PENDING") == 5
    res2 = publish(load_context(run_dir), gh_for(gh_server), log=lambda s: None)
    assert res2.exit_code == 0 and res2.created == 5
    assert len(gh_server.created()) == 7
    assert sorted(set(fingerprints_on_server(gh_server))) == sorted(fingerprints_on_server(gh_server))


def test_422_is_recorded_and_others_still_filed(gh_server, run_dir):
    gh_server.faults = [Fault("POST", "/issues", 422, body={"message": "Validation Failed", "errors": [{"code": "custom", "message": "title is too long"}]})]
    res = publish(load_context(run_dir), gh_for(gh_server), log=lambda s: None)
    failed = [o for o in res.outcomes if o.dedup == "FAILED"]
    assert len(failed) == 1 and "title is too long" in failed[0].note
    assert res.created == 6 and res.exit_code == 1 and not res.aborted
    ledger = json.loads((run_dir / "issues" / "published.json").read_text())
    assert ledger["entries"][failed[0].finding.fingerprint]["action"] == "failed"
    res2 = publish(load_context(run_dir), gh_for(gh_server), log=lambda s: None)
    assert res2.created == 1 and len(gh_server.created()) == 7 and res2.exit_code == 0


def test_network_failure_midway_with_the_response_lost(gh_server, run_dir):
    """The worst case: GitHub created the issue but the answer never came.
    The ledger cannot know; the fingerprint on GitHub must prevent a duplicate."""
    gh_server.faults = [Fault("POST", "/issues", 0, after_effect=True)]
    ctx = load_context(run_dir)
    gh = gh_for(gh_server)
    orig = gh.create_issue
    calls = {"n": 0}
    saved = gh_server.faults
    gh_server.faults = []

    def create(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 4:
            gh_server.faults = saved
        return orig(*a, **kw)

    gh.create_issue = create
    res = publish(ctx, gh, log=lambda s: None)
    assert res.aborted and "network failure" in res.aborted
    assert len(gh_server.created()) == 4  # the 4th was created, its answer lost
    ledger = json.loads((run_dir / "issues" / "published.json").read_text())
    assert sum(1 for e in ledger["entries"].values() if e["action"] == "created") == 3
    res2 = publish(load_context(run_dir), gh_for(gh_server), log=lambda s: None)
    assert res2.exit_code == 0
    assert len(gh_server.created()) == 7
    fps = fingerprints_on_server(gh_server)
    assert len(fps) == len(set(fps)) == 7


def test_plain_403_is_a_permission_error_not_a_wait(gh_server, run_dir):
    gh_server.faults = [Fault("GET", "/issues", 403, body={"message": "Resource not accessible by integration"})]
    sleeps = Sleeps()
    res = publish(load_context(run_dir), gh_for(gh_server, sleeps), log=lambda s: None)
    assert res.aborted and "403" in res.aborted and "not accessible" in res.aborted
    assert sleeps == [] and gh_server.created() == []


def test_nothing_published_carries_home_paths_user_names_or_the_token(gh_server, run_dir, monkeypatch):
    monkeypatch.setenv("HOME", "/home/zed-builder")
    monkeypatch.setenv("USER", "zed-builder")
    import getpass

    monkeypatch.setattr(getpass, "getuser", lambda: "zed-builder")
    f = json.loads((run_dir / "findings.json").read_text())
    f["findings"][0]["evidence"].append("log: /home/zed-builder/.cache/x opened by zed-builder")
    f["findings"][0]["title"] += " (seen by zed-builder)"
    (run_dir / "findings.json").write_text(json.dumps(f))
    publish(load_context(run_dir), gh_for(gh_server), log=lambda s: None)
    posted = [r[2] for r in gh_server.requests if r[0] == "POST"]
    assert posted
    for body in posted + [p.read_text() for p in (run_dir / "issues").glob("*")]:
        assert "/home/" not in body and "alice" not in body and "zed-builder" not in body, body[:300]
        assert TOKEN not in body
    for p in run_dir.rglob("*"):
        if p.is_file() and p.suffix in (".md", ".json", ".html", ".sarif", ".xml"):
            assert TOKEN not in p.read_text(errors="replace")


def test_keyword_matching_is_not_fooled_by_numbers_or_prefixes():
    assert titles_match("Seek answers after 1.9 s at p95", "[2026-01-02] LOW - Seek answers after 2.4 s at p95")
    assert not titles_match("Seek answers after 1.9 s at p95", "Album grid answers slowly")
    assert not titles_match("RSS grows 3.1 MiB per stream", "Chunk boundary repeats samples")


def _cli(args, env_extra=None, cwd=ROOT):
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_TOKEN"}
    env.update(env_extra or {})
    env["PATH"] = "/usr/bin:/bin"  # no `gh` to fall back on
    return subprocess.run([sys.executable, "-m", "reports.publish", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=60)


def test_cli_publishes_prints_the_table_and_never_the_token(gh_server, run_dir):
    r = _cli([str(run_dir), "--repo", gh_server.repo, "--api-url", gh_server.url, "--pause", "0"], {"GITHUB_TOKEN": TOKEN})
    assert r.returncode == 0, r.stderr
    assert "| # | Finding | Severity | Dedup | Issue |" in r.stdout and "**Created**: 7 new issues" in r.stdout
    assert TOKEN not in r.stdout + r.stderr
    # the audit now carries the issue numbers
    audit = (run_dir / "audit" / f"AUDIT_BACKEND_{RUN_DATE}.md").read_text()
    assert re.search(r"\| Filed \| #\d+ \|", audit)
    r2 = _cli([str(run_dir), "--repo", gh_server.repo, "--api-url", gh_server.url, "--pause", "0"], {"GITHUB_TOKEN": TOKEN})
    assert r2.returncode == 0 and "**Created**: 0 new issues" in r2.stdout
    assert len(gh_server.created()) == 7


def test_cli_dry_run_files_nothing(gh_server, run_dir):
    r = _cli([str(run_dir), "--repo", gh_server.repo, "--api-url", gh_server.url, "--dry-run"], {"GITHUB_TOKEN": TOKEN})
    assert r.returncode == 0, r.stderr
    assert "**Would create**: 7 new issues" in r.stdout
    assert not [x for x in gh_server.requests if x[0] == "POST"]
    assert len(list((run_dir / "issues").glob("B*.md"))) == 7
    assert not (run_dir / "issues" / "published.json").exists()


@pytest.mark.parametrize(
    "args,env,msg",
    [
        (["--repo", "noslash"], {"GITHUB_TOKEN": TOKEN}, "OWNER/NAME"),
        (["--repo", "a/b"], {}, "no GitHub token"),
    ],
)
def test_cli_bad_input_is_one_line_and_nonzero(run_dir, args, env, msg):
    r = _cli([str(run_dir), *args, "--api-url", "http://127.0.0.1:9"], env)
    assert r.returncode == 2 and msg in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_cli_missing_run_dir(tmp_path):
    r = _cli([str(tmp_path / "nope"), "--repo", "a/b"], {"GITHUB_TOKEN": TOKEN})
    assert r.returncode == 2 and "not found" in r.stderr


def test_waiting_is_bounded_in_total_and_creates_are_paced(gh_server, run_dir):
    gh_server.faults = [Fault("POST", "/issues", 429, {"Retry-After": "20"}, times=10)]
    sleeps = Sleeps()
    gh = GitHub(gh_server.repo, TOKEN, api_url=gh_server.url, max_wait_s=30, max_total_wait_s=50,
                create_pause_s=1.0, sleep=sleeps)
    res = publish(load_context(run_dir), gh, log=lambda s: None)
    # two 20 s waits fit in 50 s, a third does not: stop rather than wait on
    assert res.aborted and "rate limit" in res.aborted
    assert sum(s for s in sleeps if s == 20) == 40 and gh.waited_s == 40
    gh_server.faults = []
    sleeps2 = Sleeps()
    gh2 = GitHub(gh_server.repo, TOKEN, api_url=gh_server.url, create_pause_s=1.0, sleep=sleeps2)
    res2 = publish(load_context(run_dir), gh2, log=lambda s: None)
    assert res2.created == 7
    assert sleeps2 == [1.0] * 6  # a pause before each of the 7 creates but the first


def test_an_issue_we_filed_then_closed_comes_back_as_a_regression(gh_server, run_dir):
    publish(load_context(run_dir), gh_for(gh_server), log=lambda s: None)
    fixed = next(i for i in gh_server.created() if "Seek answers" in i["title"])
    fixed["state"] = "closed"  # "fixed"; the next run measures it again
    res = publish(load_context(run_dir), gh_for(gh_server), log=lambda s: None)
    assert res.created == 1
    o = next(o for o in res.outcomes if o.note == "created")
    assert o.dedup == f"Regression of #{fixed['number']}"
    assert gh_server.comments[fixed["number"]][0]["body"].startswith(f"Related: #{o.issue} - regression")
    audit = (run_dir / "audit" / f"AUDIT_BACKEND_{RUN_DATE}.md")
    from reports import render_all

    render_all(run_dir)
    assert f"- **Status**: Regression of #{fixed['number']}" in audit.read_text()
    res3 = publish(load_context(run_dir), gh_for(gh_server), log=lambda s: None)
    assert res3.created == 0 and len(gh_server.created()) == 8
