"""The search's own Redis connections, when Redis closes them or goes away (a redis-server
of the test's own): a worker answers from Redis again as soon as Redis can."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from discovery.search.finder import find_nearby
from discovery.search.hot import SearchResult
from discovery.search.query import NearbyQuery
from discovery.search.services import Services
from discovery.settings import ApiSettings
from indexer.hot.index import HotIndex, connect_redis
from indexer.store.writer import write_entities
from tests.conftest import Index
from tests.factories import random_stores
from tests.redis_server import RedisServer, redis_server

#: More than redis-py's pool counts by default (max_connections 100): a leak of
#: one count per error would exhaust it.
ERRORS = 150
QUERY = NearbyQuery(lat=60.2, lng=24.95, radius_m=3000.0, scale_m=1500.0, limit=10)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path) as server:
        yield server


@pytest.fixture
def services(index: Index, own_redis: RedisServer) -> Iterator[Services]:
    """The API's services over the test database and the test's own Redis, filled."""
    settings = replace(index.settings, redis_url=own_redis.url)
    hot = HotIndex(connect_redis(own_redis.url), settings.redis_prefix)
    hot.rebuild(index.conn)
    write_entities(index.conn, hot, "t", random_stores(300))
    hot.close()
    svc = Services(ApiSettings(index=settings, heal_check_s=0.0))
    yield svc
    svc.close()


def page(result: SearchResult) -> list[tuple[str, float, float]]:
    return [(hit.id, hit.distance_m, hit.score) for hit in result.hits]


def test_searches_answer_from_redis_while_their_connections_are_killed(
    services: Services, own_redis: RedisServer
) -> None:
    expected = find_nearby(services, QUERY)
    assert expected.source == "redis" and len(expected.hits) == 10
    admin = redis.Redis.from_url(own_redis.url)
    sources: list[str] = []
    pages: list[list[tuple[str, float, float]]] = []
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            found = find_nearby(services, QUERY)
            sources.append(found.source)
            pages.append(page(found))

    senders = [threading.Thread(target=traffic) for _ in range(3)]
    for sender in senders:
        sender.start()
    killed = 0
    try:
        for _ in range(ERRORS):
            seen = len(sources)
            killed += admin.client_kill_filter(_type="normal")
            while len(sources) < seen + 3 and all(s.is_alive() for s in senders):
                time.sleep(0.001)
    finally:
        stop.set()
        for sender in senders:
            sender.join()
    admin.close()
    # Every answer was right, wherever it came from; and once the kills stop,
    # Redis answers: a dropped connection must not keep its count in the pool, or
    # every search would raise MaxConnectionsError.
    assert all(found == page(expected) for found in pages)
    after = [find_nearby(services, QUERY) for _ in range(20)]
    assert [found.source for found in after] == ["redis"] * 20
    assert all(page(found) == page(expected) for found in after)
    assert killed >= ERRORS


def test_a_worker_answers_from_redis_again_after_an_outage(
    index: Index, services: Services, own_redis: RedisServer
) -> None:
    expected = find_nearby(services, QUERY)
    assert expected.source == "redis"
    own_redis.kill()
    during = [find_nearby(services, QUERY) for _ in range(ERRORS)]
    assert {found.source for found in during} == {"postgis"}
    assert all(page(found) == page(expected) for found in during)
    own_redis.start()  # empty: the index is gone
    assert find_nearby(services, QUERY).source == "postgis"
    hot = HotIndex(connect_redis(own_redis.url), index.settings.redis_prefix)
    hot.rebuild(index.conn)
    hot.close()
    again = find_nearby(services, QUERY)
    assert (again.source, page(again)) == ("redis", page(expected))
