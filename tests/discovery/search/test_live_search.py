"""Live entities as the nearby search sees them: atomic moves, staleness, the purge."""

from __future__ import annotations

import math
import random
import threading
import time
from datetime import UTC, datetime, timedelta

from flask.testing import FlaskClient

from discovery.search.hot import RedisSearch
from discovery.search.query import NearbyQuery, StaleLimits
from indexer.hot.index import HotIndex, connect_redis
from indexer.model import Entity
from indexer.settings import IndexSettings
from indexer.store.live import push_positions
from indexer.store.stale import purge_stale
from indexer.store.writer import write_entities
from tests.conftest import Index

CENTER = (60.1690, 24.9330)  # Kamppi, Helsinki
RADIUS_M = 500.0


def point_near(rng: random.Random, within_m: float) -> tuple[float, float]:
    """A point at most ``within_m`` from CENTER (small distances: flat-earth offsets)."""
    distance = within_m * math.sqrt(rng.random())
    bearing = rng.uniform(0, 2 * math.pi)
    dlat = distance * math.cos(bearing) / 111_195.0
    dlng = distance * math.sin(bearing) / (111_195.0 * math.cos(math.radians(CENTER[0])))
    return CENTER[0] + dlat, CENTER[1] + dlng


def bike(native: str, lat: float, lng: float, seen_at: datetime) -> Entity:
    return Entity(
        id=f"citybikes:{native}", kind="bike", lat=lat, lng=lng, category="free_bike",
        mini_app="citybikes", available=1, capacity=1, seen_at=seen_at,
    )  # fmt: skip


def whole_circle(settings: IndexSettings) -> NearbyQuery:
    """Every bike within RADIUS_M of CENTER (at most 100 exist, the page size)."""
    return NearbyQuery(
        lat=CENTER[0], lng=CENTER[1], radius_m=RADIUS_M, scale_m=RADIUS_M / 2, kinds=("bike",),
        limit=100, now_s=time.time(),
        stale=StaleLimits(by_kind=dict(settings.stale_s)),
    )  # fmt: skip


def test_moves_across_cells_are_never_seen_twice_or_missed(index: Index) -> None:
    """10,000 random moves while nearby searches run: each sees every inside bike once.

    Bikes "in" move among points within 400 m of the centre, always inside the
    500 m circle; bikes "out" move anywhere within 1 km. A search that returned
    a bike twice, missed an "in" bike or returned one outside the circle would
    have seen a move half done.
    """
    rng = random.Random(20250301)
    in_ids = [f"citybikes:in{i}" for i in range(50)]
    out_ids = [f"citybikes:out{i}" for i in range(50)]
    now = datetime.now(UTC)
    write_entities(
        index.conn,
        index.hot,
        "citybikes",
        [bike(i.split(":")[1], *point_near(rng, 400.0), now) for i in in_ids]
        + [bike(i.split(":")[1], *point_near(rng, 1_000.0), now) for i in out_ids],
    )
    problems: list[str] = []
    queries = 0
    done = threading.Event()

    def query_loop() -> None:
        nonlocal queries
        client = connect_redis(index.settings.redis_url)
        search = RedisSearch(HotIndex(client, index.settings.redis_prefix))
        while not done.is_set():
            result = search.search(whole_circle(index.settings))
            queries += 1
            seen = [hit.id for hit in result.hits]
            if result.source != "redis" or result.more:
                problems.append(f"query {queries}: source {result.source}, more {result.more}")
            if len(seen) != len(set(seen)):
                problems.append(f"query {queries} saw a bike twice")
            if missing := set(in_ids) - set(seen):
                problems.append(f"query {queries} missed {sorted(missing)[:3]}")
            if far := [hit.id for hit in result.hits if hit.distance_m > RADIUS_M]:
                problems.append(f"query {queries} returned {far[:3]} outside the circle")
        client.close()

    reader = threading.Thread(target=query_loop)
    reader.start()
    moved = 0
    try:
        for _ in range(100):
            items = []
            for entity_id in rng.sample(in_ids, 50) + rng.sample(out_ids, 50):
                lat, lng = point_near(rng, 400.0 if entity_id in in_ids else 1_000.0)
                items.append({"id": entity_id, "lat": lat, "lng": lng})
            result = push_positions(index.conn, index.hot, items)
            assert result.errors == ()
            moved += result.moved
    finally:
        done.set()
        reader.join()
    assert problems == []
    assert queries > 10
    assert moved > 5000  # most of the 10,000 moves crossed a res-9 cell border
    assert index.hot.verify(index.conn) == []


def nearby_ids(client: FlaskClient) -> list[str]:
    response = client.get(
        "/v1/nearby", query_string={"lat": CENTER[0], "lng": CENTER[1], "radius": 1000}
    )
    assert response.status_code == 200
    return sorted(result["id"] for result in response.get_json()["results"])


def test_a_bike_past_its_staleness_limit_disappears_then_is_purged(
    index: Index, client: FlaskClient
) -> None:
    now = datetime.now(UTC)
    limit_s = index.settings.stale_s["bike"]  # 600 s by default
    write_entities(
        index.conn,
        index.hot,
        "citybikes",
        [
            bike("fresh", *CENTER, now - timedelta(seconds=limit_s - 60)),
            bike("stale", *CENTER, now - timedelta(seconds=limit_s + 1)),
        ],
    )
    assert nearby_ids(client) == ["citybikes:fresh"]
    # Still stored until the purge: the search alone hides it.
    assert client.get("/v1/entities/citybikes:stale").status_code == 200

    # A push brings it back; growing old again hides it again.
    push_positions(index.conn, index.hot, [{"id": "citybikes:stale", "lat": 60.17, "lng": 24.93}])
    assert nearby_ids(client) == ["citybikes:fresh", "citybikes:stale"]
    later = now + timedelta(seconds=limit_s + 5)
    assert purge_stale(index.conn, index.hot, index.settings, now=later) == 2
    assert nearby_ids(client) == []
    assert client.get("/v1/entities/citybikes:stale").status_code == 404
    assert index.count() == 0
    assert index.hot.verify(index.conn) == []


def test_the_purge_leaves_a_bike_within_its_limit(index: Index, client: FlaskClient) -> None:
    now = datetime.now(UTC)
    limit_s = index.settings.stale_s["bike"]
    write_entities(
        index.conn,
        index.hot,
        "citybikes",
        [
            bike("fresh", *CENTER, now - timedelta(seconds=limit_s - 60)),
            bike("stale", *CENTER, now - timedelta(seconds=limit_s + 1)),
        ],
    )
    assert purge_stale(index.conn, index.hot, index.settings, now=now) == 1
    assert nearby_ids(client) == ["citybikes:fresh"]
    assert client.get("/v1/entities/citybikes:stale").status_code == 404
    assert index.hot.verify(index.conn) == []
