"""A seeded synthetic dense city around Seoul: stores, bikes and chargers.

Points fall in clusters (neighbourhoods of 150 m to 1.5 km) whose centres lie
around Seoul city hall, the busier clusters more often, plus a tenth spread
evenly over the metropolitan box. Store and charger popularity follows a Zipf
law (``P(popularity >= k) = 1 / (k + 1)``), or one of the harder distributions
of :data:`POPULARITIES`: ``flat`` (nine in ten between 3,000 and 5,100, so the
popularity term hardly separates them) or ``zero`` (every one tied, as bikes
are). The places are the same whatever the distribution. The same seed gives the same city,
on any machine and Python 3 version (only :mod:`random` with string seeds).

    python -m scripts.gen_city --stores 1000000 -o city_stores.csv.gz
    nearby import stores city_stores.csv.gz --source city
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import itertools
import math
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO

from indexer.model import Entity

#: Seoul city hall.
CENTRE_LAT, CENTRE_LNG = 37.5665, 126.9780
#: Half sizes of the metropolitan box, in degrees (about 22 km by 26 km).
BOX_LAT, BOX_LNG = 0.2, 0.3
#: Spread of cluster centres around the centre, in degrees.
CENTRE_SIGMA_LAT, CENTRE_SIGMA_LNG = 0.06, 0.08
CLUSTERS = 120
#: Share of points outside any cluster.
BACKGROUND = 0.1
METRES_PER_DEGREE = 111_320.0
#: The standard data set's size, and the highest density a cluster reaches in it.
STANDARD_STORES = 1_000_000
PEAK_PER_KM2 = 30_000.0
#: Digits kept of a coordinate (about 1 cm), so that a CSV round trip is exact.
DIGITS = 7

STORE_CATEGORIES = (
    ("restaurant", 30),
    ("cafe", 18),
    ("mart", 12),
    ("hair_salon", 8),
    ("bakery", 6),
    ("pharmacy", 5),
    ("clothes", 8),
    ("bar", 7),
    ("fast_food", 6),
)
BRANDS = tuple(f"brand{n:03d}" for n in range(200))
OPENING_HOURS = (
    None,
    "24/7",
    "Mo-Fr 09:00-18:00",
    "Mo-Sa 10:00-22:00; Su 11:00-20:00",
    "Mo-Su 07:00-23:00",
    "Tu-Su 11:30-15:00,17:00-22:00",
)
BIKE_SYSTEMS = ("ttareungi", "kickgoing", "elecle")
CHARGER_NETWORKS = ("evsis", "chaevi", "kepco", "gscaltex")
STORES_CSV_HEADER = (
    "id",
    "name",
    "lat",
    "lng",
    "category",
    "mini_app",
    "popularity",
    "opening_hours",
)


@dataclass(frozen=True, slots=True)
class Cluster:
    """A neighbourhood: its centre, its spread in metres and how often points fall in it."""

    lat: float
    lng: float
    sigma_m: float
    weight: float


def cluster_sigma_m(share: float, drawn_m: float) -> float:
    """Spread of a cluster holding ``share`` of the points.

    A busy cluster is wide: with the standard 1,000,000 stores no cluster peaks
    above ``PEAK_PER_KM2`` (a Gaussian of n points peaks at n / (2 pi sigma^2)),
    about the density of the busiest shopping streets of a large city.
    """
    needed_m = 1000.0 * math.sqrt(share * STANDARD_STORES / (2 * math.pi * PEAK_PER_KM2))
    return max(drawn_m, needed_m)


def city_clusters(seed: int) -> tuple[Cluster, ...]:
    """The clusters of the city of ``seed``; weights follow Zipf (1/rank)."""
    rng = random.Random(f"clusters-{seed}")
    total = sum(1.0 / rank for rank in range(1, CLUSTERS + 1))
    return tuple(
        Cluster(
            lat=rng.gauss(CENTRE_LAT, CENTRE_SIGMA_LAT),
            lng=rng.gauss(CENTRE_LNG, CENTRE_SIGMA_LNG),
            sigma_m=cluster_sigma_m(
                (1 - BACKGROUND) / rank / total,
                math.exp(rng.uniform(math.log(150.0), math.log(1500.0))),
            ),
            weight=1.0 / rank,
        )
        for rank in range(1, CLUSTERS + 1)
    )


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def city_points(rng: random.Random, clusters: tuple[Cluster, ...]) -> Iterator[tuple[float, float]]:
    """Endless ``(lat, lng)`` points: clustered, a tenth of them anywhere in the box."""
    cumulative = list(itertools.accumulate(cluster.weight for cluster in clusters))
    while True:
        if rng.random() < BACKGROUND:
            lat = CENTRE_LAT + rng.uniform(-BOX_LAT, BOX_LAT)
            lng = CENTRE_LNG + rng.uniform(-BOX_LNG, BOX_LNG)
        else:
            cluster = rng.choices(clusters, cum_weights=cumulative)[0]
            lat = rng.gauss(cluster.lat, cluster.sigma_m / METRES_PER_DEGREE)
            lng_scale = METRES_PER_DEGREE * math.cos(math.radians(cluster.lat))
            lng = rng.gauss(cluster.lng, cluster.sigma_m / lng_scale)
        lat = _clamp(lat, CENTRE_LAT - BOX_LAT, CENTRE_LAT + BOX_LAT)
        lng = _clamp(lng, CENTRE_LNG - BOX_LNG, CENTRE_LNG + BOX_LNG)
        yield round(lat, DIGITS), round(lng, DIGITS)


def query_points(seed: int, label: str, count: int) -> list[tuple[float, float]]:
    """``count`` seeded query points where people are (the city's own distribution).

    Each ``label`` draws points of its own: points of two labels never coincide.
    """
    points = city_points(random.Random(f"bench-queries-{seed}-{label}"), city_clusters(seed))
    return [next(points) for _ in range(count)]


def zipf_popularity(rng: random.Random) -> float:
    """A popularity with ``P(p >= k) = 1 / (k + 1)`` for k = 0, 1, 2, …"""
    return float(int(rng.paretovariate(1.0)) - 1)


#: The popularity distributions a city can have; ``zipf`` is the standard city's.
POPULARITIES = ("zipf", "flat", "zero")


def flat_popularity(rng: random.Random) -> float:
    """Nine in ten within a factor of 1.7 (3,000 to 5,100), one in twenty below, one above."""
    draw = rng.random()
    if draw < 0.05:
        return float(rng.randrange(0, 3000))
    if draw < 0.95:
        return float(rng.randrange(3000, 5100))
    return float(rng.randrange(5100, 20_000))


class Popularity:
    """Draws of one distribution for one kind; the places' draws never depend on it.

    The Zipf draw always comes from the places' own generator (so that every
    distribution gets the same places); the other distributions replace it with
    a draw of their own generator.
    """

    def __init__(self, distribution: str, kind: str, seed: int) -> None:
        if distribution not in POPULARITIES:
            raise ValueError(f"popularity must be one of {', '.join(POPULARITIES)}")
        self.distribution = distribution
        self.rng = random.Random(f"popularity-{distribution}-{kind}-{seed}")

    def draw(self, places: random.Random) -> float:
        """The next popularity."""
        zipf = zipf_popularity(places)
        if self.distribution == "flat":
            return flat_popularity(self.rng)
        return 0.0 if self.distribution == "zero" else zipf


def city_stores(seed: int, n: int, popularity: str = "zipf") -> Iterator[Entity]:
    """The ``n`` stores of the city of ``seed``, ids ``city:store/0`` on.

    A third belong to a chain (its brand is the mini-app), half have a
    mini-app of their own and the rest none.
    """
    rng = random.Random(f"stores-{seed}")
    popular = Popularity(popularity, "store", seed)
    names, weights = zip(*STORE_CATEGORIES, strict=True)
    brand_weights = list(itertools.accumulate(1.0 / rank for rank in range(1, len(BRANDS) + 1)))
    points = city_points(rng, city_clusters(seed))
    for number in range(n):
        lat, lng = next(points)
        category = rng.choices(names, weights)[0]
        draw = rng.random()
        if draw < 1 / 3:
            mini_app = rng.choices(BRANDS, cum_weights=brand_weights)[0]
        else:
            mini_app = f"app{number}" if draw < 5 / 6 else ""
        yield Entity(
            id=f"city:store/{number}",
            kind="store",
            lat=lat,
            lng=lng,
            name=f"{mini_app or category} {number}",
            category=category,
            mini_app=mini_app,
            popularity=popular.draw(rng),
            opening_hours=rng.choice(OPENING_HOURS),
        )


def city_bikes(seed: int, n: int, seen_at: datetime | None = None) -> Iterator[Entity]:
    """``n`` bikes: one in ten a station (5–30 docks), the rest free-floating."""
    rng = random.Random(f"bikes-{seed}")
    seen = seen_at or datetime.now(UTC)
    points = city_points(rng, city_clusters(seed))
    for number in range(n):
        lat, lng = next(points)
        station = rng.random() < 0.1
        capacity = rng.randint(5, 30) if station else 1
        yield Entity(
            id=f"city:bike/{number}",
            kind="bike",
            lat=lat,
            lng=lng,
            name=f"station {number}" if station else f"bike {number}",
            category="bike_station" if station else "free_bike",
            mini_app=rng.choice(BIKE_SYSTEMS),
            available=rng.randint(0, capacity) if station else 1,
            capacity=capacity,
            seen_at=seen,
        )


def city_chargers(
    seed: int, n: int, seen_at: datetime | None = None, popularity: str = "zipf"
) -> Iterator[Entity]:
    """``n`` charging sites of 1–8 points, some of them free."""
    rng = random.Random(f"chargers-{seed}")
    popular = Popularity(popularity, "charger", seed)
    seen = seen_at or datetime.now(UTC)
    points = city_points(rng, city_clusters(seed))
    for number in range(n):
        lat, lng = next(points)
        capacity = rng.randint(1, 8)
        yield Entity(
            id=f"city:charger/{number}",
            kind="charger",
            lat=lat,
            lng=lng,
            name=f"charger {number}",
            category="ev_charger",
            mini_app=rng.choice(CHARGER_NETWORKS),
            popularity=popular.draw(rng),
            available=rng.randint(0, capacity),
            capacity=capacity,
            seen_at=seen,
        )


def city_entities(
    seed: int,
    stores: int,
    bikes: int,
    chargers: int,
    seen_at: datetime | None = None,
    popularity: str = "zipf",
) -> Iterator[Entity]:
    """The whole city of ``seed``: stores, then bikes, then chargers."""
    yield from city_stores(seed, stores, popularity)
    yield from city_bikes(seed, bikes, seen_at)
    yield from city_chargers(seed, chargers, seen_at, popularity)


def store_to_row(entity: Entity) -> tuple[object, ...]:
    """The stores CSV row of a store; its id without the ``city:`` source prefix."""
    return (
        entity.id.removeprefix("city:"),
        entity.name,
        repr(entity.lat),
        repr(entity.lng),
        entity.category,
        entity.mini_app,
        repr(entity.popularity),
        entity.opening_hours or "",
    )


def write_stores_csv(out: IO[str], seed: int, n: int, popularity: str = "zipf") -> int:
    """Write the stores CSV (``--source city`` gives back the ids); return the row count."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(STORES_CSV_HEADER)
    count = 0
    for entity in city_stores(seed, n, popularity):
        writer.writerow(store_to_row(entity))
        count += 1
    return count


def open_output(path: str) -> IO[str]:
    """A text file to write, gzip when the name ends in .gz, stdout for ``-``."""
    if path == "-":
        return sys.stdout
    if path.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "wb", compresslevel=3), encoding="utf-8")
    return open(path, "w", encoding="utf-8", newline="")


def main(argv: list[str] | None = None) -> int:
    """Write the stores CSV of a city."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--stores", type=int, default=1_000_000)
    parser.add_argument("--popularity", choices=POPULARITIES, default="zipf")
    parser.add_argument("-o", "--output", default="-", help="CSV file (.gz: compressed; - stdout)")
    args = parser.parse_args(argv)
    out = open_output(args.output)
    try:
        count = write_stores_csv(out, args.seed, args.stores, args.popularity)
    finally:
        if out is not sys.stdout:
            out.close()
    print(f"wrote {count:,} stores to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
