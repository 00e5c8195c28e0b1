"""The brute-force reference of the query overlay: the API's answer, bit for bit."""

from __future__ import annotations

import math
import random
import time
from datetime import UTC, datetime, timedelta

import h3
import pytest
from flask.testing import FlaskClient

from discovery.debug.reference import reference_answer
from discovery.search.params import parse_nearby
from discovery.search.query import NearbyQuery, StaleLimits
from discovery.settings import ApiSettings
from indexer.model import Entity
from indexer.store.writer import write_entities
from tests.conftest import Index
from tests.factories import planted_cells, planted_entities

CENTRE = (60.1690, 24.9330)
#: Staler than any default limit (bikes 600 s, chargers 1,800 s).
STALE = timedelta(days=3)


def test_reference_filters_and_sorts_by_distance(index: Index, planted: list[Entity]) -> None:
    cell = planted_cells()[3]
    lat, lng = h3.cell_to_latlng(cell)
    query = NearbyQuery(
        lat=lat, lng=lng, radius_m=150, scale_m=75, kinds=("bike",), sort="distance"
    )
    answer = reference_answer(index.conn, query)
    assert {hit.document()["kind"] for hit in answer.candidates} == {"bike"}
    distances = [
        h3.great_circle_distance((lat, lng), (h.document()["lat"], h.document()["lng"]), unit="m")
        for h in answer.hits
    ]
    assert distances == sorted(distances)
    assert len(answer.hits) == len(
        [e for e in planted_entities() if e.id.startswith(f"t:{cell}") and e.kind == "bike"]
    )


def point_near(rng: random.Random, within_m: float) -> tuple[float, float]:
    """A point at most ``within_m`` from CENTRE (small distances: flat-earth offsets)."""
    distance = within_m * math.sqrt(rng.random())
    bearing = rng.uniform(0, 2 * math.pi)
    dlat = distance * math.cos(bearing) / 111_195.0
    dlng = distance * math.sin(bearing) / (111_195.0 * math.cos(math.radians(CENTRE[0])))
    return CENTRE[0] + dlat, CENTRE[1] + dlng


def random_entity(rng: random.Random, n: int, now: datetime) -> Entity:
    """A store, bike or charger near CENTRE; a third of the bikes and chargers stale."""
    kind = rng.choice(("store", "bike", "charger"))
    lat, lng = point_near(rng, 1200.0)
    popularity = rng.choice(
        (0.0, rng.uniform(0, 3), rng.expovariate(0.01), float(rng.randint(0, 40)))
    )
    common = {"id": f"r:{n:03d}", "kind": kind, "lat": lat, "lng": lng, "popularity": popularity,
              "mini_app": rng.choice(("", "kfc", "alepa", "citybikes", "volt"))}  # fmt: skip
    if kind == "store":
        return Entity(**common, category=rng.choice(("restaurant", "mart")))
    seen = now - (STALE if rng.random() < 1 / 3 else timedelta(seconds=rng.uniform(0, 60)))
    return Entity(
        **common, category="free_bike" if kind == "bike" else "ev_charger",
        available=rng.randint(0, 3), capacity=3, seen_at=seen,
    )  # fmt: skip


def random_args(rng: random.Random) -> dict[str, str]:
    """The parameters of one GET /v1/nearby: a point near CENTRE, the rest drawn."""
    lat, lng = point_near(rng, 600.0)
    args = {"lat": repr(lat), "lng": repr(lng), "radius": rng.choice(("150", "400", "1000"))}
    args["limit"] = rng.choice(("5", "20", "100"))
    draws = (
        ("sort", ("distance",)),
        ("kinds", ("bike", "bike,charger", "store")),
        ("available", ("true",)),
        ("scale", ("120", "333.3")),
        ("popularity_weight", ("0", "0.7", "2.5")),
        ("group", ("mini_app",)),
    )
    for name, values in draws:
        if rng.random() < 0.3:
            args[name] = rng.choice(values)
    return args


@pytest.mark.parametrize("source", ["redis", "postgis"])
def test_the_reference_gives_the_apis_figures_and_leaves_stale_entities_out(
    index: Index, client: FlaskClient, api_settings: ApiSettings, source: str
) -> None:
    rng = random.Random(20251202)
    now = datetime.now(UTC)
    entities = [random_entity(rng, n, now) for n in range(240)]
    write_entities(index.conn, index.hot, "r", entities)
    if source == "postgis":
        index.hot.drop_all()
    stale_ids = {e.id for e in entities if e.seen_at is not None and now - e.seen_at >= STALE}
    index_settings = api_settings.index
    limits = StaleLimits(dict(index_settings.stale_s), dict(index_settings.stale_sources))
    stale_in_reach = 0
    for _ in range(40):
        args = random_args(rng)
        body = client.get("/v1/nearby", query_string=args).json
        assert body["source"] == source
        query = parse_nearby(
            {k: [v] for k, v in args.items()}, api_settings.ranking, limits, time.time(), b""
        )
        answer = reference_answer(index.conn, query)
        api = [(r["id"], r["distance_m"], r["score"]) for r in body["results"]]
        ref = [(hit.id, hit.distance_m, hit.score) for hit in answer.hits]
        # Exactly equal doubles, not approximately.
        assert ref == api, args
        if query.group is None:
            ranked = [hit.id for hit in answer.candidates[: query.limit]]
            assert ranked == [entity_id for entity_id, _, _ in api], args
        assert answer.more == (body["next_cursor"] is not None), args
        assert not stale_ids & {hit.id for hit in answer.candidates}
        stale_in_reach += sum(
            1 for e in entities
            if e.id in stale_ids
            and h3.great_circle_distance((query.lat, query.lng), (e.lat, e.lng), unit="m")
            <= query.radius_m
        )  # fmt: skip
    # The stale entities were there to be left out.
    assert stale_in_reach >= 20
