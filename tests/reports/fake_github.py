"""A real HTTP server on 127.0.0.1 that plays the parts of GitHub's REST API
publishing uses: issues (listing paginated with Link headers, open and
closed, pull requests mixed in), labels, comments, and injected faults
(403/429 with Retry-After, 422, a connection dropped mid-way)."""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "test-token-not-real-0123456789"
PAGE_CAP = 3  # GitHub caps per_page at 100; a small cap makes pagination happen


@dataclass
class Fault:
    method: str
    path_suffix: str  # matched against the end of the path
    status: int = 0  # 0: drop the connection
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)
    after_effect: bool = False  # do the real work first, then fail (a lost response)
    times: int = 1


class FakeGitHub:
    def __init__(self, owner: str = "auralis", name: str = "auralis"):
        self.prefix = f"/repos/{owner}/{name}"
        self.repo = f"{owner}/{name}"
        self.issues: list[dict[str, Any]] = []
        self.labels: list[dict[str, Any]] = [{"name": "bug", "color": "d73a4a"}]
        self.comments: dict[int, list[dict[str, Any]]] = {}
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str, str, dict[str, str]]] = []  # method, path+query, body, headers
        self.lock = threading.Lock()
        self._next = 1
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "FakeGitHub":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    # -- seeding --------------------------------------------------------------
    def add_issue(self, title: str, body: str = "", state: str = "open", pull_request: bool = False) -> int:
        with self.lock:
            n = self._next
            self._next += 1
            issue = {"number": n, "title": title, "body": body, "state": state, "labels": [], "html_url": f"{self.url}/issues/{n}"}
            if pull_request:
                issue["pull_request"] = {"url": "x"}
            self.issues.append(issue)
            return n

    def created(self) -> list[dict[str, Any]]:
        return [i for i in self.issues if i.get("created_by_api")]

    # -- the server -------------------------------------------------------------
    def _handler(self):
        gh = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:  # keep pytest output clean
                pass

            def _send(self, status: int, doc: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _drop(self) -> None:
                self.close_connection = True
                try:
                    self.connection.shutdown(2)
                except OSError:
                    pass

            def _fault(self, method: str, path: str) -> Fault | None:
                with gh.lock:
                    for f in gh.faults:
                        if f.method == method and path.endswith(f.path_suffix) and f.times > 0:
                            f.times -= 1
                            return f
                return None

            def _apply_fault(self, f: Fault) -> None:
                if f.status == 0:
                    self._drop()
                else:
                    self._send(f.status, f.body or {"message": "fault"}, f.headers)

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode() if length else ""
                parts = urlsplit(self.path)
                with gh.lock:
                    gh.requests.append((method, self.path, raw, dict(self.headers)))
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._send(401, {"message": "Bad credentials"})
                if not parts.path.startswith(gh.prefix):
                    return self._send(404, {"message": "Not Found"})
                path = parts.path[len(gh.prefix):]
                fault = self._fault(method, path)
                if fault and not fault.after_effect:
                    return self._apply_fault(fault)
                body = json.loads(raw) if raw else {}
                status, doc, headers = self._route(method, path, parse_qs(parts.query), body)
                if fault:
                    return self._apply_fault(fault)
                self._send(status, doc, headers)

            def _page(self, items: list[Any], q: dict[str, list[str]], path: str) -> tuple[int, Any, dict[str, str]]:
                per = min(int(q.get("per_page", ["30"])[0]), PAGE_CAP)
                page = int(q.get("page", ["1"])[0])
                chunk = items[(page - 1) * per : page * per]
                headers = {}
                if page * per < len(items):
                    extra = "".join(f"&{k}={v[0]}" for k, v in q.items() if k not in ("page", "per_page"))
                    nxt = f"{gh.url}{gh.prefix}{path}?per_page={per}&page={page + 1}{extra}"
                    headers["Link"] = f'<{nxt}>; rel="next", <{gh.url}{gh.prefix}{path}?page=999>; rel="last"'
                return 200, chunk, headers

            def _route(self, method: str, path: str, q: dict[str, list[str]], body: dict[str, Any]):
                with gh.lock:
                    if path == "/issues" and method == "GET":
                        state = q.get("state", ["open"])[0]
                        items = [i for i in gh.issues if state == "all" or i["state"] == state]
                        return self._page(sorted(items, key=lambda i: -i["number"]), q, path)
                    if path == "/issues" and method == "POST":
                        if not body.get("title"):
                            return 422, {"message": "Validation Failed", "errors": [{"code": "missing_field", "field": "title"}]}, {}
                        for name in body.get("labels", []):
                            if name not in {l["name"] for l in gh.labels}:
                                # GitHub creates unknown labels silently; we make it strict to
                                # prove labels are created before use
                                return 422, {"message": "Validation Failed", "errors": [{"code": "invalid", "field": "labels"}]}, {}
                        n = gh._next
                        gh._next += 1
                        issue = {"number": n, "title": body["title"], "body": body.get("body", ""), "state": "open",
                                 "labels": [{"name": l} for l in body.get("labels", [])], "html_url": f"{gh.url}/issues/{n}",
                                 "created_by_api": True}
                        gh.issues.append(issue)
                        return 201, issue, {}
                    if path == "/labels" and method == "GET":
                        return self._page(list(gh.labels), q, path)
                    if path == "/labels" and method == "POST":
                        if any(l["name"] == body.get("name") for l in gh.labels):
                            return 422, {"message": "Validation Failed", "errors": [{"resource": "Label", "code": "already_exists"}]}, {}
                        gh.labels.append({"name": body["name"], "color": body.get("color", "")})
                        return 201, gh.labels[-1], {}
                    if path.startswith("/issues/") and path.endswith("/comments"):
                        n = int(path.split("/")[2])
                        if n not in {i["number"] for i in gh.issues}:
                            return 404, {"message": "Not Found"}, {}
                        if method == "GET":
                            return self._page(list(gh.comments.get(n, [])), q, path)
                        c = {"id": len(gh.comments.get(n, [])) + 1, "body": body.get("body", "")}
                        gh.comments.setdefault(n, []).append(c)
                        return 201, c, {}
                return 404, {"message": "Not Found"}, {}

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

        return Handler
