"""``nearby serve`` started for a test: its base URL, and its log once stopped."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def request(url: str, **options: Any) -> Response:
    """One request: its status, headers (lower-case names) and body, whatever the status."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, **options), timeout=20) as got:
            headers = {name.lower(): value for name, value in got.headers.items()}
            return Response(got.status, headers, got.read())
    except urllib.error.HTTPError as error:
        headers = {name.lower(): value for name, value in error.headers.items()}
        return Response(error.code, headers, error.read())


@dataclass
class Served:
    """A running ``nearby serve``: its base URL and the file its output goes to."""

    base: str
    log: Path

    def output(self) -> str:
        return self.log.read_text()


@contextmanager
def serving(
    env: dict[str, str], log: Path, *args: str, port: int | None = None
) -> Iterator[Served]:
    """Run ``nearby serve --port P *args`` under ``env`` until the block ends."""
    port = port or free_port()
    command = [sys.executable, "-c", "from discovery.cli import main; main()", "serve"]
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [*command, "--port", str(port), *args],
            env={**env, "PATH": "/usr/bin:/bin"},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    served = Served(f"http://127.0.0.1:{port}", log)
    try:
        for _ in range(150):
            try:
                request(f"{served.base}/healthz")
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError(f"nearby serve did not start:\n{served.output()}")
        yield served
    finally:
        server.terminate()
        server.wait(timeout=20)
