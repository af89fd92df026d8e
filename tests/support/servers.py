"""Local HTTP servers (127.0.0.1 only) that misbehave the way real ones do, for the download
tests: bodies cut short, trickles, errors, credentials."""

from __future__ import annotations

import http.server
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BODY = b"0123456789" * 100  # 1000 bytes
# What a login wall, a proxy or a mirror's "not found" page often sends with status 200.
HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>Sign in</body></html>\n"
)


class Handler(http.server.BaseHTTPRequestHandler):
    """Behaviour by the first path part: full, cut, cut-once, trickle, fail, fail-once,
    missing, tree (files of ``server.root`` at their relative path), html (an HTML page with
    status 200, whatever the path), redirect (302 to ``server.redirect_to`` + the rest of
    the path)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 (the http.server API)
        server = self.server
        kind, _, rest = self.path.lstrip("/").partition("/")
        server.hits[kind] += 1
        server.auth.append(self.headers.get("Authorization"))
        body = BODY
        if kind == "tree":
            path = server.root / urllib.parse.unquote(rest)
            if not path.is_file():
                return self._status(404)
            body = path.read_bytes()
        if kind == "fail" or (kind == "fail-once" and server.hits[kind] == 1):
            return self._status(503)
        if kind == "missing":
            return self._status(404)
        if kind == "redirect":
            self.send_response(302)
            self.send_header("Location", f"{server.redirect_to}/{rest}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if kind == "html":
            body = HTML_PAGE
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if kind == "cut" or (kind == "cut-once" and server.hits[kind] == 1):
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return None
        if kind == "trickle":
            for i in range(len(body)):
                self.wfile.write(body[i : i + 1])
                self.wfile.flush()
                time.sleep(server.trickle_s)
            return None
        self.wfile.write(body)
        return None

    def _status(self, code: int) -> None:
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()


class QuietServer(http.server.ThreadingHTTPServer):
    """A client that gives up mid-transfer (the point of these tests) breaks the server's
    pipe: expected here, so not printed."""

    def handle_error(self, request: object, client_address: object) -> None:
        pass


@contextmanager
def misbehaving_server(root: Path) -> Iterator[http.server.ThreadingHTTPServer]:
    """A :class:`Handler` server on 127.0.0.1 (an unused port), serving ``root`` under /tree/."""
    srv = QuietServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.hits = Counter()
    srv.auth = []
    srv.root = root
    srv.trickle_s = 0.2
    srv.redirect_to = ""
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
