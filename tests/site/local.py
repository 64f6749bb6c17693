"""What every browser check and the PDF printer share: Debian's headless Chromium with the flags this machine
needs, a folder served on 127.0.0.1, and a page kept offline (standard library only, so `tasks.py`'s printer
can import it too)."""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

CHROMIUM = os.environ.get("VGGBOOK_CHROMIUM", "/usr/bin/chromium")
# Headless on a machine without a display or a sandbox; no background requests (this machine's network is closed).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def served(folder: str | Path) -> Iterator[str]:
    """Serve `folder` with Python's http.server on 127.0.0.1 and a free port, in a thread; yields the base URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(folder)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def offline(page: object, blocked: Callable[[str], object] = lambda url: None) -> None:
    """Let a Playwright `page` reach 127.0.0.1 only: every other request is aborted and its URL given to
    `blocked`. A route the caller adds afterwards for a local URL takes precedence (Playwright runs the most
    recently added matching route first)."""

    def only_local(route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            blocked(route.request.url)
            route.abort()

    page.route("**/*", only_local)
