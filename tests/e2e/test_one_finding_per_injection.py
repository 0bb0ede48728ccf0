"""One defect, one finding: each injection on the reference backend gives
exactly the findings `--list-injections` promises (kind, severity, measured
magnitude), and injections run together give one finding each.

Runs are expensive, so compatible injections share a run (one acting on chunk
boundaries with one acting elsewhere: the loop, the start, the enhanced
path's error); each pair is also the two-at-once case. Injections judged by a
dynamic check (REST, origins, bad files, the /ws contract) are checked by
tests/dynamic against their servers; the memory and saturation ones by
tests/e2e/test_instrumentation.py.
"""
from __future__ import annotations

import pytest

from analysis.model import Finding
from instrument.reference.injections import INJECTIONS, PROMISES, Promise

from .helpers import INJECTION_RUNS, injection_run
from .test_run_reference import findings_of

pytestmark = pytest.mark.slow

# run name -> injections that share it (one run per session: helpers.injection_run)
RUNS = INJECTION_RUNS
RUN_OF = {inj: name for name, injs in RUNS.items() for inj in injs}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, worker_id):
    """Each run made once, on first use, shared by every assertion on it
    (and by test_instrumentation.py's blocking-send and test_run_reference.py's
    chunk-timeout known answers)."""
    done: dict[str, list[Finding]] = {}

    def get(name: str) -> list[Finding]:
        if name not in done:
            out, r = injection_run(tmp_path_factory, worker_id, name)
            assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-2000:]
            done[name] = findings_of(out)
        return done[name]

    return get


def _members(f: Finding) -> list[tuple[str, str, dict]]:
    """(kind, severity, figures) of a finding and of every symptom folded into it."""
    return [(f.kind, f.severity, f.figures)] + [(s["kind"], s["severity"], s.get("figures") or {}) for s in f.symptoms]


def _keeps(f: Finding, p: Promise) -> bool:
    """Does finding f keep promise p: its kind (or a symptom's), its severity,
    and the injected magnitude measured by a member of that kind?"""
    if f.severity != p.severity or not any(k == p.kind for k, _, _ in _members(f)):
        return False
    if p.figure is None:
        return True
    return any(k == p.kind and p.figure in figs and p.low <= abs(float(figs[p.figure])) <= p.high
               for k, _, figs in _members(f))


def test_every_injection_has_a_structured_promise():
    assert set(PROMISES) == set(INJECTIONS)
    for name, promised in PROMISES.items():
        assert promised, name
        for p in promised:
            assert p.severity in ("CRITICAL", "HIGH", "MEDIUM", "LOW") and p.kind and p.magnitude, (name, p)


@pytest.mark.parametrize("name", list(RUNS))
def test_a_run_gives_exactly_one_finding_per_promise(runs, name):
    found = [f for f in runs(name) if f.counts_against_gate]
    promised = [p for inj in RUNS[name] for p in PROMISES[inj]]
    summary = [(f.kind, f.severity, [s["kind"] for s in f.symptoms]) for f in found]
    assert len(found) == len(promised), summary
    left = list(found)
    for p in promised:
        hit = next((f for f in left if _keeps(f, p)), None)
        assert hit is not None, (p, summary)
        left.remove(hit)


@pytest.mark.parametrize("inj", list(RUN_OF))
def test_each_injection_is_found_as_promised(runs, inj):
    found = [f for f in runs(RUN_OF[inj]) if f.counts_against_gate]
    for p in PROMISES[inj]:
        assert any(_keeps(f, p) for f in found), (p, [(f.kind, f.severity, f.figures) for f in found])


def test_a_grouped_finding_keeps_its_symptoms_and_a_cause_fingerprint(runs):
    [rep] = [f for f in runs("repeat+blocking") if f.kind == "repeated_audio"]
    kinds = {s["kind"] for s in rep.symptoms}
    assert "length_mismatch" in kinds  # the stream is 5 s too long per boundary: the repeat's symptom
    assert rep.cause == "audio:repeat" and all("repeated 220500 frames" in e for e in rep.evidence if "boundary at" in e)
    # the audio is named by the code that sent its frames, measured in the running backend
    assert rep.location.has_code and any("where the target sent the stream's audio frames" in e for e in rep.evidence)
    [stall] = [f for f in runs("repeat+blocking") if f.kind == "loop_stall"]
    assert stall.location.function == "send_chunk_blocking"
