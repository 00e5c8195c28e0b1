"""Reads on a real streaming replica: the PostGIS fallback and entity reads go there
while it keeps up, to the primary while it lags or is down (answers stay exact);
writes never go there."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient

from discovery.api.app import create_app
from discovery.search.finder import find_entity, find_nearby
from discovery.search.query import NearbyQuery
from discovery.search.ranking import brute_force
from discovery.search.services import Notes, Services
from discovery.settings import ApiSettings
from indexer.model import Entity
from indexer.store.writer import write_entities
from tests.conftest import API_KEY, Index
from tests.factories import candidate_of, random_stores, store
from tests.pg_replica import ReplicaServer

QUERY = NearbyQuery(lat=60.2, lng=24.95, radius_m=3000.0, scale_m=1500.0, limit=10)


class Reads(Notes):
    """Notes that keep the servers reads went to."""

    def __init__(self) -> None:
        self.servers: list[str] = []

    def read_from(self, server: str) -> None:
        self.servers.append(server)


def replica_settings(
    api_settings: ApiSettings, replica: ReplicaServer, max_lag_s: int = 5
) -> ApiSettings:
    index = replace(
        api_settings.index,
        database_read_url=replica.url(api_settings.index.database_url),
        replica_max_lag_s=max_lag_s,
    )
    return replace(api_settings, index=index)


@pytest.fixture
def entities(index: Index, replica: ReplicaServer) -> list[Entity]:
    """Stores in PostGIS only (Redis holds no index: searches fall back), replayed."""
    written = random_stores(300)
    write_entities(index.conn, index.hot, "t", written)
    index.hot.drop_all()
    replica.catch_up(index.settings.database_url)
    return written


def services_of(settings: ApiSettings) -> Iterator[tuple[Services, Reads]]:
    """Services over the replica that look at its lag before every read."""
    reads = Reads()
    svc = Services(settings, reads)
    assert svc.replica is not None
    svc.replica.check_every_s = 0.0
    try:
        yield svc, reads
    finally:
        svc.close()


@pytest.fixture
def on_replica(
    api_settings: ApiSettings, replica: ReplicaServer
) -> Iterator[tuple[Services, Reads]]:
    yield from services_of(replica_settings(api_settings, replica))


@pytest.fixture
def strict(api_settings: ApiSettings, replica: ReplicaServer) -> Iterator[tuple[Services, Reads]]:
    """Services that leave the replica once it lags a second."""
    yield from services_of(replica_settings(api_settings, replica, max_lag_s=1))


def page(entities: list[Entity], query: NearbyQuery = QUERY) -> list[tuple[str, float, float]]:
    hits, _ = brute_force(query, [candidate_of(e) for e in entities])
    return [(h.id, h.distance_m, h.score) for h in hits]


def found(services: Services, query: NearbyQuery = QUERY) -> list[tuple[str, float, float]]:
    result = find_nearby(services, query)
    assert result.source == "postgis"
    return [(h.id, h.distance_m, h.score) for h in result.hits]


def test_the_fallback_search_and_entity_reads_go_to_the_replica(
    entities: list[Entity], on_replica: tuple[Services, Reads]
) -> None:
    services, reads = on_replica
    assert found(services) == page(entities)
    assert find_entity(services, entities[0].id)["id"] == entities[0].id
    assert reads.servers == ["replica", "replica"]
    # The pool's server is the replica: a standby, in recovery.
    with services.replica.connection() as conn:  # type: ignore[union-attr]
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)


def test_a_replica_that_lags_sends_reads_to_the_primary(
    index: Index, entities: list[Entity], strict: tuple[Services, Reads], replica: ReplicaServer
) -> None:
    services, reads = strict
    assert found(services) == page(entities)
    assert reads.servers == ["replica"]
    replica.pause_replay()
    try:
        # Once replay has stood still for longer than the limit, a write it has not
        # replayed makes the replica lag more than the limit.
        time.sleep(1.1)
        fresh = store(9001, lat=QUERY.lat, lng=QUERY.lng)
        write_entities(index.conn, index.hot, "t", [fresh])
        index.hot.drop_all()
        assert found(services) == page([*entities, fresh])
        assert find_entity(services, fresh.id)["id"] == fresh.id
        assert reads.servers[1:] == ["primary", "primary"]
        assert services.replica is not None and not services.replica.usable
    finally:
        replica.resume_replay()


def test_a_replica_that_is_down_sends_reads_to_the_primary(
    index: Index,
    entities: list[Entity],
    on_replica: tuple[Services, Reads],
    replica: ReplicaServer,
) -> None:
    services, reads = on_replica
    assert found(services) == page(entities)
    replica.stop()
    try:
        # Each look finds the replica gone: reads go to the primary.
        answers = [found(services) for _ in range(5)]
        assert answers == [page(entities)] * 5
        assert reads.servers[1:] == ["primary"] * 5
    finally:
        replica.start()
    replica.catch_up(index.settings.database_url)
    assert found(services) == page(entities)
    assert reads.servers[-1] == "replica"


def test_pushes_write_to_the_primary(
    index: Index, api_settings: ApiSettings, replica: ReplicaServer
) -> None:
    seen = datetime.now(UTC) - timedelta(minutes=1)
    bike = Entity(id="citybikes:b1", kind="bike", lat=60.169, lng=24.933, category="free_bike",
                  available=1, capacity=1, seen_at=seen)  # fmt: skip
    write_entities(index.conn, index.hot, "citybikes", [bike])
    app = create_app(replica_settings(api_settings, replica))
    client: FlaskClient = app.test_client()
    try:
        response = client.post(
            "/v1/positions",
            json={"items": [{"id": bike.id, "lat": 60.179, "lng": 24.933}]},
            headers={"X-API-Key": API_KEY},
        )
    finally:
        app.extensions["nearby"].close()
    # The replica is read-only: a write there would have failed.
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["applied"] == 1
    with index.conn.cursor() as cur:
        cur.execute("SELECT lat FROM entities WHERE id = %s", (bike.id,))
        assert cur.fetchone() == (60.179,)
    index.conn.commit()
