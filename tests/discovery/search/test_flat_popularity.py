"""Every popularity 0 (bikes, listings without a figure, no usage): tops by score and by
popularity are read as tops by distance, and still equal the brute force.

Where no member of a query's groups has any popularity, the score falls with the
distance alone and sort=popularity ties everywhere, so both orders are the
distance's; the search then reads nearest cells first, staged from small radii,
instead of whole coarse cells (nearby_modes.lua). Checked over places at every
scale, near the antimeridian and a pentagon, every page, groups without counts,
and the hand-over's guard: a top by distance standing for a flat one refuses
groups that hold popularity.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import replace
from typing import Any

import h3
import pytest
from flask.testing import FlaskClient

from discovery.search import coverage
from discovery.search.hot import Stats
from discovery.search.nearby_script import NotFlat
from discovery.search.params import parse_nearby
from discovery.search.query import NearbyQuery, StaleLimits
from discovery.search.ranking import brute_force
from discovery.settings import RankingSettings
from indexer.model import Entity
from indexer.settings import DEFAULT_STALE_S
from indexer.store.writer import write_entities
from tests.conftest import CURSOR_KEY, Index
from tests.factories import candidate_of, point_at

PENTAGON = h3.cell_to_latlng(h3.get_pentagons(4)[3])
PLACES = ((60.17, 24.94), (-16.5, 179.99), PENTAGON)
APPS = ("", "kfc", "alepa", "volt")


def flat_entities(rng: random.Random, centre: tuple[float, float], count: int) -> list[Entity]:
    """Stores and bikes from 1 m to 60 km of ``centre``, none with any popularity."""
    entities = []
    for i in range(count):
        lat, lng = point_at(*centre, rng.uniform(0, 2 * math.pi), 10 ** rng.uniform(0, 4.8))
        entities.append(
            Entity(id=f"t:{rng.choice('aBé')}{i}", kind=rng.choice(("store", "bike")), lat=lat,
                   lng=lng, name=f"e{i}", mini_app=rng.choice(APPS))
        )  # fmt: skip
    if entities:
        entities.append(Entity(id="t:twin", kind="store", lat=entities[0].lat, lng=entities[0].lng))
    return entities


def reference_query(args: dict[str, Any]) -> NearbyQuery:
    values = {name: [str(value)] for name, value in args.items() if name != "explain"}
    stale = StaleLimits(by_kind=dict(DEFAULT_STALE_S))
    return parse_nearby(values, RankingSettings(), stale, time.time(), CURSOR_KEY)


def walk(client: FlaskClient, args: dict[str, Any]) -> tuple[list[tuple], list[dict]]:
    """Every page: (id, distance, score, popularity_now) of each result, and each page's
    explain."""
    found: list[tuple] = []
    read: list[dict] = []
    cursor = None
    while True:
        asked = {**args, "explain": "true", **({"cursor": cursor} if cursor else {})}
        body = client.get("/v1/nearby", query_string=asked).json
        assert body["source"] == "redis", body
        read.append(body["explain"]["read"])
        found += [(r["id"], r["distance_m"], r["score"], r["popularity_now"])
                  for r in body["results"]]  # fmt: skip
        cursor = body["next_cursor"]
        if cursor is None:
            return found, read


def expected(args: dict[str, Any], entities: list[Entity]) -> list[tuple]:
    """The brute force's whole answer."""
    query = replace(reference_query(args), limit=10**9)
    hits, _ = brute_force(query, [candidate_of(e) for e in entities])
    return [(h.id, h.distance_m, h.score, h.popularity) for h in hits]


@pytest.mark.parametrize("place", PLACES)
def test_flat_tops_equal_the_brute_force(index: Index, client: FlaskClient, place) -> None:
    rng = random.Random(repr(place))
    entities = flat_entities(rng, place, 400)
    write_entities(index.conn, index.hot, "t", entities, replace=True)
    for _ in range(8):
        lat, lng = point_at(*place, rng.uniform(0, 2 * math.pi), rng.choice((0, 30, 3000)))
        args: dict[str, Any] = {
            "lat": lat, "lng": lng, "sort": rng.choice(("score", "popularity")),
            "radius": rng.choice((10.0, 10 ** rng.uniform(1, 4.7), 50_000.0)),
            "limit": rng.choice((1, 3, 20)),
        }  # fmt: skip
        found, _ = walk(client, args)
        assert found == expected(args, entities), args


@pytest.mark.parametrize("sort", ["score", "popularity"])
def test_a_wide_flat_top_reads_near_cells_only(index: Index, client: FlaskClient, sort) -> None:
    """50 km over stores spread evenly: read as a top by distance, against the same
    query once one far store has a popularity (1e-300: the score order unchanged)."""
    rng = random.Random(5)
    entities = [
        Entity(id=f"t:{i}", kind="store", lat=lat, lng=lng)
        for i, (lat, lng) in enumerate(
            point_at(60.17, 24.94, rng.uniform(0, 2 * math.pi), 45_000 * math.sqrt(rng.random()))
            for _ in range(3000)
        )
    ]
    args = {"lat": 60.17, "lng": 24.94, "sort": sort, "radius": 50_000, "limit": 10}
    asked = {**args, "explain": "true"}
    write_entities(index.conn, index.hot, "t", entities, replace=True)
    flat = client.get("/v1/nearby", query_string=asked).json
    assert [r["id"] for r in flat["results"]] == [h[0] for h in expected(args, entities)][:10]
    far = point_at(60.17, 24.94, 2.0, 44_000.0)
    tinted = [
        *entities,
        Entity(id="t:far", kind="store", lat=far[0], lng=far[1], popularity=1e-300),
    ]
    write_entities(index.conn, index.hot, "t", tinted, replace=True)
    bounded = client.get("/v1/nearby", query_string=asked).json
    assert [r["id"] for r in bounded["results"]] == [h[0] for h in expected(args, tinted)][:10]
    assert flat["explain"]["read"]["res"][0] > bounded["explain"]["read"]["res"][0]
    assert flat["explain"]["read"]["members"] * 3 < bounded["explain"]["read"]["members"]


def test_one_popular_entity_is_ranked_by_score(index: Index, client: FlaskClient) -> None:
    """A single popularity in the groups: no hand-over, the score decides."""
    rng = random.Random(6)
    entities = flat_entities(rng, PLACES[0], 300)
    far = point_at(60.17, 24.94, 1.0, 2000.0)
    entities.append(Entity(id="t:star", kind="store", lat=far[0], lng=far[1], popularity=1e6))
    write_entities(index.conn, index.hot, "t", entities, replace=True)
    for sort in ("score", "popularity"):
        args = {"lat": 60.17, "lng": 24.94, "sort": sort, "radius": 5000, "limit": 5}
        found, _ = walk(client, args)
        assert found == expected(args, entities)
        assert found[0][0] == "t:star"


def test_the_hand_over_refuses_groups_with_popularity(index: Index, client: FlaskClient) -> None:
    """The top by distance standing for a flat one checks the whole radius's groups in the
    same call: a popularity there (a write between the two calls) makes it refuse."""
    entities = [Entity(id="t:1", kind="store", lat=60.17, lng=24.94, popularity=3.0)]
    write_entities(index.conn, index.hot, "t", entities, replace=True)
    search = client.application.extensions["nearby"].search
    query = reference_query({"lat": 60.17, "lng": 24.94, "radius": 1000})
    res = coverage.resolution_for(1000)
    tags = coverage.script_cells(60.17, 24.94, 1000, res)[1]
    with pytest.raises(NotFlat):
        search.call(query, "d", 1000, 5, res, Stats(), tags)
    # Without popularity the same call answers (a group's bound is lowered by a rebuild).
    flat = [Entity(id="t:1", kind="store", lat=60.17, lng=24.94)]
    write_entities(index.conn, index.hot, "t", flat, replace=True)
    index.hot.rebuild(index.conn)
    assert [hit.id for hit in search.call(query, "d", 1000, 5, res, Stats(), tags)] == ["t:1"]


def test_groups_found_flat_are_asked_by_distance_at_once(
    index: Index, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A search remembers the groups it found flat: the next query whose radius lies in them
    asks the top by distance at once (one script call fewer); a popularity that arrives
    there since makes that call refuse, and the query ranks by score, exactly, as before."""
    rng = random.Random(8)
    entities = flat_entities(rng, PLACES[0], 300)
    write_entities(index.conn, index.hot, "t", entities, replace=True)
    search = client.application.extensions["nearby"].search
    search.flat_groups.clear()
    script, sent = search.script, []
    monkeypatch.setattr(search, "script", lambda args: sent.append(args[1]) or script(args))

    def calls_for(args: dict[str, Any]) -> int:
        """The script calls of the first page (checked against the brute force)."""
        before = len(sent)
        body = client.get("/v1/nearby", query_string=args).json
        assert body["source"] == "redis"
        found = [(r["id"], r["distance_m"], r["score"], r["popularity_now"])
                 for r in body["results"]]  # fmt: skip
        assert found == expected(args, entities)[:10], args
        return len(sent) - before

    calls = []
    for step in range(3):
        lat, lng = point_at(*PLACES[0], rng.uniform(0, 2 * math.pi), 50.0 * step)
        calls.append(
            calls_for({"lat": lat, "lng": lng, "sort": "score", "radius": 3000, "limit": 10})
        )
    assert calls[1] == calls[2] == calls[0] - 1
    star = point_at(*PLACES[0], 0.5, 100.0)
    entities.append(Entity(id="t:star", kind="store", lat=star[0], lng=star[1], popularity=50.0))
    write_entities(index.conn, index.hot, "t", entities[-1:])
    args = {"lat": PLACES[0][0], "lng": PLACES[0][1], "sort": "score", "radius": 3000, "limit": 10}
    # The guess refused, then the query's own call in its own mode.
    assert calls_for(args) == 2 and expected(args, entities)[0][0] == "t:star"
    assert not search.flat_groups
