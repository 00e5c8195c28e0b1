"""GET /metrics: the API's counters after known requests, and the index's state from Redis."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from discovery.api.app import create_app
from discovery.api.metrics import ApiMetrics
from discovery.api.requestlog import RequestRecord
from discovery.settings import ApiSettings, ObservabilitySettings
from indexer.hot import layout
from indexer.model import Entity
from indexer.settings import ConfigError
from indexer.store.writer import write_entities
from tests.conftest import API_KEY, Index
from tests.discovery.serving import free_port, request, serving

NEARBY = "/v1/nearby?lat=60.1701&lng=24.9402&radius=500"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    """Every sample of an exposition: (name, sorted labels) -> value."""
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def scrape(client: FlaskClient, **options: object) -> Samples:
    response = client.get("/metrics", **options)  # type: ignore[arg-type]
    assert response.status_code == 200, response.data
    assert response.content_type.startswith("text/plain")
    return samples(response.get_data(as_text=True))


def observations(found: Samples, histogram: str, **labels: str) -> float | None:
    """How many values a histogram was given (its _count sample): a count, never a time."""
    return value(found, histogram + "_count", **labels)


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


def seed(index: Index) -> None:
    now = datetime.now(UTC)
    stores = [
        Entity(id=f"t:{n}", kind="store", lat=60.17 + n * 1e-4, lng=24.94, popularity=n)
        for n in range(5)
    ]
    write_entities(index.conn, index.hot, "t", stores)
    bikes = [
        Entity(id=f"b:{n}", kind="bike", lat=60.1702, lng=24.9401, available=1, seen_at=now)
        for n in range(2)
    ]
    write_entities(index.conn, index.hot, "b", bikes)


def test_counters_after_a_known_sequence_of_requests(index: Index, client: FlaskClient) -> None:
    seed(index)
    for _ in range(3):
        assert client.get(NEARBY).get_json()["source"] == "redis"
    assert client.get("/v1/entities/t:nope").status_code == 404
    index.hot.client.delete(layout.gen_key(index.hot.prefix))  # Redis holds no generation
    for _ in range(2):
        assert client.get(NEARBY).get_json()["source"] == "postgis"
    assert client.get("/v1/nearby?lat=95&lng=0").status_code == 400
    assert client.get("/v1/entities/t:1").status_code == 200  # from PostGIS: a fallback too
    found = scrape(client)
    requests = "nearby_http_requests_total"
    entities = "/v1/entities/<path:entity_id>"
    assert value(found, requests, route="/v1/nearby", status="200") == 5
    assert value(found, requests, route="/v1/nearby", status="400") == 1
    assert value(found, requests, route=entities, status="404") == 1
    assert value(found, requests, route=entities, status="200") == 1
    assert sum(v for (name, _), v in found.items() if name == requests) == 8
    assert value(found, "nearby_postgis_fallbacks_total", reason="no_generation") == 3
    # Both entity reads and both searches read PostgreSQL (no replica: the primary).
    assert value(found, "nearby_postgres_reads_total", server="primary") == 4
    assert value(found, "nearby_postgres_reads_total", server="replica") is None
    # Histogram counts: how many requests were timed per route and source, never their times.
    latency = "nearby_http_request_duration_seconds_count"
    assert value(found, latency, route="/v1/nearby", source="redis") == 3
    assert value(found, latency, route="/v1/nearby", source="postgis") == 2
    assert value(found, latency, route="/v1/nearby", source="none") == 1
    assert value(found, latency, route=entities, source="postgis") == 2  # unknown, then no gen
    assert not [key for key in found if key[0] == "nearby_redis_errors_total"]
    # The index as Redis holds it: up, no generation now, one build (the fixture's).
    assert value(found, "nearby_redis_up") == 1
    assert value(found, "nearby_hot_index_generation") is None
    assert value(found, "nearby_rebuilds_started_total") == 1
    assert value(found, "nearby_rebuilds_finished_total", outcome="ok") == 1
    # The duration histogram was given one value per build that ended ok.
    built = value(found, "nearby_rebuilds_finished_total", outcome="ok")
    assert observations(found, "nearby_rebuild_duration_seconds") == built
    # The scrape itself is counted once answered.
    again = scrape(client)
    assert value(again, requests, route="/metrics", status="200") == 1


def test_the_index_state_at_scrape_time(index: Index, client: FlaskClient) -> None:
    seed(index)
    gen = index.hot.require_generation()
    found = scrape(client)
    assert value(found, "nearby_hot_index_generation") == float(gen)
    assert value(found, "nearby_hot_index_entities", kind="store", source="t") == 5
    assert value(found, "nearby_hot_index_entities", kind="bike", source="b") == 2
    assert value(found, "nearby_rebuild_running") == 0
    assert (value(found, "nearby_redis_used_memory_bytes") or 0) > 0
    since = value(found, "nearby_hot_index_current_since_timestamp_seconds")
    assert since is not None and since <= datetime.now(UTC).timestamp()


def test_pushes_applied_are_counted(index: Index, client: FlaskClient) -> None:
    seed(index)
    items = [{"id": "b:0", "lat": 60.171, "lng": 24.941}, {"id": "b:9", "lat": 60.1, "lng": 24.9}]
    headers = {"Authorization": f"Bearer {API_KEY}"}
    response = client.post("/v1/positions", json={"items": items}, headers=headers)
    assert response.get_json()["applied"] == 1
    found = scrape(client)
    assert value(found, "nearby_live_updates_applied_total", via="positions") == 1
    assert value(found, "nearby_http_requests_total", route="/v1/positions", status="200") == 1


def test_redis_errors_and_their_fallbacks(index: Index, redis_down_app: Flask) -> None:
    seed(index)
    client = redis_down_app.test_client()
    assert client.get(NEARBY).get_json()["source"] == "postgis"
    assert client.get("/v1/entities/t:1").get_json()["id"] == "t:1"
    found = scrape(client)
    assert value(found, "nearby_postgis_fallbacks_total", reason="connection_error") == 2
    assert value(found, "nearby_redis_errors_total", kind="connection_error") == 2
    assert value(found, "nearby_redis_up") == 0
    assert value(found, "nearby_hot_index_generation") is None


def test_postgres_errors_are_counted(index: Index, api_settings: ApiSettings) -> None:
    down = replace(api_settings.index, database_url="postgresql://nobody@127.0.0.1:1/none")
    application = create_app(replace(api_settings, index=down))
    try:
        client = application.test_client()
        index.hot.client.delete(layout.gen_key(index.hot.prefix))
        assert client.get(NEARBY).status_code == 503
        found = scrape(client)
        assert value(found, "nearby_postgres_errors_total", kind="pool_timeout") == 1
        assert value(found, "nearby_http_requests_total", route="/v1/nearby", status="503") == 1
    finally:
        application.extensions["nearby"].close()


def test_metrics_answer_on_their_own_port_only(index: Index, api_settings: ApiSettings) -> None:
    observe = ObservabilitySettings(metrics_port=9464)
    application = create_app(replace(api_settings, observe=observe))
    try:
        client = application.test_client()
        on_metrics_port = {"environ_overrides": {"SERVER_PORT": "9464"}}
        public = client.get("/metrics")
        assert public.status_code == 404 and public.get_json()["error"]["code"] == "not_found"
        assert client.get("/healthz").status_code == 200
        elsewhere = client.get("/healthz", **on_metrics_port)  # type: ignore[arg-type]
        assert elsewhere.status_code == 404 and elsewhere.get_json()["error"]["code"] == "not_found"
        found = scrape(client, **on_metrics_port)
        assert value(found, "nearby_http_requests_total", route="unmatched", status="404") == 2
        assert value(found, "nearby_http_requests_total", route="/healthz", status="200") == 1
        post = client.post("/metrics", **on_metrics_port)  # type: ignore[arg-type]
        assert post.status_code == 405
    finally:
        application.extensions["nearby"].close()


def test_the_metrics_port_setting_is_validated() -> None:
    assert ObservabilitySettings.from_env({"NEARBY_METRICS_PORT": "9464"}).metrics_port == 9464
    assert ObservabilitySettings.from_env({"NEARBY_METRICS_PORT": ""}).metrics_port is None
    for bad in ("http", "0", "70000"):
        with pytest.raises(ConfigError, match="NEARBY_METRICS_PORT"):
            ObservabilitySettings.from_env({"NEARBY_METRICS_PORT": bad})
    with pytest.raises(ConfigError, match="PROMETHEUS_MULTIPROC_DIR"):
        ObservabilitySettings.from_env({"PROMETHEUS_MULTIPROC_DIR": "/nonexistent/metrics"})


#: A process that serves ``count`` requests in-process, counting in the multiprocess directory.
COUNTING_PROCESS = textwrap.dedent(
    """
    import sys
    from discovery.api.app import create_app
    app = create_app()
    client = app.test_client()
    for _ in range(int(sys.argv[1])):
        assert client.get("/healthz").status_code == 200
    app.extensions["nearby.metrics"].close()  # as a worker that exits: its counts written
    app.extensions["nearby"].close()
    """
)


def test_the_counts_of_several_processes_add_up(
    index: Index, cli_env: dict[str, str], tmp_path: Path
) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    env = {**cli_env, "PATH": "/usr/bin:/bin", "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    workers = [
        subprocess.Popen([sys.executable, "-c", COUNTING_PROCESS, str(n)], env=env) for n in (2, 3)
    ]
    assert [worker.wait(timeout=60) for worker in workers] == [0, 0]
    assert len(list(directory.glob("counter_*.db"))) == 2  # one file per process
    metrics = ApiMetrics(index.hot, multiproc_dir=str(directory))
    content_type, body = metrics.exposition()
    found = samples(body.decode())
    assert value(found, "nearby_http_requests_total", route="/healthz", status="200") == 5
    # The duration histogram was given one value per request answered.
    answered = value(found, "nearby_http_requests_total", route="/healthz", status="200")
    histogram = "nearby_http_request_duration_seconds"
    assert observations(found, histogram, route="/healthz", source="none") == answered
    assert value(found, "nearby_redis_up") == 1  # read at scrape time, by this process
    assert content_type.startswith("text/plain")


def scrape_until(url: str, **labels: str) -> Samples:
    """A scrape once nearby_http_requests_total{labels} holds 20: a worker that did not
    answer the scrape writes its counts each second."""
    for _ in range(100):
        scraped = request(url)
        assert scraped.status == 200, scraped.body
        found = samples(scraped.body.decode())
        if value(found, "nearby_http_requests_total", **labels) == 20:
            break
        time.sleep(0.1)
    return found


def test_served_workers_count_into_one_scrape_on_the_metrics_port(
    index: Index, cli_env: dict[str, str], tmp_path: Path
) -> None:
    seed(index)
    metrics_port, parent = free_port(), tmp_path / "multiproc"
    parent.mkdir()
    env = {**cli_env, "PROMETHEUS_MULTIPROC_DIR": str(parent)}
    args = ("--workers", "2", "--metrics-port", str(metrics_port))
    with serving(env, tmp_path / "serve.log", *args) as served:
        for _ in range(20):
            assert request(served.base + NEARBY).status == 200
        assert request(f"{served.base}/metrics").status == 404
        metrics_base = f"http://127.0.0.1:{metrics_port}"
        assert request(f"{metrics_base}/healthz").status == 404
        found = scrape_until(f"{metrics_base}/metrics", route="/v1/nearby", status="200")
        # A directory of this run's own, made inside the one the environment named.
        assert [path.name[:15] for path in parent.iterdir()] == ["nearby-metrics-"]
    requests = "nearby_http_requests_total"
    assert value(found, requests, route="/v1/nearby", status="200") == 20
    assert value(found, requests, route="unmatched", status="404") == 2
    assert value(found, "nearby_hot_index_entities", kind="store", source="t") == 5
    assert list(parent.iterdir()) == []  # removed when gunicorn exits
    assert "Warning" not in served.output(), served.output()


def test_a_flush_writes_what_observing_would(index: Index) -> None:
    """Counts kept in memory and flushed are the counts prometheus-client's own
    observe() makes (the flush increments its histogram's bucket and sum values)."""
    kept = ApiMetrics(index.hot)
    observed = ApiMetrics(index.hot)
    durations = [0.0004, 0.0005, 0.0007, 0.003, 0.2, 12.0, 0.003]
    for seconds in durations:
        kept.count(RequestRecord("r", route="/v1/nearby", source="redis", status="200"), seconds)
        observed.requests.labels("/v1/nearby", "200").inc()
        observed.latency.labels("/v1/nearby", "redis").observe(seconds)
    before = samples(generate_latest(kept.registry).decode())  # not flushed yet
    assert value(before, "nearby_http_requests_total", route="/v1/nearby", status="200") is None
    ours, theirs = (samples(m.exposition()[1].decode()) for m in (kept, observed))
    api = {key: v for key, v in theirs.items() if key[0].startswith("nearby_http")}
    assert {key: v for key, v in ours.items() if key[0].startswith("nearby_http")} == api
    # The bucket holds the given values at most its bound (values fed in, nothing timed).
    within = sum(1 for seconds in durations if seconds <= 0.0005)
    assert value(ours, "nearby_http_request_duration_seconds_bucket", route="/v1/nearby",
                 source="redis", le="0.0005") == within  # fmt: skip
    kept.close()
    observed.close()
