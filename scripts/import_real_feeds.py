#!/usr/bin/env python3
"""Import real bike and charger feeds and print the counts.

    scripts/import_real_feeds.py --gbfs ../shared/data/gbfs/divvy_chicago_2025-01/gbfs.json \\
        --gbfs-v3 ../shared/data/gbfs/divvy_chicago_2025-01_vehicle_status_v3.json \\
        --ocpi ../shared/data/ocpi/ocpi221_locations_from_nrel_ny.json

Writes into the index named by DATABASE_URL, REDIS_URL and NEARBY_REDIS_PREFIX
(point them at a scratch database, not the demo's), or only parses with
``--parse-only``. The 3.0 vehicle file has no system_information: it is
imported as its own source (``--gbfs-v3-source``, default ``divvy-v3``).
"""

from __future__ import annotations

import argparse
from collections import Counter
from datetime import UTC, datetime

from indexer.hot.index import HotIndex, connect_redis
from indexer.jobs.feeds import FeedSpec, count_stale, import_feed, load_feed, summary_line
from indexer.settings import IndexSettings
from indexer.store import db


def describe(spec: FeedSpec, settings: IndexSettings) -> None:
    """Print what the feed holds: entities by category, availability, rejects, stale."""
    loaded = load_feed(spec)
    entities = loaded.parsed.entities
    categories = Counter(entity.category for entity in entities)
    available = sum(entity.available or 0 for entity in entities)
    capacity = sum(entity.capacity or 0 for entity in entities)
    stale = count_stale(settings, loaded, datetime.now(UTC))
    print(f"{spec.location}")
    print(
        f"  source {loaded.source}: {len(entities):,} entities "
        f"({', '.join(f'{n:,} {c}' for c, n in sorted(categories.items()))}); "
        f"available {available:,} of capacity {capacity:,}; "
        f"rejected {len(loaded.parsed.rejected):,}; already stale {stale:,}"
    )


def specs_of(args: argparse.Namespace) -> list[FeedSpec]:
    """The feeds named on the command line, in a fixed order."""
    named = [
        ("gbfs", args.gbfs, None),
        ("gbfs", args.gbfs_v3, args.gbfs_v3_source),
        ("ocpi", args.ocpi, None),
        ("ocm", args.ocm, None),
    ]
    return [FeedSpec(kind, location, source) for kind, location, source in named if location]


def main() -> None:
    """Parse the arguments, describe each feed, then import it unless told not to."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gbfs", help="a GBFS gbfs.json, directory or feed file")
    parser.add_argument("--gbfs-v3", help="a GBFS 3.0 vehicle_status file")
    parser.add_argument("--gbfs-v3-source", default="divvy-v3")
    parser.add_argument("--ocpi", help="an OCPI 2.2.1 locations response")
    parser.add_argument("--ocm", help="Open Charge Map POI JSON")
    parser.add_argument("--parse-only", action="store_true", help="parse and count; write nothing")
    args = parser.parse_args()
    specs = specs_of(args)
    if not specs:
        parser.error("name at least one feed")
    settings = IndexSettings.from_env()
    for spec in specs:
        describe(spec, settings)
    if args.parse_only:
        return
    conn = db.connect(settings.database_url)
    hot = HotIndex(connect_redis(settings.redis_url), settings.redis_prefix)
    if hot.generation() is None:
        hot.rebuild(conn)
    for spec in specs:
        print(summary_line(import_feed(conn, hot, settings, spec)))
    with conn.cursor() as cur:
        cur.execute("SELECT source, kind, count(*) FROM entities GROUP BY 1, 2 ORDER BY 1, 2")
        for source, kind, count in cur.fetchall():
            print(f"  in the index: {source} {kind} {count:,}")
    differences = hot.verify(conn)
    print(f"  hot index differences: {len(differences)}")


if __name__ == "__main__":
    main()
