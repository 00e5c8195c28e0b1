"""Request ids: echoed or made, in the response and on every log line of their request."""

from __future__ import annotations

import json
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from discovery.api.app import create_app
from discovery.api.requestlog import error_kind, request_id_of
from discovery.settings import ApiSettings, ObservabilitySettings
from indexer.hot import layout
from indexer.model import Entity
from indexer.store.writer import write_entities
from tests.conftest import API_KEY, Index
from tests.discovery.serving import request, serving

NEARBY = "/v1/nearby?lat=60.1701&lng=24.9402&radius=500"
GENERATED = re.compile(r"[0-9a-f]{32}")
NO_GENERATION = "Redis holds no index generation: answering from PostGIS"


def seed(index: Index) -> None:
    stores = [Entity(id=f"t:{n}", kind="store", lat=60.17 + n * 1e-4, lng=24.94) for n in range(5)]
    write_entities(index.conn, index.hot, "t", stores)


def test_a_well_formed_request_id_is_echoed_on_both_paths(
    index: Index, client: FlaskClient
) -> None:
    seed(index)
    for path in ("/healthz", NEARBY, "/v1/entities/t:1", "/v1/entities/t:nope", "/nowhere"):
        response = client.get(path, headers={"X-Request-Id": "edge-7f3a:2"})
        assert response.headers["X-Request-Id"] == "edge-7f3a:2", path


def test_an_id_is_made_when_none_or_a_malformed_one_is_given(client: FlaskClient) -> None:
    made = [client.get("/healthz").headers["X-Request-Id"] for _ in range(3)]
    assert all(GENERATED.fullmatch(rid) for rid in made) and len(set(made)) == 3
    for bad in ("two words", "x" * 129, "", "a\tb", "ümlaut", 'quote"d'):
        rid = client.get("/healthz", headers={"X-Request-Id": bad}).headers["X-Request-Id"]
        assert GENERATED.fullmatch(rid), bad


def test_request_id_of_and_error_kind() -> None:
    assert request_id_of("A-z_0.9:x") == "A-z_0.9:x"
    assert GENERATED.fullmatch(request_id_of(None))
    assert error_kind(ConnectionError()) == "connection_error"
    assert error_kind(TimeoutError()) == "timeout_error"


def test_log_lines_of_a_request_carry_its_id(
    index: Index, client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    seed(index)
    index.hot.client.delete(layout.gen_key(index.hot.prefix))
    with caplog.at_level(logging.WARNING):
        client.get(NEARBY, headers={"X-Request-Id": "req-1"})
        client.get(NEARBY, headers={"X-Request-Id": "req-2"})
        logging.getLogger("nearby.test").warning("outside any request")
    lines = [(r.getMessage(), r.request_id) for r in caplog.records]  # type: ignore[attr-defined]
    assert lines == [
        (NO_GENERATION, "req-1"),
        (NO_GENERATION, "req-2"),
        ("outside any request", None),
    ]


def test_json_log_lines_parse(
    index: Index, api_settings: ApiSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(index)
    app = create_app(replace(api_settings, observe=ObservabilitySettings(log_format="json")))
    try:
        index.hot.client.delete(layout.gen_key(index.hot.prefix))
        capsys.readouterr()
        app.test_client().get(NEARBY, headers={"X-Request-Id": "json-1"})
        logging.getLogger("nearby.test").info("with extras", extra={"feed": "divvy", "rows": 3})
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    finally:
        app.extensions["nearby"].close()
    assert [{k: v for k, v in line.items() if k != "time"} for line in lines] == [
        {"level": "WARNING", "logger": "discovery.search.finder", "message": NO_GENERATION,
         "request_id": "json-1"},
        {"level": "INFO", "logger": "nearby.test", "message": "with extras", "request_id": None,
         "feed": "divvy", "rows": 3},
    ]  # fmt: skip
    assert all(
        re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", ln["time"]) for ln in lines
    )


def test_concurrent_requests_in_greenlets_keep_their_own_ids(
    index: Index, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """One gevent worker serves them all at once: each warning names its own request."""
    seed(index)
    index.hot.client.delete(layout.gen_key(index.hot.prefix))
    env = {**cli_env, "NEARBY_LOG_FORMAT": "json"}
    sent = [f"greenlet-{n}" for n in range(40)]
    with serving(env, tmp_path / "serve.log", "--workers", "1") as served:

        def ask(rid: str) -> str:
            return request(served.base + NEARBY, headers={"X-Request-Id": rid}).headers[
                "x-request-id"
            ]

        with ThreadPoolExecutor(max_workers=20) as pool:
            echoed = list(pool.map(ask, sent))
    assert echoed == sent
    warned = [
        line["request_id"]
        for line in map(json.loads, filter(None, served.output().splitlines()))
        if line["message"] == NO_GENERATION
    ]
    assert sorted(warned) == sorted(sent)


def test_nothing_secret_reaches_the_logs(
    index: Index, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """A write carrying a key in each header, a query string and a body, and a read with
    private parameters: the access log has a line for each, and none of the secrets."""
    seed(index)
    secrets = {
        "other": "other-secret-key-1",
        "query": "query-secret-2",
        "user": "user-secret-3",
        "body": "body-secret-4",
        "read_key": "read-secret-5",
        "read_user": "read-user-6",
    }
    env = {
        **cli_env,
        "NEARBY_LOG_FORMAT": "json",
        "NEARBY_API_KEYS": f"{API_KEY},{secrets['other']}",
    }
    body = {"user_id": secrets["user"], "items": [{"id": "t:1", "note": secrets["body"]}]}
    with serving(env, tmp_path / "serve.log", "--workers", "1", "--access-log") as served:
        write = request(
            f"{served.base}/v1/positions?token={secrets['query']}&user_id={secrets['user']}",
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {API_KEY}", "X-API-Key": secrets["other"],
                     "Content-Type": "application/json", "X-Request-Id": "write-1"},
            method="POST",
        )  # fmt: skip
        assert write.status == 200
        headers = {"X-API-Key": secrets["other"], "X-Request-Id": "write-2"}
        rejected = request(
            f"{served.base}/v1/availability", data=b"{", method="POST", headers=headers
        )
        assert rejected.status == 400
        read = request(
            f"{served.base}{NEARBY}&key={secrets['read_key']}&user={secrets['read_user']}",
            headers={"X-Request-Id": "read-1"},
        )
        assert read.status == 400  # unknown parameters are refused, and named
    output = served.output()
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    access = {line["request_id"]: line for line in lines if line["logger"] == "gunicorn.access"}
    assert (access["write-1"]["method"], access["write-1"]["path"]) == ("POST", "/v1/positions")
    assert (access["write-1"]["query"], access["write-1"]["status"]) == (None, 200)
    assert (access["write-2"]["path"], access["write-2"]["status"]) == ("/v1/availability", 400)
    assert (access["read-1"]["route"], access["read-1"]["status"]) == ("/v1/nearby", 400)
    assert access["read-1"]["query"] == (
        "lat=60.1701&lng=24.9402&radius=500&key=[redacted]&user=[redacted]"
    )
    for name, secret in [*secrets.items(), ("api key", API_KEY)]:
        assert secret not in output, name
