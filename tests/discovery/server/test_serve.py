"""``nearby serve``, started for real: the API as gunicorn's workers answer it.

The default worker class serves each connection in a greenlet (gevent): the
search's fast path, Flask's routes, PostGIS through psycopg and Redis through
redis-py all run under its patched sockets here, against the test index.
"""

from __future__ import annotations

import http.client
import itertools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from gunicorn.ctl.client import ControlClient

from indexer.model import Entity
from indexer.store.writer import write_entities
from tests.conftest import API_KEY, Index
from tests.discovery.serving import serving as serve
from tests.factories import fetch

_LOGS = itertools.count()


@contextmanager
def serving(cli_env: dict[str, str], folder: Path, *options: str) -> Iterator[str]:
    """The base URL of ``nearby serve --workers 1`` with ``options``, over the test index.

    Its control socket goes to ``folder`` (as XDG_RUNTIME_DIR), never the user's.
    """
    env = {**cli_env, "XDG_RUNTIME_DIR": str(folder)}
    log = folder / f"serve-{next(_LOGS)}.log"
    with serve(env, log, "--workers", "1", *options) as served:
        # Its worker booted (it answered) without a warning: gevent patched the
        # standard library before redis-py and psycopg were imported.
        assert "Warning" not in served.output(), served.output()
        yield served.base


@pytest.fixture
def served(index: Index, cli_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """The base URL of ``nearby serve`` (its default worker class) over the test index."""
    with serving(cli_env, tmp_path) as base:
        yield base


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
    # Asked a moment apart: the answers differ only in that moment (and the cursor,
    # which carries it); the seed has no usage, so it ranks nothing differently.
    for answer in (body, in_process):
        assert answer.pop("popularity_at") is not None
        assert answer.pop("next_cursor") is not None
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


def test_a_chunked_body_over_the_limit_is_413_and_not_applied(index: Index, served: str) -> None:
    seed(index)
    # One item, which would move the bike, padded beyond the limit.
    body = b'[{"id": "t:bike", "lat": 60.18, "lng": 24.95, "pad": "%s"}]' % (b"a" * 5_000_000)
    host, port = served.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
        parts = (body[at : at + 65536] for at in range(0, len(body), 65536))
        connection.request(
            "POST", "/v1/positions", body=parts, headers=headers, encode_chunked=True
        )
        response = connection.getresponse()
        assert response.status == 413
        assert json.loads(response.read())["error"]["code"] == "too_large"
    finally:
        connection.close()
    status, _, entity = fetch(f"{served}/v1/entities/t:bike")
    assert (status, entity["lat"], entity["lng"]) == (200, 60.1702, 24.9401)


def test_two_instances_side_by_side_keep_their_own_control_sockets(
    index: Index, cli_env: dict[str, str], tmp_path: Path
) -> None:
    def bind_of(path: Path) -> Any:
        with ControlClient(str(path), timeout=10) as control:
            return control.send_command("show config")["bind"]

    with serving(cli_env, tmp_path) as first:
        with serving(cli_env, tmp_path) as second:
            sockets = {
                base: tmp_path / f"nearby-127.0.0.1-{base.rsplit(':', 1)[1]}.ctl"
                for base in (first, second)
            }
            for base, path in sockets.items():
                assert bind_of(path) == [base.removeprefix("http://")]
        # The second one's exit removed its own socket only.
        assert not sockets[second].exists()
        assert bind_of(sockets[first]) == [first.removeprefix("http://")]
