"""The raw baselines of the live benchmark, and the bench area both share.

Two raw baselines move the same bikes the same way as the benchmark does: a bare
``UPDATE … FROM unnest(…)`` of the positions in PostGIS (no revision, no
RETURNING, no Redis), and pipelined ``GEOADD`` into one Redis GEO set of the
bikes (what a raw ``GEOSEARCH`` reads).
"""

from __future__ import annotations

import random
import time
from typing import Any

import h3.api.basic_int as h3i
import psycopg

from indexer.hot.index import connect_redis
from indexer.model import BASE_RES
from indexer.settings import IndexSettings

#: Seoul City Hall; bikes spread over about 12 x 12 km around it.
CENTER = (37.5665, 126.9780)
SPAN_DEG = 0.055
#: The raw Redis baseline's GEO set (under the bench's own prefix).
RAW_GEO_KEY = "nearby-bench-live:raw-geo"
#: The raw PostGIS baseline: positions written, nothing else.
RAW_UPDATE_SQL = """
UPDATE entities e SET lat = i.lat, lng = i.lng, h3 = i.h3
FROM unnest(%(ids)s::text[], %(lats)s::float8[], %(lngs)s::float8[], %(cells)s::int8[])
    AS i(id, lat, lng, h3)
WHERE e.id = i.id
"""


def random_point(rng: random.Random) -> tuple[float, float]:
    """A (lat, lng) in the bench area."""
    return (
        CENTER[0] + rng.uniform(-SPAN_DEG, SPAN_DEG),
        CENTER[1] + rng.uniform(-SPAN_DEG, SPAN_DEG),
    )


def move_batch(rng: random.Random, bikes: int, batch: int) -> list[dict[str, Any]]:
    """``batch`` distinct random bikes, each to a random point of the area."""
    items = []
    for n in rng.sample(range(bikes), batch):
        lat, lng = random_point(rng)
        items.append({"id": f"bench:{n}", "lat": lat, "lng": lng})
    return items


def raw_postgis_updates(
    settings: IndexSettings, bikes: int, batch: int, seconds: float, seed: int
) -> float:
    """Moves per second written to PostGIS alone, one bare UPDATE a batch (the baseline)."""
    conn = psycopg.connect(settings.database_url, autocommit=True)
    conn.execute("SET synchronous_commit = off")
    rng = random.Random(seed)
    applied = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        items = sorted(move_batch(rng, bikes, batch), key=lambda item: item["id"])
        params = {
            "ids": [item["id"] for item in items],
            "lats": [item["lat"] for item in items],
            "lngs": [item["lng"] for item in items],
            "cells": [h3i.latlng_to_cell(item["lat"], item["lng"], BASE_RES) for item in items],
        }
        applied += conn.execute(RAW_UPDATE_SQL, params).rowcount
    rate = applied / (time.perf_counter() - started)
    conn.close()
    return rate


def seed_raw_geo(settings: IndexSettings) -> None:
    """The raw Redis baseline's GEO set: every bench bike where PostGIS has it."""
    with psycopg.connect(settings.database_url) as conn:
        rows = conn.execute("SELECT id, lat, lng FROM entities WHERE source = 'bench'").fetchall()
    client = connect_redis(settings.redis_url)
    pipe = client.pipeline(transaction=False)
    pipe.delete(RAW_GEO_KEY)
    for entity_id, lat, lng in rows:
        pipe.geoadd(RAW_GEO_KEY, (lng, lat, entity_id))
    pipe.execute()
    client.close()


def raw_redis_updates(
    settings: IndexSettings, bikes: int, batch: int, seconds: float, seed: int
) -> float:
    """Moves per second as pipelined GEOADDs into one GEO set (the baseline)."""
    client = connect_redis(settings.redis_url)
    rng = random.Random(seed)
    applied = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        pipe = client.pipeline(transaction=False)
        for item in move_batch(rng, bikes, batch):
            pipe.geoadd(RAW_GEO_KEY, (item["lng"], item["lat"], item["id"]), xx=True)
        pipe.execute()
        applied += batch
    rate = applied / (time.perf_counter() - started)
    client.close()
    return rate
