"""Benchmark text search (``q`` on /v1/nearby, /v1/suggest) on the synthetic city, and PostgreSQL.

    python -m scripts.bench_text                    # the standard city's 1,000,000 stores
    python -m scripts.bench_text --stores 100000

The city's places, categories, chains and popularity are :mod:`scripts.gen_city`'s;
its names look real: half are names of Helsinki's shops, cafés and restaurants
from OpenStreetMap (``data/helsinki_center_pois.geojson``, ODbL), some with a
street of theirs after them, half Korean (chains and shop words with a Seoul
neighbourhood, "스타벅스 강남점", "행복약국"); a chain's stores carry its
catalog name, a Helsinki chain's or a Korean one's.  A database and a Redis
prefix of its own (``nearby_bench_text_…``), loaded once and reused while the
city's size matches.

Every figure is measured in the same run, in-process (parse, search, JSON body)
on seeded query points where people are, each asked once: a common word at
1 km, a rare word at 50 km, a Hangul word at 1 km, and suggest for the start
of a common word; each from the hot index, beside the same query without
``q``, the same answered by PostGIS (the fallback path) and PostgreSQL doing
it alone (``pg_trgm`` ``LIKE`` with ``ST_DWithin``, ``ORDER BY`` score,
``LIMIT``).  Then what the text costs per entity: in Redis (the text entries
and the posting sets, MEMORY USAGE summed), in PostGIS (the three word
columns and the trigram index).
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg

from discovery.api.app import create_app
from discovery.api.current import services
from discovery.api.nearby import body_of
from discovery.api.suggest import suggest_query, suggestions_of
from discovery.search.finder import find_nearby, from_postgis
from discovery.search.params import parse_nearby
from discovery.search.suggestions import DEFAULT_RADIUS_M, postgis_suggest
from discovery.settings import ApiSettings
from indexer.hot import layout
from indexer.hot.index import HotIndex, connect_redis
from indexer.model import Entity
from indexer.settings import IndexSettings
from indexer.store.catalog import MiniApp
from scripts.benchkit import ensure_database, ensure_stores, log, scratch_settings, summary, timed
from scripts.gen_city import BRANDS, city_stores, query_points

SEED = 1
POIS = Path(__file__).resolve().parents[1] / "data" / "helsinki_center_pois.geojson"
#: OSM categories of things that are not shops (their names are not borrowed).
NOT_SHOPS = {"bench", "vending_machine", "artwork", "bicycle_parking", "parking", "yes",
             "waste_basket", "company", "toilets", "recycling", "post_box", "atm"}  # fmt: skip
#: Korean chains and shop words, and Seoul neighbourhoods for their branches.
HANGUL_CHAINS = ("스타벅스", "이디야커피", "파리바게뜨", "뚜레쥬르", "올리브영", "다이소",
                 "세븐일레븐", "이마트24", "롯데리아", "맘스터치", "교촌치킨", "김밥천국",
                 "투썸플레이스", "빽다방", "메가커피", "홈플러스")  # fmt: skip
HANGUL_SHOPS = ("약국", "미용실", "편의점", "분식", "치킨", "카페", "식당", "정육점", "꽃집",
                "세탁소", "안경원", "빵집")  # fmt: skip
HANGUL_WORDS = ("행복", "우리", "소문난", "새마을", "한양", "대박", "미소", "사랑", "하나",
                "푸른", "명가", "원조")  # fmt: skip
SEOUL_PLACES = ("강남", "역삼", "홍대", "신촌", "종로", "명동", "잠실", "여의도", "서초",
                "합정", "건대", "을지로", "이태원", "압구정", "성수", "마포")  # fmt: skip

NEARBY_SQL = """
SELECT id FROM (
    SELECT id, ST_Distance(geog, p.g, false) AS d, popularity FROM entities,
        (SELECT ST_SetSRID(ST_MakePoint(%(lng)s, %(lat)s), 4326)::geography AS g) p
    WHERE ST_DWithin(geog, p.g, %(r)s, false) {text}
) c
ORDER BY power(0.5, power(d / %(scale)s, 2)) * (1 + ln(1 + popularity)) DESC, d, id
LIMIT 20
"""
SUGGEST_SQL = """
SELECT name, sum(popularity) AS s, count(*) AS n FROM entities,
    (SELECT ST_SetSRID(ST_MakePoint(%(lng)s, %(lat)s), 4326)::geography AS g) p
WHERE ST_DWithin(geog, p.g, %(r)s, false) AND (' ' || search_text) LIKE %(like)s
GROUP BY name ORDER BY s DESC, n DESC, name LIMIT 10
"""
TEXT_LIKE = "AND (' ' || search_text) LIKE %(like)s"


def shop_names() -> tuple[list[str], list[str], list[str]]:
    """Names of Helsinki's shops, its chains (names found twice or more, and brands),
    and its streets, from the OSM points of interest."""
    features = json.loads(POIS.read_text())["features"]
    names, brands, streets = [], set(), set()
    for feature in features:
        tags = feature["properties"]
        if tags.get("category") in NOT_SHOPS or not tags.get("name"):
            continue
        names.append(tags["name"])
        if tags.get("brand"):
            brands.add(tags["brand"])
        if tags.get("addr_street"):
            streets.add(tags["addr_street"])
    counts = collections.Counter(names)
    brands |= {name for name, count in counts.items() if count > 1}
    return sorted(set(names)), sorted(brands), sorted(streets)


def catalog() -> list[MiniApp]:
    """The city's chains with names: Helsinki's and Korean ones, in turn."""
    _, brands, _ = shop_names()
    pool = [name for pair in itertools.zip_longest(brands, HANGUL_CHAINS) for name in pair if name]
    return [MiniApp(slug, pool[n % len(pool)]) for n, slug in enumerate(BRANDS)]


def named_stores(n: int) -> Iterator[Entity]:
    """The city's stores with names that look real (see the module)."""
    names, _, streets = shop_names()
    chains = {app.slug: app.name for app in catalog()}
    rng = random.Random(f"text-names-{SEED}")
    for store in city_stores(SEED, n):
        chain = chains.get(store.mini_app)
        korean = rng.random() < 0.5
        place = rng.choice(SEOUL_PLACES) + "점" if korean else rng.choice(streets)
        if chain:
            name = f"{chain} {place}"
        elif korean:
            name = rng.choice(HANGUL_WORDS) + rng.choice(HANGUL_SHOPS)
            name += f" {place}" if rng.random() < 0.3 else ""
        else:
            name = rng.choice(names) + (f" {place}" if rng.random() < 0.3 else "")
        yield replace(store, name=name)


def ensure_loaded(settings: IndexSettings, stores: int, reload: bool) -> None:
    """Load the catalog and the stores into PostGIS and Redis unless they are there."""
    ensure_stores(settings, stores, reload, catalog(), lambda: named_stores(stores))


def word_counts(conn: psycopg.Connection) -> collections.Counter[str]:
    """How many entities hold each word (of their name, category or chain)."""
    counts: collections.Counter[str] = collections.Counter()
    with conn.cursor(name="words") as cur:
        cur.execute("SELECT search_text FROM entities")
        while rows := cur.fetchmany(50_000):
            for (text,) in rows:
                counts.update(set(text.split(" ")))
    conn.commit()
    return counts


def latin(word: str) -> bool:
    """A Latin word of five letters or more."""
    return len(word) >= 5 and word.isascii() and word.isalpha()


def hangul(word: str) -> bool:
    """A word of two Hangul syllables or more."""
    return len(word) >= 2 and all("\uac00" <= c <= "\ud7a3" for c in word)


def pick_words(counts: collections.Counter[str]) -> dict[str, str]:
    """The words the queries ask: the commonest Latin and Hangul words, a rare one (of
    six letters or more, held by about ten entities), and the start of the common one."""
    ranked = [word for word, _ in counts.most_common()]
    common = next(filter(latin, ranked))
    rare = min(
        (w for w in ranked if len(w) >= 6 and w.isalpha()), key=lambda w: (abs(counts[w] - 10), w)
    )
    return {"common": common, "hangul": next(filter(hangul, ranked)), "rare": rare,
            "prefix": common[:3]}  # fmt: skip


def ours(radius: int, q: str | None, source: str = "redis") -> Callable[[float, float], Any]:
    """GET /v1/nearby in-process: parse, search, build the JSON body (``source``: the
    store that must answer, ``postgis`` for the fallback path)."""
    find = from_postgis if source == "postgis" else find_nearby

    def run(lat: float, lng: float) -> Any:
        args = {"lat": [repr(lat)], "lng": [repr(lng)], "radius": [str(radius)]}
        if q is not None:
            args["q"] = [q]
        svc = services()
        key = svc.settings.cursor_key
        query = parse_nearby(args, svc.settings.ranking, svc.stale, time.time(), key)
        found = find(svc, query)
        if found.source != source:
            raise RuntimeError(f"{source} was to answer, {found.source} did")
        return body_of(query, found, key)

    return run


def ours_suggest(q: str, source: str = "redis") -> Callable[[float, float], Any]:
    """GET /v1/suggest in-process: parse, the completions from the hot index (or from
    PostGIS, the fallback path), as JSON."""

    def run(lat: float, lng: float) -> Any:
        svc = services()
        query = suggest_query({"q": [q], "lat": [repr(lat)], "lng": [repr(lng)]}, svc, time.time())
        if source == "postgis":
            return [s.as_json() for s in svc.read(lambda conn: postgis_suggest(conn, query))]
        found, answered = suggestions_of(svc, query)
        if answered != source:
            raise RuntimeError(f"{source} was to answer, {answered} did")
        return [s.as_json() for s in found]

    return run


def raw(conn: psycopg.Connection, sql: str, radius: float, q: str | None):
    """PostgreSQL alone: the statement with ``q``'s word as a LIKE (or without it)."""

    def run(lat: float, lng: float) -> Any:
        params: dict[str, Any] = {"lat": lat, "lng": lng, "r": radius, "scale": radius / 2}
        if q is not None:
            params["like"] = f"% {q}%"
        return conn.execute(sql, params).fetchall()

    return run


def measure(
    settings: IndexSettings, chosen: dict[str, str], held: dict[str, int], counts: tuple[int, int]
) -> list[str]:
    """The table's rows: each query with q, without it, and PostgreSQL's alone; ``held``:
    how many entities hold each word."""
    unique, baseline = counts
    app = create_app(ApiSettings(index=settings))
    conn = psycopg.connect(settings.database_url, autocommit=True)
    with_text = NEARBY_SQL.format(text=TEXT_LIKE)
    plain = NEARBY_SQL.format(text="")
    scenarios = (
        (f"q={chosen['common']} (common: {held['common']:,}), 1 km", 1_000, chosen["common"]),
        (f"q={chosen['rare']} (rare: {held['rare']:,}), 50 km", 50_000, chosen["rare"]),
        (f"q={chosen['hangul']} (Hangul: {held['hangul']:,}), 1 km", 1_000, chosen["hangul"]),
    )
    rows = []
    with app.app_context():
        for name, radius, q in scenarios:
            points = query_points(SEED, f"text-{name}", unique)
            base = points[:baseline]
            cells = (
                summary(timed(ours(radius, q), points)),
                summary(
                    timed(ours(radius, None), query_points(SEED, f"text-{name}-plain", unique))
                ),
                summary(timed(ours(radius, q, "postgis"), base)),
                summary(timed(raw(conn, with_text, radius, q), base)),
                summary(timed(raw(conn, plain, radius, None), base)),
            )
            rows.append(f"| {name} | {' | '.join(cells)} |")
            log(rows[-1])
        prefix = chosen["prefix"]
        points = query_points(SEED, "text-suggest", unique)
        cells = (
            summary(timed(ours_suggest(prefix), points)),
            summary(
                timed(ours(int(DEFAULT_RADIUS_M), None), query_points(SEED, "text-s-plain", unique))
            ),
            summary(timed(ours_suggest(prefix, "postgis"), points[:baseline])),
            summary(timed(raw(conn, SUGGEST_SQL, DEFAULT_RADIUS_M, prefix), points[:baseline])),
            "–",
        )
        rows.append(
            f"| suggest q={prefix}, {DEFAULT_RADIUS_M / 1000:.0f} km | {' | '.join(cells)} |"
        )
        log(rows[-1])
    app.extensions["nearby"].close()
    conn.close()
    return rows


def redis_text_bytes(settings: IndexSettings) -> str:
    """What the text costs the hot index per entity: its text entries and posting sets
    (MEMORY USAGE of each key, summed), beside the whole generation's."""
    hot = HotIndex(connect_redis(settings.redis_url), settings.redis_prefix)
    gen = hot.require_generation()
    entities = hot.client.hlen(layout.loc_key(hot.prefix, gen))
    sizes = {"text": 0, "postings": 0, "all": 0}
    keys = {"text": 0, "postings": 0}
    base = layout.generation_base(hot.prefix, gen)
    batch: list[bytes] = []

    def add(names: list[bytes]) -> None:
        pipe = hot.raw.pipeline(transaction=False)
        for name in names:
            pipe.memory_usage(name, samples=0)
        for name, used in zip(names, pipe.execute(), strict=True):
            kind = name.rpartition(b"}:")[2]
            part = ("text" if kind in (layout.TEXT.encode(), layout.CARRIERS.encode()) else
                    "postings" if kind.startswith(layout.POSTINGS.encode()) else None)  # fmt: skip
            sizes["all"] += used or 0
            if part:
                sizes[part] += used or 0
                keys[part] += 1

    for key in hot.raw.scan_iter(match=base + "*", count=2000):
        batch.append(key)
        if len(batch) >= 2000:
            add(batch)
            batch = []
    add(batch)
    hot.client.close()
    per = {name: value / max(entities, 1) for name, value in sizes.items()}
    return (
        f"Redis per entity: {per['text'] + per['postings']:.0f} bytes of text index"
        f" ({per['text']:.0f} of text entries in {keys['text']:,} hashes, {per['postings']:.0f}"
        f" of {keys['postings']:,} posting sets), of {per['all']:.0f} for the whole"
        f" generation ({entities:,} entities; MEMORY USAGE summed)."
    )


def text_bytes(conn: psycopg.Connection) -> str:
    """What the text costs PostGIS per entity: its three columns and the trigram index."""
    found = conn.execute(
        "SELECT count(*), coalesce(avg(pg_column_size(name_words)"
        " + pg_column_size(category_words) + pg_column_size(search_text)), 0),"
        " pg_relation_size('entities_search_text_trgm') FROM entities"
    ).fetchone()
    count, columns, index = found if found else (0, 0, 0)
    per = index / count if count else 0.0
    return (
        f"PostGIS per entity: {float(columns):.0f} bytes of words (three columns) and {per:.0f}"
        f" bytes of trigram index ({index / 2**20:.0f} MiB for {count:,} entities)."
    )


def main(argv: list[str] | None = None) -> int:
    """Load the city if need be, measure, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=300, help="query points per figure")
    parser.add_argument("--baseline-queries", type=int, default=30)
    parser.add_argument("--reload", action="store_true", help="load the city again")
    args = parser.parse_args(argv)
    settings = scratch_settings(f"text_{args.stores}")
    ensure_database(settings)
    ensure_loaded(settings, args.stores, args.reload)
    with psycopg.connect(settings.database_url) as conn:
        counts = word_counts(conn)
        chosen = pick_words(counts)
        sizes = text_bytes(conn)
    held = {kind: counts[word] for kind, word in chosen.items()}
    log(f"words: {chosen}, held by {held}")
    rows = measure(settings, chosen, held, (args.queries, args.baseline_queries))
    print(
        f"City: {args.stores:,} stores (names from OSM Helsinki and Korean chains); top 20;"
        f" in-process p50 / p99 in ms over {args.queries} unique points"
        f" ({args.baseline_queries} for the fallback and PostgreSQL); after each word, how many"
        " entities hold it."
    )
    print()
    print(
        "| query | ours (Redis text index) | ours, same without q | ours from PostGIS (the"
        " fallback) | PostgreSQL pg_trgm LIKE + ST_DWithin | PostgreSQL, same without q |"
    )
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    print()
    print(redis_text_bytes(settings))
    print(sizes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
