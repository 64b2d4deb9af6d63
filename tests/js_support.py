"""What the tests of real browser clients (posthog-js, Snowplow's browser tracker) share: the
npm packages `make test` installs into tests/js/node_modules, a site on its own loopback origin
that serves test pages and those packages' files, and the website channel of a served Waypost.

Nothing comes from a CDN: the page loads the client from the site, which reads it from
node_modules. Imported by tests/test_posthog_sdks.py and tests/test_snowplow_sdks.py (mypy
knows it as tests.js_support).
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

if TYPE_CHECKING:
    from tests.browser_support import CHROMIUM
    from tests.sdk_support import WaypostServer
else:
    from browser_support import CHROMIUM
    from sdk_support import WaypostServer

NODE_MODULES = Path(__file__).resolve().parent / "js" / "node_modules"
T = TypeVar("T")


def require_browser_clients() -> None:
    """Skip (or fail, under WAYPOST_REQUIRE_SERVICES=1) without Chromium or the npm packages."""
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    if not NODE_MODULES.is_dir():
        missing.append(f"{NODE_MODULES} (make test runs npm ci in tests/js)")
    if missing:
        message = "missing: " + ", ".join(missing)
        if os.environ.get("WAYPOST_REQUIRE_SERVICES") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


class Site:
    """Test pages and the clients' files, served on a loopback origin of their own."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files
        self.pages: dict[str, str] = {}
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path in site.files:
                    body = site.files[path].read_bytes()
                    kind = "application/javascript"
                elif path == "/favicon.ico":
                    body, kind = b"", "image/x-icon"
                elif path in site.pages:
                    body = site.pages[path].encode()
                    kind = "text/html; charset=utf-8"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def website_of(server: WaypostServer) -> tuple[str, str]:
    """The website channel the first run made, and its publishable key."""
    output = server.output()
    channel = re.search(r"Website channel:\s+(\S+)", output)
    key = re.search(r"Publishable key \(website channel\):\s+(wpp_\S+)", output)
    assert channel is not None, output
    assert key is not None, output
    return channel.group(1), key.group(1)


def allow_origins(server: WaypostServer, channel: str, origins: list[str]) -> None:
    with server.admin() as admin:
        answer = admin.patch(f"/api/channels/{channel}", json={"allowed_origins": origins})
    assert answer.status_code == 200, answer.text


def wait_for(found: Callable[[], T | None], timeout: float = 20) -> T:
    """What ``found`` returns once it is something, polled until ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = found()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.1)
