"""Root-cause grouping: the stage after every detector.

Detectors report symptoms; one defect often shows as several. An overlap sent
twice is a repeat at the boundary (continuity and alignment both see it), a
click at the splice and a stream that is too long; one compression call on
the event loop is a stall in each function that sends plus the frame that
keeps the loop saturated. This stage folds symptoms that share a cause into
one Finding, the others kept whole as its `symptoms`, and gives it a
fingerprint derived from the cause (not from whichever symptom leads), so
the same defect is one GitHub issue and one baseline entry run after run.

The rules, each a measured relation between findings (never a name table):
- audio at the same boundaries of the same streams: one family of content
  change (repeat, loss, silence, level) is one cause; a click at those
  boundaries is its symptom (at half of its own, or the clicks together at
  half of the group's); a stream-length mismatch is its symptom when its
  sign agrees and its size is a whole number of the per-boundary span;
- the same code frame: stalls whose stack samples end in the same innermost
  frame, and a saturation whose dominant frame is one of those stalls'
  frames or that innermost frame;
- the same error text (digits and quoted names aside), or the same clause
  of a message's contract.
"""
from __future__ import annotations

import re
from collections import defaultdict
from typing import Any, Iterable

from .model import Finding, severity_rank

# content-change families at chunk boundaries; the first kind of each family
# present leads its group (the most specific description of the cause)
BOUNDARY_FAMILIES: dict[str, tuple[str, ...]] = {
    # a position jump inside a stream (analysis/audio/position.py) is a repeat
    # (backward) or a loss (forward) seen on the position trace; the two join
    "repeat": ("repeated_audio", "repeated_samples", "position_jump"),
    "loss": ("crossfade_dip", "missing_audio", "dropped_samples"),
    "silence": ("gap",),
    "level": ("level_step", "spectral_step"),
}
FAMILY_OF = {k: fam for fam, kinds in BOUNDARY_FAMILIES.items() for k in kinds}
# a length mismatch follows from a family whose per-boundary change has this sign
LENGTH_SIGN = {"repeat": 1, "loss": -1}
SITE_TOLERANCE_S = 0.3  # two detectors place one boundary within this
SPAN_TOLERANCE = 0.02  # relative: a repeat measured by two detectors agrees this well
LOOP_KINDS = ("loop_stall", "loop_saturation", "slow_send")
# kinds that are a cause measured in the target, not a client's view of one:
# they lead a group of the same error text whatever the others' severity
CAUSE_KINDS = ("permit_leak",)
SATURATION_LEADS_BELOW = 0.1  # stall time under this share of a saturation's busy time: the saturation leads


def group_findings(findings: Iterable[Finding]) -> list[Finding]:
    findings = list(findings)
    out: list[Finding] = []
    audio = [f for f in findings if f.kind in FAMILY_OF or f.kind in ("click", "length_mismatch")]
    loop = [f for f in findings if f.kind in LOOP_KINDS]
    rest = [f for f in findings if f not in audio and f not in loop]
    out += _group_audio(audio)
    out += _group_loop(loop)
    out += _group_errors(rest)
    return out


# ---------------------------------------------------------------- helpers
class _Union:
    def __init__(self, n: int):
        self.p = list(range(n))

    def find(self, i: int) -> int:
        while self.p[i] != i:
            self.p[i] = self.p[self.p[i]]
            i = self.p[i]
        return i

    def join(self, a: int, b: int) -> None:
        self.p[self.find(a)] = self.find(b)

    def groups(self) -> list[list[int]]:
        g: dict[int, list[int]] = defaultdict(list)
        for i in range(len(self.p)):
            g[self.find(i)].append(i)
        return list(g.values())


def fold(members: list[Finding], cause: str, lead_order: tuple[str, ...] = ()) -> Finding:
    """One Finding for a cause: the lead is the first member in lead_order
    (the kind that describes the cause best; ties: the most severe); the
    others become its symptoms, whole. The grouped severity is the worst
    member's."""
    def rank(f: Finding) -> tuple[int, int]:
        pos = lead_order.index(f.kind) if f.kind in lead_order else len(lead_order)
        return pos, severity_rank(f.severity)

    ordered = sorted(members, key=rank)
    lead = ordered[0]
    lead.cause = cause
    lead.severity = min((m.severity for m in members), key=severity_rank)
    paths = sorted({_stype(m) for m in members if m.kind != "length_mismatch"} - {""})
    if len(paths) > 1 and lead.title.endswith(f"({_stype(lead)} path)"):
        lead.title = lead.title[: -len(f"({_stype(lead)} path)")] + f"({' and '.join(paths)} paths)"
    for other in ordered[1:]:
        d = other.to_dict()
        d.pop("symptoms", None)
        lead.symptoms.append(d)
        lead.symptoms += other.symptoms
        lead.artifacts += [a for a in other.artifacts if a not in lead.artifacts]
        lead.sites += [s for s in other.sites if s not in lead.sites]
    return lead


def _stype(f: Finding) -> str:
    parts = f.key.split("|")
    return parts[1] if len(parts) > 1 else ""


def _boundary_sites(f: Finding) -> list[tuple[str, float]]:
    return [(s["stream"], float(s["t"])) for s in f.sites if s.get("stream") and s.get("t") is not None]


def _matched(sites: list[tuple[str, float]], others: list[tuple[str, float]]) -> int:
    """How many of sites have one of others in the same stream within SITE_TOLERANCE_S."""
    return sum(1 for st, t in sites if any(st == st2 and abs(t - t2) <= SITE_TOLERANCE_S for st2, t2 in others))


def _shared_sites(a: Finding, b: Finding) -> int:
    return _matched(_boundary_sites(a), _boundary_sites(b))


def _span(f: Finding) -> float | None:
    """The typical per-boundary change in frames (signed: + repeated / longer, - lost)."""
    vals = sorted(float(s["value"]) for s in f.sites if s.get("value") is not None and s.get("t") is not None)
    return vals[len(vals) // 2] if vals else None


def _same_cause_audio(a: Finding, b: Finding) -> bool:
    """Two content-change symptoms are one cause when they measure the same
    boundaries (a repeat and a loss at one join are two detectors disagreeing
    on its one net offset, so they are one family here), or, across stream
    types (one piece of chunking code), when they are the same kind and the
    change per boundary is the same size."""
    fa, fb = FAMILY_OF[a.kind], FAMILY_OF[b.kind]
    jump = ("repeat", "loss")
    if fa != fb and not (fa in jump and fb in jump):
        return False
    na, nb = len(_boundary_sites(a)), len(_boundary_sites(b))
    if na and nb and _shared_sites(a, b) * 2 >= min(na, nb):
        return True
    if a.kind != b.kind:
        return False
    sa, sb = _span(a), _span(b)
    if sa is None or sb is None:
        return True  # silence, level: the same kind at the joins of both paths
    return abs(sa - sb) <= SPAN_TOLERANCE * max(abs(sa), abs(sb), 1.0)


def _length_follows(length: Finding, group: list[Finding], family: str) -> bool:
    """A stream-length mismatch follows from a repeat (longer) or a loss
    (shorter) when its sign agrees and it is a whole number of the
    per-boundary span: on a stream of the group, or exactly so elsewhere."""
    sign = LENGTH_SIGN.get(family)
    if sign is None:
        return False
    spans = [abs(s) for s in (_span(f) for f in group if FAMILY_OF.get(f.kind) in ("repeat", "loss"))
             if s is not None and s != 0]
    if not spans:
        return False
    streams = {st for f in group for st, _ in _boundary_sites(f)}
    for s in length.sites:
        v = s.get("value")
        if v is None or v * sign <= 0:
            continue
        for span in spans:
            k = round(abs(v) / span)
            if k < 1:
                continue
            err = abs(abs(v) - k * span)
            if (s.get("stream") in streams and err <= max(SPAN_TOLERANCE * abs(v), 2.0)) or (span >= 100 and err <= 2.0):
                return True
    return False


WEAK = ("level_step", "spectral_step")  # a content change can show as a level step at its joins
AUDIO_LEAD = ("crossfade_dip", "repeated_audio", "missing_audio", "gap", "repeated_samples", "dropped_samples",
              "level_step", "spectral_step", "click", "length_mismatch")


def _cluster(items: list[Finding], same) -> list[list[Finding]]:
    u = _Union(len(items))
    for i, a in enumerate(items):
        for j in range(i + 1, len(items)):
            if same(a, items[j]):
                u.join(i, j)
    return [[items[i] for i in g] for g in u.groups()]


def _attach(groups: list[list[Finding]], f: Finding) -> bool:
    """Add f to the group with which it shares most boundaries (at least half of its own)."""
    scores = [sum(_shared_sites(f, m) for m in g) for g in groups]
    if not scores:
        return False
    best = max(range(len(groups)), key=lambda i: scores[i])
    if scores[best] and scores[best] * 2 >= max(1, len(_boundary_sites(f))):
        groups[best].append(f)
        return True
    return False


def _covered(group: list[Finding], clicks: list[Finding]) -> tuple[int, int]:
    """(how many of the group's boundaries a click is at, how many it has)."""
    theirs = sorted({site for m in group for site in _boundary_sites(m)})
    return _matched(theirs, [site for c in clicks for site in _boundary_sites(c)]), len(theirs)


def _group_audio(items: list[Finding]) -> list[Finding]:
    strong = [f for f in items if f.kind in FAMILY_OF and f.kind not in WEAK]
    groups = _cluster(strong, _same_cause_audio)
    loose = [f for f in items if f.kind in WEAK and not _attach(groups, f)]
    groups += _cluster(loose, _same_cause_audio)
    clicks = [f for f in items if f.kind == "click" and not _attach(groups, f)]
    # clicks at most of a group's boundaries are its symptom even where they
    # are wider than the group: Auralis's enhanced path (each chunk mastered
    # on its own, butt-joined) clicked at every boundary of 4 streams (two
    # findings, by pattern) and stepped in level at 9 joins, 8 of them among
    # those; one join, one finding
    if clicks and groups:
        cover = [_covered(g, clicks) for g in groups]
        best = max(range(len(groups)), key=lambda i: cover[i][0])
        if cover[best][0] and cover[best][0] * 2 >= cover[best][1]:
            groups[best] += clicks
            clicks = []
    # clicks alone: one cause at the joins, on whichever paths show it
    groups += [clicks] if clicks else []
    families = []
    for g in groups:
        lead = min(g, key=lambda f: AUDIO_LEAD.index(f.kind) if f.kind in AUDIO_LEAD else len(AUDIO_LEAD))
        families.append(FAMILY_OF.get(lead.kind, lead.kind))
    lengths = [f for f in items if f.kind == "length_mismatch"]
    loose_lengths = []
    for ln in lengths:
        hit = next((gi for gi, g in enumerate(groups) if _length_follows(ln, g, families[gi])), None)
        if hit is None:
            loose_lengths.append(ln)
        else:
            groups[hit].append(ln)
    if loose_lengths:  # a length mismatch of its own: one per direction (too long, too short)
        by_sign: dict[bool, list[Finding]] = defaultdict(list)
        for ln in loose_lengths:
            vals = [s.get("value") for s in ln.sites if s.get("value") is not None]
            by_sign[bool(vals) and float(vals[0]) > 0].append(ln)
        for longer, g in sorted(by_sign.items()):
            groups.append(g)
            families.append("length_long" if longer else "length_short")
    out = []
    seen: dict[str, int] = defaultdict(int)
    for g, fam in zip(groups, families):
        seen[fam] += 1
        cause = f"audio:{fam}" if seen[fam] == 1 else f"audio:{fam}:{seen[fam]}"
        out.append(fold(g, cause, AUDIO_LEAD))
    return out


# ---------------------------------------------------------------- loop
def _frames(f: Finding) -> set[str]:
    """The code frames a loop finding names: its target location and the
    innermost frames of its stack samples."""
    out = {s["frame"] for s in f.sites if s.get("frame")}
    out |= {s["leaf"] for s in f.sites if s.get("leaf")}
    return out


def _leaves(f: Finding) -> set[str]:
    return {s["leaf"] for s in f.sites if s.get("leaf")}


def _group_loop(items: list[Finding]) -> list[Finding]:
    u = _Union(len(items))
    for i, a in enumerate(items):
        for j in range(i + 1, len(items)):
            b = items[j]
            if a.kind == b.kind == "loop_stall":
                if _leaves(a) & _leaves(b):
                    u.join(i, j)
            elif _frames(a) & _frames(b):
                u.join(i, j)
    out = []
    for g in u.groups():
        members = [items[i] for i in g]
        leaves = sorted(set.intersection(*[_leaves(m) for m in members if _leaves(m)] or [set()]))
        basis = leaves[0] if leaves else sorted(_frames(members[0]) or {members[0].key})[0]
        out.append(fold(members, f"frame:{basis}", _loop_lead_order(members)))
    return out


def _loop_lead_order(members: list[Finding]) -> tuple[str, ...]:
    """A stall leads its frame's group (the line that blocks), unless the
    group is a saturation whose stalls are a sliver of its busy time: then
    they are the saturation's back-to-back turns keeping the heartbeat out
    (one 65 ms 'stall' in an 8 ms-turn saturator busy 78% for 17 s)."""
    stall_ms = sum(float(m.figures.get("total_ms") or 0.0) for m in members if m.kind == "loop_stall")
    busy_ms = sum(float(m.figures.get("busy_fraction") or 0.0) * float(m.figures.get("seconds") or 0.0) * 1000
                  for m in members if m.kind == "loop_saturation")
    if busy_ms and stall_ms < SATURATION_LEADS_BELOW * busy_ms:
        return ("loop_saturation",) + tuple(k for k in LOOP_KINDS if k != "loop_saturation")
    return LOOP_KINDS


# ---------------------------------------------------------------- errors
def normalise_error(text: str) -> str:
    """Error text without what varies between occurrences (numbers, quoted names)."""
    t = re.sub(r"'[^']*'|\"[^\"]*\"", "'*'", text.strip())
    return re.sub(r"\d+(\.\d+)?", "N", t)[:200]


def error_text(err: Any) -> str | None:
    """The server's words in an error a check recorded: a stream error
    message ({type, data: {error}}) or a plain string."""
    if isinstance(err, dict):
        data = err.get("data") if isinstance(err.get("data"), dict) else err
        text = data.get("error") or data.get("message")
        return str(text) if text else None
    return str(err) if err else None


def _group_errors(items: list[Finding]) -> list[Finding]:
    u = _Union(len(items))
    # the same error text, the same probe inputs answered wrongly in two ways,
    # or the same clause of a message's contract broken (the load's client and
    # a dynamic check both saw audio_stream_end's totals disagree with the audio)
    errs = [{normalise_error(s["error"]) for s in f.sites if s.get("error")}
            | {f"probe {s['probe']}" for s in f.sites if s.get("probe")}
            | {f"contract {s['contract']}" for s in f.sites if s.get("contract")} for f in items]
    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            if errs[i] & errs[j]:
                u.join(i, j)
    out = []
    for g in u.groups():
        members = [items[i] for i in g]
        if len(members) == 1:
            out.append(members[0])
            continue
        common = sorted(set.intersection(*[errs[i] for i in g]) or errs[g[0]])
        # a measured cause leads its refusals (a permit leak the server's
        # "too busy" answers); else the most severe
        members.sort(key=lambda m: (m.kind not in CAUSE_KINDS, severity_rank(m.severity)))
        out.append(fold(members, f"error:{common[0]}", tuple(m.kind for m in members)))
    return out


def symptom_lines(f: Finding) -> list[str]:
    """One line per folded symptom, for renderers."""
    return [f"{s.get('kind')} ({s.get('severity')}): {s.get('title')} [{s.get('location_text')}]" for s in f.symptoms]


def figures_of(f: Finding) -> dict[str, Any]:
    return f.all_figures()
