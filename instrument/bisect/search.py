"""The search itself, pure: which commit to test next, and what the tested
ones prove. No git, no runs: a list of commits and the verdicts recorded.

Verdicts of one tested commit:
  good / bad   the criterion decided it;
  skip         it could not be judged (the backend did not start, the run was invalid);
  uncertain    its repeats disagreed (a flaky criterion) and were not forced into a verdict.
Skip and uncertain commits are stepped around exactly as `git bisect skip`
does: the search tests their neighbours instead, and if the answer depends on
one of them the result says so and names them, rather than guessing.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

GOOD, BAD, SKIP, UNCERTAIN = "good", "bad", "skip", "uncertain"
VERDICTS = (GOOD, BAD, SKIP, UNCERTAIN)


@dataclass
class Decision:
    """A step's verdict over its repeats, and why."""

    verdict: str
    reason: str
    split: dict[str, int] = field(default_factory=dict)


def decide(verdicts: Sequence[str], reasons: Sequence[str] = (), *, rule: str = "unanimous") -> Decision:
    """One step's verdict from its repeats' verdicts (each good/bad/skip).

    rule "unanimous" (the default): the judged repeats must agree; any
    disagreement makes the step uncertain. rule "majority": a strict majority
    of the judged repeats decides; a tie is uncertain. Either way the split is
    kept and reported. Repeats that could not be judged (skip) do not vote; a
    step with no judged repeat is a skip with the first repeat's reason."""
    if rule not in ("unanimous", "majority"):
        raise ValueError(f"rule must be unanimous or majority, not {rule!r}")
    split = Counter(v for v in verdicts)
    judged = {GOOD: split[GOOD], BAD: split[BAD]}
    n = judged[GOOD] + judged[BAD]
    why = next((r for v, r in zip(verdicts, reasons) if v == SKIP and r), "")
    if n == 0:
        return Decision(SKIP, why or "no run could be judged", dict(split))
    tail = f"; {split[SKIP]} repeat(s) not judged ({why})" if split[SKIP] else ""
    if judged[GOOD] and judged[BAD]:
        desc = f"bad in {judged[BAD]} of {n} judged runs"
        if rule == "majority" and judged[GOOD] != judged[BAD]:
            v = BAD if judged[BAD] > judged[GOOD] else GOOD
            return Decision(v, f"{desc}: majority {v}{tail}", dict(split))
        return Decision(UNCERTAIN, f"{desc}: the repeats disagree{tail}", dict(split))
    v = BAD if judged[BAD] else GOOD
    said = next((r for x, r in zip(verdicts, reasons) if x == v and r), v)
    return Decision(v, said + (f" (all {n} judged runs)" if n > 1 else "") + tail, dict(split))


@dataclass
class Outcome:
    status: str  # "found" | "ambiguous" | "running"
    first_bad: int | None  # index into commits of the first bad commit (found)
    last_good: int  # index of the last good commit; -1 = the good endpoint
    candidates: list[int]  # indices the first bad commit may be (ambiguous: > 1)


class Search:
    """Bisection over `n` commits (index 0 = the first after good, n-1 = bad,
    which the pre-check proved bad). Assumes one transition good -> bad."""

    def __init__(self, n: int):
        if n < 1:
            raise ValueError("nothing to bisect")
        self.n = n
        self.verdicts: dict[int, str] = {}

    def record(self, index: int, verdict: str) -> None:
        if verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {verdict!r}")
        self.verdicts[index] = verdict

    @property
    def lo(self) -> int:
        """The newest index known good (-1: the good endpoint)."""
        goods = [i for i, v in self.verdicts.items() if v == GOOD]
        return max(goods, default=-1)

    @property
    def hi(self) -> int:
        """The oldest index known bad newer than every good one."""
        lo = self.lo
        bads = [i for i, v in self.verdicts.items() if v == BAD and i > lo]
        return min(bads, default=self.n - 1)

    def untested(self) -> list[int]:
        return [i for i in range(self.lo + 1, self.hi) if i not in self.verdicts]

    def next(self) -> int | None:
        """The untested commit nearest the middle of what is left (nearest
        the newer side on a tie); None when nothing left can narrow it."""
        left = self.untested()
        if not left:
            return None
        mid = (self.lo + self.hi) / 2
        return min(left, key=lambda i: (abs(i - mid), -i))

    def steps_left(self) -> int:
        """Runs still needed at most, ignoring skips: ceil(log2(untested + 1))."""
        return math.ceil(math.log2(len(self.untested()) + 1))

    def outcome(self) -> Outcome:
        lo, hi = self.lo, self.hi
        if self.next() is not None:
            return Outcome("running", None, lo, list(range(lo + 1, hi + 1)))
        cands = list(range(lo + 1, hi + 1))
        if len(cands) == 1:
            return Outcome("found", hi, lo, cands)
        return Outcome("ambiguous", None, lo, cands)

    def contradictions(self) -> list[int]:
        """Indices judged bad older than a good one: the criterion is not one
        transition (flaky, or a defect that came, went and came back)."""
        lo = self.lo
        return sorted(i for i, v in self.verdicts.items() if v == BAD and i < lo)
