"""Headless Chromium for the page tests: the binary, an app served on 127.0.0.1, and a page
driven over the DevTools protocol (a websocket).

The tests skip only when chromium cannot be installed here (``chromium()``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import websocket
from flask import Flask
from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
)


def chromium() -> str:
    """The chromium binary, installed when missing; skip the test where it cannot be."""
    found = subprocess.run(
        [str(ROOT / "scripts" / "ensure_chromium.sh")], capture_output=True, text=True, check=False
    )
    if found.returncode != 0:
        pytest.skip(f"chromium cannot be installed here: {found.stderr.strip()[-300:]}")
    return found.stdout.strip().splitlines()[-1]


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    """The app served by werkzeug in a thread on 127.0.0.1; yields its base URL."""
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        thread.join(timeout=10)


class Browser:
    """Headless Chromium on one page, driven over the DevTools protocol."""

    def __init__(self, binary: str, url: str, window: tuple[int, int] = (1200, 800)) -> None:
        self.profile = tempfile.mkdtemp(prefix="nearby-chromium-")
        size = f"--window-size={window[0]},{window[1]}"
        self.process = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, size, f"--user-data-dir={self.profile}", url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.next_id = 0
        self.socket = websocket.create_connection(self.page_socket(), timeout=30)

    def page_socket(self) -> str:
        """The websocket of the page target, once chromium has written its port."""
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if port_file.exists() and port_file.read_text().strip():
                port = port_file.read_text().split()[0]
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as answer:
                    pages = [t for t in json.load(answer) if t["type"] == "page"]
                if pages:
                    return str(pages[0]["webSocketDebuggerUrl"])
            time.sleep(0.1)
        raise AssertionError("chromium did not open its DevTools port")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and wait for its reply (events in between are dropped)."""
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                return dict(message["result"])

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        reply = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return reply["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float = 60) -> None:
        """Wait until ``expression`` is true in the page."""
        deadline = time.monotonic() + timeout_s
        while not self.evaluate(expression):
            if time.monotonic() > deadline:
                status = self.evaluate("document.getElementById('status').textContent")
                raise AssertionError(f"timed out waiting for {expression} (status: {status!r})")
            time.sleep(0.1)

    def click(self, x: float, y: float) -> None:
        """A left click at page coordinates."""
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def centre_of(self, selector: str) -> tuple[float, float]:
        """The page coordinates of the centre of the first element ``selector`` matches."""
        box = json.loads(
            self.evaluate(
                f"JSON.stringify(document.querySelector({json.dumps(selector)})"
                ".getBoundingClientRect())"
            )
        )
        return box["left"] + box["width"] / 2, box["top"] + box["height"] / 2

    def close(self) -> None:
        self.socket.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)
