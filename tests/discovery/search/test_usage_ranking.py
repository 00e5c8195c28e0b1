"""Usage events in the ranking: popularity = listed + Σ w · 2^(−(t − at)/h), against a brute force.

Events go in through POST /v1/events; every answer states the time its
popularities are of (``popularity_at``), and the brute force computes each
entity's popularity at that time from the events themselves (math.fsum of the
terms), not from what the service stored. The hot index answers (its sets
scored by bounds of the popularity, indexer/hot/layout.py), at the request's
time and at times days later, when those bounds have loosened; PostGIS answers
the same.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest
from flask.testing import FlaskClient

from discovery.search.finder import find_nearby
from discovery.search.params import parse_nearby
from discovery.search.postgis import postgis_search
from discovery.search.query import NearbyQuery, StaleLimits
from discovery.search.ranking import brute_force
from discovery.search.services import Services
from discovery.settings import RankingSettings
from indexer.hot import layout
from indexer.model import Entity
from indexer.rules import popularity_now
from indexer.settings import DEFAULT_EVENT_WEIGHTS, DEFAULT_HALF_LIFE_S, DEFAULT_STALE_S
from indexer.store.events import apply_events
from indexer.store.writer import write_entities
from tests.conftest import API_KEY, CURSOR_KEY, Index
from tests.factories import Taken, candidate_of, clear_catalog, point_at

AUTH = {"Authorization": f"Bearer {API_KEY}"}
HELSINKI = (60.17, 24.94)
APPS = ("", "kfc", "alepa", "volt")
#: Listed popularities with ties (0 above all, as listings without a figure have).
LISTED = (0.0, 0.0, 0.0, 1.0, 3.0, 40.0)
DAY = 86400.0


@pytest.fixture
def clean(index: Index) -> Iterator[None]:
    clear_catalog(index)
    yield
    clear_catalog(index)


def random_entities(rng: random.Random, count: int) -> list[Entity]:
    """Stores and bikes from 1 m to 30 km of the centre, some at the same place."""
    entities: list[Entity] = []
    for i in range(count):
        if entities and rng.random() < 0.1:
            entities.append(replace(rng.choice(entities), id=f"t:{i}"))
            continue
        lat, lng = point_at(*HELSINKI, rng.uniform(0, 2 * math.pi), 10 ** rng.uniform(0, 4.5))
        entities.append(
            Entity(id=f"t:{i}", kind=rng.choice(("store", "store", "bike")), lat=lat, lng=lng,
                   name=f"e{i}", mini_app=rng.choice(APPS), popularity=rng.choice(LISTED))
        )  # fmt: skip
    return entities


def random_events(rng: random.Random, entities: list[Entity], count: int, now: float) -> list[dict]:
    """Events on a few entities (most get none), at times of the past three weeks."""
    used = rng.sample(entities, len(entities) // 4)
    return [
        {"type": rng.choice(tuple(DEFAULT_EVENT_WEIGHTS)), "entity_id": rng.choice(used).id,
         "at": now - rng.uniform(0, 21 * DAY)}
        for _ in range(count)
    ]  # fmt: skip


def post(client: FlaskClient, events: list[dict]) -> None:
    for first in range(0, len(events), 500):
        response = client.post("/v1/events", json=events[first : first + 500], headers=AUTH)
        assert response.status_code == 200 and not response.json["errors"], response.json


def usage_of(events: list[dict], t_s: float) -> dict[str, float]:
    """Each entity's usage at ``t_s``: masses summed from the events as the formula says,
    then decayed (the stored masses are against the epoch; so are these)."""
    terms: dict[str, list[float]] = {}
    for event in events:
        weight = DEFAULT_EVENT_WEIGHTS[event["type"]]
        terms.setdefault(event["entity_id"], []).append(
            weight * 0.5 ** ((t_s - event["at"]) / DEFAULT_HALF_LIFE_S)
        )
    return {eid: math.fsum(values) for eid, values in terms.items()}


def stored_masses(index: Index) -> dict[str, float]:
    with index.conn.cursor() as cur:
        cur.execute("SELECT id, usage_mass FROM entities WHERE usage_mass > 0")
        found = dict(cur.fetchall())
    index.conn.commit()
    return found


def expected(query: NearbyQuery, entities: list[Entity], masses: dict[str, float]) -> list[tuple]:
    """The brute force's whole answer at the query's popularity time."""
    factor = query.usage_factor
    candidates = [
        replace(
            candidate_of(e), popularity=popularity_now(e.popularity, masses.get(e.id, 0.0), factor)
        )
        for e in entities
    ]
    hits, _ = brute_force(replace(query, limit=10**9), candidates)
    return [(h.id, h.distance_m, h.score, h.popularity, h.group_count) for h in hits]


def reference_query(args: dict[str, Any]) -> NearbyQuery:
    """The query the API builds from ``args``."""
    values = {name: [str(value)] for name, value in args.items()}
    stale = StaleLimits(by_kind=dict(DEFAULT_STALE_S))
    return parse_nearby(values, RankingSettings(), stale, time.time(), CURSOR_KEY)


def walk(client: FlaskClient, args: dict[str, Any]) -> tuple[list[tuple], set[str], float]:
    """Every page of the API's answer: results, sources, and the first page's popularity time."""
    found: list[tuple] = []
    sources: set[str] = set()
    cursor: str | None = None
    stated: float | None = None
    while True:
        body = client.get(
            "/v1/nearby", query_string={**args, "cursor": cursor} if cursor else args
        ).json
        at = datetime.fromisoformat(body["popularity_at"]).timestamp()
        assert stated is None or at == stated  # every page ranks by the first page's time
        stated = at
        sources.add(body["source"])
        found += [(r["id"], r["distance_m"], r["score"], r["popularity_now"], r.get("count"))
                  for r in body["results"]]  # fmt: skip
        cursor = body["next_cursor"]
        if cursor is None:
            return found, sources, stated


def test_usage_ranks_as_the_brute_force_says(
    index: Index, client: FlaskClient, clean: None
) -> None:
    rng = random.Random(7)
    now = time.time()
    entities = random_entities(rng, 500)
    write_entities(index.conn, index.hot, "t", entities, replace=True)
    events = random_events(rng, entities, 3000, now)
    post(client, events)
    masses = stored_masses(index)
    assert set(masses) == {event["entity_id"] for event in events}
    checked = 0
    for round_ in range(12):
        lat, lng = point_at(*HELSINKI, rng.uniform(0, 2 * math.pi), rng.choice((0, 50, 2000)))
        args: dict[str, Any] = {
            "lat": lat, "lng": lng, "sort": rng.choice(("score", "popularity")),
            "radius": rng.choice((100.0, 10 ** rng.uniform(2, 4.6), 40_000.0)),
            "limit": rng.choice((1, 3, 20)),
        }  # fmt: skip
        if round_ % 3 == 0:
            args["group"] = "mini_app"
        found, sources, at = walk(client, args)
        assert sources == {"redis"}
        query = replace(reference_query(args), popularity_at_s=at)
        want = expected(query, entities, masses)
        assert found == want, args
        # The stored masses are the events' own, decayed as the formula says.
        usage = usage_of(events, at)
        for eid, _, _, popularity, _ in found:
            listed = next(e.popularity for e in entities if e.id == eid)
            assert math.isclose(
                popularity, listed + usage.get(eid, 0.0), rel_tol=1e-9, abs_tol=1e-12
            )
        checked += len(found)
    assert checked > 0


def test_later_times_rank_exactly_as_the_bounds_loosen(
    index: Index, clean: None, api_settings
) -> None:
    """Days after the generation was made (its bounds then far above the usage), and
    just before it: the hot index and PostGIS both give the brute force's answer."""
    rng = random.Random(11)
    now = time.time()
    entities = random_entities(rng, 400)
    write_entities(index.conn, index.hot, "t", entities, replace=True)
    services = Services(api_settings, Taken())
    try:
        with services.postgis() as conn:
            apply_events(
                conn,
                index.hot,
                random_events(rng, entities, 2000, now),
                api_settings.index.usage,
                now,
            )
        masses = stored_masses(index)
        for offset in (0.0, -0.5 * DAY, 3 * DAY, 30 * DAY):
            for sort in ("score", "popularity"):
                lat, lng = point_at(*HELSINKI, rng.uniform(0, 6.3), rng.uniform(0, 3000))
                query = NearbyQuery(lat=lat, lng=lng, radius_m=rng.choice((500.0, 5000.0, 30000.0)),
                                    sort=sort, scale_m=1000.0, limit=rng.choice((1, 5, 25)),
                                    popularity_at_s=now + offset)  # fmt: skip
                want = expected(query, entities, masses)[: query.limit]
                found = services.search.search(query)
                assert [
                    (h.id, h.distance_m, h.score, h.popularity, h.group_count) for h in found.hits
                ] == want
                fallback = postgis_search(index.conn, query)
                assert [
                    (h.id, h.distance_m, h.score, h.popularity, h.group_count)
                    for h in fallback.hits
                ] == want
    finally:
        services.close()


def test_an_event_moves_an_entity_up_at_once(
    index: Index, client: FlaskClient, clean: None
) -> None:
    far = point_at(*HELSINKI, 1.0, 900.0)
    entities = [
        Entity(id="t:near", kind="store", lat=HELSINKI[0], lng=HELSINKI[1], popularity=5.0),
        Entity(id="t:far", kind="store", lat=far[0], lng=far[1], popularity=0.0),
    ]
    write_entities(index.conn, index.hot, "t", entities, replace=True)
    args = {"lat": HELSINKI[0], "lng": HELSINKI[1], "sort": "popularity", "radius": 2000}
    before = client.get("/v1/nearby", query_string=args).json
    assert [r["id"] for r in before["results"]] == ["t:near", "t:far"]
    order = {"type": "order", "entity_id": "t:far", "at": time.time()}  # weight 5
    post(client, [order, order])
    after = client.get("/v1/nearby", query_string=args).json
    assert after["source"] == "redis"
    assert [r["id"] for r in after["results"]] == ["t:far", "t:near"]
    top = after["results"][0]
    assert top["popularity"] == 0.0 and 9.99 < top["popularity_now"] <= 10.0
    assert index.hot.verify(index.conn) == []


def test_a_clock_behind_the_bounds_gets_postgis(index: Index, clean: None, api_settings) -> None:
    """A query whose time is before the generation's bound time: PostGIS answers it, exactly."""
    entities = [Entity(id=f"t:{i}", kind="store", lat=HELSINKI[0] + i * 1e-4, lng=HELSINKI[1])
                for i in range(5)]  # fmt: skip
    write_entities(index.conn, index.hot, "t", entities, replace=True)
    gen = index.hot.client.get(layout.gen_key(index.hot.prefix))
    # Made with the factor of a day before now: above now's, below three days ago's.
    now_factor = NearbyQuery(lat=0.0, lng=0.0, popularity_at_s=time.time()).usage_factor
    assert index.hot.bound_factor(gen) > now_factor
    notes = Taken()
    services = Services(api_settings, notes)
    try:
        query = NearbyQuery(lat=HELSINKI[0], lng=HELSINKI[1], sort="popularity",
                            popularity_at_s=time.time() - 3 * DAY)  # fmt: skip
        found = find_nearby(services, query)
        assert found.source == "postgis"
        assert notes.told == [("not_answered", None), ("source", "postgis")]
        assert [h.id for h in found.hits] == [h[0] for h in expected(query, entities, {})][:20]
    finally:
        services.close()
