"""A small GitHub REST client: just what publishing needs, with GitHub's
rules for pagination (Link headers) and rate limits (Retry-After,
X-RateLimit-Reset) kept in one place.

The token lives only in the session's Authorization header: it is never
formatted into a message, an exception or a file.
"""
from __future__ import annotations

import shutil
import subprocess
import time
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import requests

DEFAULT_API_URL = "https://api.github.com"
MAX_PAGES = 200  # 20 000 issues at 100 a page: a bound, not an expectation
RETRIES = 3


class GitHubError(RuntimeError):
    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class RateLimited(GitHubError):
    """Rate limited for longer than we are willing to wait."""


class ValidationFailed(GitHubError):
    """HTTP 422: GitHub refused the content (bad label, title too long...)."""


class TokenMissing(GitHubError):
    pass


def find_token() -> str:
    """GITHUB_TOKEN, else what `gh auth token` knows. Never printed."""
    import os

    tok = os.environ.get("GITHUB_TOKEN", "").strip()
    if tok:
        return tok
    gh = shutil.which("gh")
    if gh:
        try:
            r = subprocess.run([gh, "auth", "token"], capture_output=True, text=True, timeout=10)
            if r.returncode == 0 and r.stdout.strip():
                return r.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    raise TokenMissing("no GitHub token: set GITHUB_TOKEN or log in with `gh auth login`")


def _error_text(r: requests.Response) -> str:
    try:
        doc = r.json()
    except ValueError:
        return r.text[:200]
    msg = str(doc.get("message", ""))
    errs = doc.get("errors")
    if errs:
        msg += ": " + "; ".join(str(e.get("message") or e.get("code") or e) if isinstance(e, dict) else str(e) for e in errs)
    return msg[:300]


class GitHub:
    def __init__(
        self,
        repo: str,
        token: str | None,
        *,
        api_url: str = DEFAULT_API_URL,
        max_wait_s: float = 60.0,
        max_total_wait_s: float = 300.0,
        create_pause_s: float = 0.0,
        timeout_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if repo.count("/") != 1 or not all(repo.split("/")):
            raise ValueError(f"--repo must be OWNER/NAME, got {repo!r}")
        self.repo = repo
        self.api_url = api_url.rstrip("/")
        self.max_wait_s = max_wait_s
        self.max_total_wait_s = max_total_wait_s
        # GitHub asks for a pause between content-creating requests, or it
        # answers with secondary rate limits
        self.create_pause_s = create_pause_s
        self._created_any = False
        self.timeout_s = timeout_s
        self.sleep = sleep
        self.waited_s = 0.0
        self.s = requests.Session()
        self.s.headers.update(
            {
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
                "User-Agent": "earshot-publish",
            }
        )
        if token:
            self.s.headers["Authorization"] = f"Bearer {token}"

    # -- transport -----------------------------------------------------------
    def _url(self, path: str) -> str:
        return path if path.startswith("http") else f"{self.api_url}/repos/{self.repo}{path}"

    def _wait_for(self, r: requests.Response) -> float | None:
        """Seconds GitHub asks us to wait, or None when this is no rate limit."""
        if r.status_code not in (403, 429):
            return None
        ra = r.headers.get("Retry-After")
        if ra is not None:
            try:
                return max(0.0, float(ra))
            except ValueError:
                return self.max_wait_s + 1  # unparseable: treat as "too long"
        if r.headers.get("X-RateLimit-Remaining") == "0" and r.headers.get("X-RateLimit-Reset"):
            try:
                return max(0.0, float(r.headers["X-RateLimit-Reset"]) - time.time())
            except ValueError:
                return self.max_wait_s + 1
        if r.status_code == 429:
            return 1.0
        return None  # a plain 403 is a permission problem, not a limit

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        url = self._url(path)
        if method == "POST" and self.create_pause_s > 0:
            if self._created_any:
                self.sleep(self.create_pause_s)
            self._created_any = True
        for attempt in range(RETRIES + 1):
            r = self.s.request(method, url, timeout=self.timeout_s, **kw)
            wait = self._wait_for(r)
            if wait is None:
                break
            if wait > self.max_wait_s or attempt == RETRIES or self.waited_s + wait > self.max_total_wait_s:
                raise RateLimited(
                    f"GitHub rate limit on {method} {urlsplit(url).path}: asked to wait {wait:.0f} s "
                    f"(limit {self.max_wait_s:.0f} s, attempt {attempt + 1})",
                    r.status_code,
                )
            self.waited_s += wait
            self.sleep(wait)
        if r.status_code == 422:
            raise ValidationFailed(f"GitHub refused {method} {urlsplit(url).path}: {_error_text(r)}", 422)
        if r.status_code >= 400:
            raise GitHubError(f"GitHub answered HTTP {r.status_code} to {method} {urlsplit(url).path}: {_error_text(r)}", r.status_code)
        return r

    def paginate(self, path: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        params = {"per_page": 100, **(params or {})}
        url: str | None = self._url(path)
        base = urlsplit(self.api_url)
        for _ in range(MAX_PAGES):
            if url is None:
                return
            r = self.request("GET", url, params=params)
            params = None  # the next link carries its own query
            items = r.json()
            if not isinstance(items, list):
                raise GitHubError(f"expected a list from {urlsplit(url).path}")
            yield from items
            nxt = r.links.get("next", {}).get("url")
            # follow only links to the same API host: the token must not travel
            if nxt and (urlsplit(nxt).scheme, urlsplit(nxt).netloc) != (base.scheme, base.netloc):
                raise GitHubError("pagination link points to another host; refusing to follow")
            url = nxt
        raise GitHubError(f"more than {MAX_PAGES} pages from {path}; refusing to continue")

    # -- the calls publishing makes -----------------------------------------
    def issues(self) -> list[dict[str, Any]]:
        """Every issue, open and closed (pull requests, which the same
        endpoint returns, left out)."""
        return [i for i in self.paginate("/issues", {"state": "all"}) if "pull_request" not in i]

    def labels(self) -> set[str]:
        return {l["name"] for l in self.paginate("/labels")}

    def create_label(self, name: str, color: str, description: str = "") -> None:
        try:
            self.request("POST", "/labels", json={"name": name, "color": color, "description": description})
        except ValidationFailed as e:
            if "already_exists" not in str(e) and "already exists" not in str(e):
                raise

    def create_issue(self, title: str, body: str, labels: list[str]) -> dict[str, Any]:
        return self.request("POST", "/issues", json={"title": title, "body": body, "labels": labels}).json()

    def comments(self, number: int) -> list[dict[str, Any]]:
        return list(self.paginate(f"/issues/{number}/comments"))

    def comment(self, number: int, body: str) -> dict[str, Any]:
        return self.request("POST", f"/issues/{number}/comments", json={"body": body}).json()
