"""The user's repository, read-only, and the scratch worktrees the bisect owns.

Nothing here writes to the user's working tree, index, HEAD or branches:
commits are read with rev-parse/rev-list/log, and each tested commit is
checked out into a detached worktree inside the bisect's own directory
(`git worktree add --detach`), removed again after its runs. The only trace
in the user's repository while a step runs is git's worktree bookkeeping
(`.git/worktrees/<name>`), which `git worktree remove` deletes.
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


class GitError(Exception):
    """A git command failed; the message is the one-line error."""


# The user's hooks must not run in our scratch checkouts (a post-checkout hook
# could build, install or touch the user's tree); no pager, no prompts.
_GIT = ["git", "-c", "core.hooksPath=/dev/null", "-c", "advice.detachedHead=false"]


def git(repo: Path | str, *args: str, timeout: float = 120) -> str:
    try:
        r = subprocess.run([*_GIT, "-C", str(repo), *args], capture_output=True, text=True, timeout=timeout,
                           env=_git_env())
    except (OSError, subprocess.TimeoutExpired) as e:
        raise GitError(f"git {args[0]}: {e}") from None
    if r.returncode != 0:
        msg = (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1]
        raise GitError(f"git {' '.join(args[:2])}: {msg}")
    return r.stdout


def _git_env() -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env


@dataclass(frozen=True)
class Commit:
    sha: str
    date: str  # committer date, ISO 8601
    subject: str

    @property
    def short(self) -> str:
        return self.sha[:10]

    def to_dict(self) -> dict[str, str]:
        return {"commit": self.sha, "short": self.short, "date": self.date, "subject": self.subject}


def toplevel(path: Path | str) -> Path:
    p = Path(path).expanduser()
    if not p.is_dir():
        raise GitError(f"{path} does not exist")
    try:
        return Path(git(p, "rev-parse", "--show-toplevel").strip()).resolve()
    except GitError:
        raise GitError(f"{path} is not a git checkout") from None


def resolve(repo: Path, rev: str) -> str:
    try:
        return git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").strip()
    except GitError:
        raise GitError(f"'{rev}' is not a commit of {repo.name}") from None


def commit_info(repo: Path, sha: str) -> Commit:
    out = git(repo, "log", "-1", "--format=%H%x00%cI%x00%s", sha)
    h, date, subject = out.rstrip("\n").split("\x00", 2)
    return Commit(h, date, subject)


def first_parent_range(repo: Path, good: str, bad: str) -> list[Commit]:
    """Commits after `good` up to and including `bad` on bad's first-parent
    line, oldest first. `good` must itself be on that line: a good commit on a
    merged side branch would make "after good" ill-defined."""
    out = git(repo, "log", "--first-parent", "--format=%H%x00%cI%x00%s", f"{good}..{bad}", timeout=300)
    commits = [Commit(*ln.split("\x00", 2)) for ln in out.splitlines() if ln]
    commits.reverse()
    if not commits:
        raise GitError(f"no commits between good {good[:10]} and bad {bad[:10]}: is the good one older?")
    first = git(repo, "rev-parse", f"{commits[0].sha}^1").strip() if _has_parent(repo, commits[0].sha) else ""
    if first != good:
        raise GitError(f"good {good[:10]} is not on the first-parent history of bad {bad[:10]} "
                       "(pick a commit of the main line, e.g. a merge's first parent)")
    return commits


def _has_parent(repo: Path, sha: str) -> bool:
    try:
        git(repo, "rev-parse", "--verify", "--quiet", f"{sha}^1")
        return True
    except GitError:
        return False


def inside(path: Path, top: Path) -> bool:
    try:
        path.resolve().relative_to(top.resolve())
        return True
    except ValueError:
        return False


class Worktree:
    """A detached checkout of one commit at `path`, owned by the bisect.

    `paths`: check out only these (a partial clone may lack the other blobs;
    Auralis's backend needs only `auralis/` and `auralis-web/backend/`)."""

    def __init__(self, repo: Path, sha: str, path: Path, paths: list[str] | None = None):
        self.repo, self.sha, self.path, self.paths = repo, sha, Path(path), list(paths or [])

    def __enter__(self) -> Path:
        return self.create()

    def __exit__(self, *exc: object) -> bool:
        self.remove()
        return False

    def create(self) -> Path:
        remove_worktree(self.repo, self.path)  # a leftover of an interrupted step
        # -f: re-use the name of a worktree of ours whose directory vanished
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.paths:
            git(self.repo, "worktree", "add", "-f", "--detach", "--no-checkout", str(self.path), self.sha)
            git(self.path, "checkout", self.sha, "--", *self.paths, timeout=600)
        else:
            git(self.repo, "worktree", "add", "-f", "--detach", str(self.path), self.sha, timeout=600)
        return self.path

    def remove(self) -> None:
        remove_worktree(self.repo, self.path)


def remove_worktree(repo: Path, path: Path) -> None:
    """Remove our worktree and its bookkeeping; never prunes the user's others."""
    if not path.exists():
        return
    try:
        git(repo, "worktree", "remove", "--force", "--force", str(path))
    except GitError:
        pass
    if path.exists():  # not a registered worktree (half-made): plain files of ours
        shutil.rmtree(path, ignore_errors=True)
