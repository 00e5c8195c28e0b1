"""The workers' own errors, over ``nearby serve``: a request the HTTP parser refuses is
answered with the API's error JSON, by every worker class."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Index
from tests.discovery.serving import serving


def raw_exchange(base: str, request: bytes) -> tuple[int, str, Any]:
    """(status, content type, parsed JSON body) of one request sent as bytes."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers.get("Content-Type", ""), json.loads(body)


# A header line over the limit: gevent's is 64 KB, gunicorn's 8,190 bytes.
HEADER_BYTES = {"gevent": 70_000, "gthread": 9_000}


@pytest.mark.parametrize("worker_class", sorted(HEADER_BYTES))
def test_requests_the_server_refuses_get_the_error_json(
    index: Index, cli_env: dict[str, str], tmp_path: Path, worker_class: str
) -> None:
    long_line = b"GET /v1/nearby?lat=1&lng=2&x=" + b"a" * 10_000 + b" HTTP/1.1\r\n\r\n"
    big_header = b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * HEADER_BYTES[worker_class]
    many_headers = b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % n for n in range(120))
    cases = [
        (long_line, 414, "uri_too_long"),
        (big_header + b"\r\n\r\n", 431, "headers_too_large"),
        (many_headers + b"\r\n", 431, "headers_too_large"),
        (b"NOT HTTP AT ALL\r\n\r\n", 400, "bad_request"),
    ]
    env = {**cli_env, "XDG_RUNTIME_DIR": str(tmp_path)}
    options = ("--workers", "1", "--worker-class", worker_class)
    with serving(env, tmp_path / "serve.log", *options) as served:
        for request, status, code in cases:
            got = raw_exchange(served.base, request)
            assert got[:2] == (status, "application/json"), (request[:40], got)
            assert set(got[2]["error"]) == {"code", "message", "param"}
            assert (got[2]["error"]["code"], got[2]["error"]["param"]) == (code, None)
