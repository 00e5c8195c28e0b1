"""``nearby serve``, started for real: the API as gunicorn's workers answer it.

The default worker class serves each connection in a greenlet (gevent): the
search's fast path, Flask's routes, PostGIS through psycopg and Redis through
redis-py all run under its patched sockets here, against the test index.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from indexer.model import Entity
from indexer.writer import write_entities
from tests.conftest import API_KEY, Index


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fetch(url: str, **options: Any) -> tuple[int, str, Any]:
    """(status, content type, parsed JSON body) of one request."""
    request = urllib.request.Request(url, **options)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers["Content-Type"], json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], json.loads(error.read())


@pytest.fixture
def served(index: Index, cli_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """The base URL of ``nearby serve`` (its default worker class) over the test index."""
    port = free_port()
    command = [sys.executable, "-c", "from discovery.cli import main; main()", "serve"]
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [*command, "--port", str(port), "--workers", "1"],
            env={**cli_env, "PATH": "/usr/bin:/bin"},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                fetch(f"{base}/healthz")
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError(f"nearby serve did not start:\n{log.read_text()}")
        # Its worker booted (it answered) without a warning: gevent patched the
        # standard library before redis-py and psycopg were imported.
        assert "Warning" not in log.read_text(), log.read_text()
        yield base
    finally:
        server.terminate()
        server.wait(timeout=20)


def seed(index: Index) -> list[Entity]:
    now = datetime.now(UTC)
    entities = [
        Entity(id=f"t:{n}", kind="store", lat=60.17 + n * 1e-4, lng=24.94, popularity=n * 1.5)
        for n in range(30)
    ]
    entities.append(
        Entity(id="t:bike", kind="bike", lat=60.1702, lng=24.9401, available=1, seen_at=now)
    )
    write_entities(index.conn, index.hot, "t", entities)
    return entities


def test_the_served_api_answers_as_the_app_does(
    index: Index, client: FlaskClient, served: str
) -> None:
    seed(index)
    query = "lat=60.1701&lng=24.9402&radius=500&limit=10"
    status, kind, body = fetch(f"{served}/v1/nearby?{query}")
    assert (status, kind, body["source"]) == (200, "application/json", "redis")
    in_process = client.get(f"/v1/nearby?{query}").get_json()
    assert body == in_process and len(body["results"]) == 10
    status, kind, collection = fetch(
        f"{served}/v1/nearby?{query}", headers={"Accept": "application/geo+json"}
    )
    assert (status, kind, collection["type"]) == (200, "application/geo+json", "FeatureCollection")
    assert [f["properties"] for f in collection["features"]] == body["results"]
    status, _, error = fetch(f"{served}/v1/nearby?lat=60.17&lng=24.94&radius=100000")
    assert (status, error["error"]["param"]) == (400, "radius")
    status, _, entity = fetch(f"{served}/v1/entities/t:3")
    assert (status, entity["id"]) == (200, "t:3")
    assert fetch(f"{served}/readyz")[0] == 200


def test_the_served_api_takes_pushes_and_falls_back_to_postgis(index: Index, served: str) -> None:
    seed(index)
    push = json.dumps({"items": [{"id": "t:bike", "lat": 60.18, "lng": 24.95}]}).encode()
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    status, _, result = fetch(f"{served}/v1/positions", data=push, headers=headers, method="POST")
    assert (status, result["applied"], result["moved"]) == (200, 1, 1)
    query = f"{served}/v1/nearby?lat=60.18&lng=24.95&radius=50&kinds=bike"
    status, _, body = fetch(query)
    assert (status, body["source"], [r["id"] for r in body["results"]]) == (
        200,
        "redis",
        ["t:bike"],
    )
    index.hot.drop_all()
    status, _, body = fetch(query)
    assert (status, body["source"], [r["id"] for r in body["results"]]) == (
        200,
        "postgis",
        ["t:bike"],
    )
