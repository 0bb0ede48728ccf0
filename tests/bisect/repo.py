"""Throwaway git repositories laid out like an Auralis checkout, one commit
per state, for the bisect tests."""
from __future__ import annotations

import subprocess
from pathlib import Path

BACKEND = Path("auralis-web") / "backend"


def git(repo: Path, *args: str, **extra_env: str) -> str:
    env = {**extra_env, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.invalid", "HOME": str(repo), "PATH": "/usr/bin:/bin"}
    r = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout


def make_repo(root: Path, commits: list[tuple[str, dict[str, str]]]) -> list[str]:
    """A repository with one commit per (subject, {path: text}) applied in
    order (text None removes the file). Returns the shas, oldest first."""
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    shas = []
    for i, (subject, files) in enumerate(commits):
        for rel, text in files.items():
            p = root / rel
            if text is None:
                p.unlink(missing_ok=True)
            else:
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text(text)
        git(root, "add", "-A")
        date = f"2026-03-{10 + i:02d}T12:00:00+00:00"
        git(root, "commit", "-q", "--allow-empty", "-m", subject, GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
        shas.append(git(root, "rev-parse", "HEAD").strip())
    return shas


def repo_state(root: Path) -> dict[str, str]:
    """What must be byte-identical before and after a bisect."""
    return {
        "status": git(root, "--no-optional-locks", "status", "--porcelain=v2", "--branch", "--untracked-files=all"),
        "head": (root / ".git" / "HEAD").read_text(),
        "branches": git(root, "for-each-ref", "--format=%(refname) %(objectname)"),
        "worktrees": git(root, "worktree", "list", "--porcelain"),
        "index": (root / ".git" / "index").read_bytes().hex(),
        "stash": git(root, "stash", "list"),
    }
