"""Naming the unmet requirement behind a skip: when a commit's backend dies on
a missing module, the line of that commit's own requirements file that asks
for it (read from git, so it works when only part of the tree is checked
out). One environment serves the whole range; this says which commit needs
another."""
from __future__ import annotations

import re
from pathlib import Path

from .gitrepo import GitError, git

REQUIREMENT_FILES = ("requirements.txt", "auralis-web/backend/requirements.txt")

# import name -> distribution name, for the common cases where they differ
_DIST_OF = {"multipart": "python-multipart", "yaml": "pyyaml", "PIL": "pillow", "sklearn": "scikit-learn",
            "dotenv": "python-dotenv", "cv2": "opencv-python", "magic": "python-magic"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_for(repo: Path, sha: str, module: str) -> str | None:
    """'librosa==0.10.1 (requirements.txt)' when the commit's requirements ask
    for the distribution that provides `module`; None otherwise."""
    top = module.split(".")[0]
    wanted = {_norm(top), _norm(_DIST_OF.get(top, top))}
    for rel in REQUIREMENT_FILES:
        try:
            text = git(repo, "show", f"{sha}:{rel}")
        except GitError:
            continue
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?", line)
            if m and _norm(m.group(1)) in wanted:
                return f"{line} ({rel})"
    return None


def name_unmet_requirement(reason: str, repo: Path, sha: str) -> str:
    """A skip reason with the requirement it comes from, when there is one."""
    m = re.search(r"(?:missing module|lacks module) '([^']+)'", reason)
    if not m:
        return reason
    req = requirement_for(repo, sha, m.group(1))
    return f"unmet requirement {req}: {reason}" if req else reason
