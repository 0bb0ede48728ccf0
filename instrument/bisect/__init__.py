"""`python -m instrument.bisect`: the commit of an Auralis history that
introduced a finding (or made the gate fail, or pushed a metric past a
threshold), found by running the scenario on commits of the first-parent
history between a good and a bad revision.

  gitrepo.py   the user's repository (read-only) and our scratch worktrees
  search.py    the bisection, pure: next commit, skips, uncertain steps, the outcome
  criteria.py  what makes a run bad: a finding, the gate, a metric past a threshold
  steps.py     one commit: worktree, repeated instrument.run runs, judged, decided
  log.py       the bisect log that makes an interrupted bisect resume
  __main__.py  the command line and the loop
The report (bisect.md) is rendered by reports/bisect.py.
"""
