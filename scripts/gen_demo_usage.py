#!/usr/bin/env python3
"""A simulated week of the demo's usage, sent through a Redis Stream, and its two users.

    scripts/gen_demo_usage.py --catalog DIR/mini_apps.ndjson --branches DIR/branches.ndjson
                              [--stream nearby-demo:events] [--seed 16] [--end 2026-12-06T20:00:00Z]

Reads what ``scripts/gen_demo_catalog.py`` wrote and, with ``DATABASE_URL`` and
``REDIS_URL`` as the service reads them:

1. makes the favourites of :data:`USERS` exactly theirs (``indexer.store.users``);
2. unless ``demo-anna`` already has recents (the week was loaded before: events
   add up, so a second week would double every mass), XADDs the events of the 7
   days before ``--end`` (default: a minute ago) to ``--stream``, for ``nearby events
   consume STREAM --until-empty`` to apply.

The events (:func:`simulate_week`) are a crowd's, anonymous, and the two demo
users' routines. The crowd's rate follows the app's kind by Helsinki local hour
(:data:`PROFILES`: coffee in the morning, food at noon and in the evening,
kiosks late) and the branch's place (:func:`place_weight`: busier near the
railway station, Kamppi and the market square). The same seed and end give the
same events.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

HELSINKI = ZoneInfo("Europe/Helsinki")
#: About how many crowd events the week holds.
CROWD_EVENTS = 3000
#: Relative rate by local hour 0..23, per kind of app.
PROFILES: Mapping[str, tuple[float, ...]] = {
    "coffee": (0, 0, 0, 0, 0, 0, 1, 6, 9, 8, 5, 3, 3, 3, 4, 4, 3, 2, 1, 1, 0.5, 0, 0, 0),
    "food": (0.5, 0, 0, 0, 0, 0, 0, 0.5, 1, 1, 2, 7, 9, 6, 2, 2, 3, 6, 8, 7, 4, 2, 1, 1),
    "kiosk": (2, 1, 0, 0, 0, 0, 1, 2, 2, 1, 1, 1, 2, 1, 1, 2, 3, 3, 4, 5, 6, 7, 7, 5),
    "shop": (0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 3, 4, 5, 5, 5, 5, 5, 5, 4, 3, 1, 0, 0, 0),
}
#: The kind of an app by its category; any other is a ``shop``.
PATTERNS: Mapping[str, str] = {
    "cafe": "coffee", "bakery": "coffee",
    "fast_food": "food", "restaurant": "food",
    "kiosk": "kiosk",
}  # fmt: skip
#: Where the centre is busiest: (lat, lng) of the railway station, Kamppi, the market square.
HOTSPOTS = ((60.1710, 24.9414), (60.1690, 24.9320), (60.1675, 24.9525))
HOTSPOT_SCALE_M = 400.0


@dataclass(frozen=True)
class Habit:
    """A demo user's routine: an app used at a local hour on some weekdays (Monday 0),
    each such day with a chance, by an event type."""

    slug: str
    hour: int
    weekdays: tuple[int, ...]
    chance: float
    type: str = "open"


WEEKDAYS = (0, 1, 2, 3, 4)
EVERY_DAY = (0, 1, 2, 3, 4, 5, 6)
#: The two demo users: their favourites and their habits.
USERS: Mapping[str, tuple[tuple[str, ...], tuple[Habit, ...]]] = {
    "demo-anna": (
        ("espresso-house", "marimekko", "r-kioski"),
        (Habit("espresso-house", 8, WEEKDAYS, 0.9, "order"),
         Habit("subway", 12, WEEKDAYS, 0.5, "order"), Habit("r-kioski", 21, EVERY_DAY, 0.4),
         Habit("marimekko", 14, (5,), 1.0),
         Habit("nordea", 10, (2,), 1.0)),
    ),
    "demo-ben": (
        ("burger-king", "alko", "roberts-coffee"),
        (Habit("mcdonalds", 12, WEEKDAYS, 0.4, "order"),
         Habit("burger-king", 19, EVERY_DAY, 0.5, "order"),
         Habit("alko", 17, (4,), 1.0), Habit("roberts-coffee", 10, (5, 6), 0.7, "order"),
         Habit("r-kioski", 23, (4, 5), 0.6), Habit("hesburger", 20, (0, 3), 0.8, "order")),
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Branch:
    """A branch as the simulation needs it: its entity id, app and place."""

    entity_id: str
    slug: str
    lat: float
    lng: float


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Flat-earth distance of two nearby (lat, lng) points, in metres (enough within a city)."""
    d_lat = (a[0] - b[0]) * 111_195.0
    d_lng = (a[1] - b[1]) * 111_195.0 * math.cos(math.radians(a[0]))
    return math.hypot(d_lat, d_lng)


def place_weight(lat: float, lng: float) -> float:
    """How busy a place is: a floor of 0.3 plus a Gaussian bump around each hotspot."""
    bumps = (math.exp(-((distance_m((lat, lng), h) / HOTSPOT_SCALE_M) ** 2)) for h in HOTSPOTS)
    return 0.3 + sum(bumps)


def read_branches(path: Path, source: str) -> list[Branch]:
    """The branches of ``branches.ndjson``: their ids and points as the import of ``source``
    gives them (a way's point is its representative point, as the import takes it)."""
    from indexer.sources.geojson import geometry_to_point

    branches = []
    for line in path.read_text(encoding="utf-8").splitlines():
        feature = json.loads(line)
        lat, lng, _ = geometry_to_point(feature["geometry"])
        slug = feature["properties"]["mini_app"]
        branches.append(Branch(f"{source}:{feature['id']}", slug, float(lat), float(lng)))
    return branches


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth's method; the means here are small)."""
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def event_at(kind: str, entity_id: str, at_s: float, user: str | None = None) -> dict[str, str]:
    """A stream entry's fields: ``at`` in POSIX seconds, ``user`` only when given."""
    fields = {"type": kind, "entity_id": entity_id, "at": f"{at_s:.3f}"}
    if user is not None:
        fields["user"] = user
    return fields


def crowd_type(rng: random.Random, pattern: str) -> str:
    """Orders at cafés and food places half the time; opening the app otherwise."""
    return "order" if pattern in ("coffee", "food") and rng.random() < 0.5 else "open"


def hourly_means(rng: random.Random, apps: Mapping[str, str],
                 by_app: Mapping[str, Sequence[Branch]],
                 local_hours: Sequence[int]) -> list[dict[str, float]]:  # fmt: skip
    """Each hour's mean count of crowd events by app, adding up to :data:`CROWD_EVENTS`.

    An app's share grows with its branches, times a liking of its own; its hour's
    weight is its kind's profile at that local hour.
    """
    share = {slug: len(by_app[slug]) ** 0.8 * rng.uniform(0.5, 1.5) for slug in sorted(by_app)}
    profile = {slug: PROFILES[PATTERNS.get(apps.get(slug, ""), "shop")] for slug in share}
    weights = [{slug: share[slug] * profile[slug][hour] for slug in share} for hour in local_hours]
    rate = CROWD_EVENTS / sum(sum(hour.values()) for hour in weights)
    return [{slug: rate * weight for slug, weight in hour.items()} for hour in weights]


def crowd_events(rng: random.Random, apps: Mapping[str, str], branches: Sequence[Branch],
                 end_s: float) -> Iterator[dict[str, str]]:  # fmt: skip
    """The crowd's events of the 168 hours before ``end_s`` (apps: slug → category)."""
    by_app: dict[str, list[Branch]] = {}
    for branch in branches:
        by_app.setdefault(branch.slug, []).append(branch)
    hours = [end_s - (k + 1) * 3600.0 for k in range(7 * 24)]
    local = [datetime.fromtimestamp(h + 1800.0, HELSINKI).hour for h in hours]
    means = hourly_means(rng, apps, by_app, local)
    places = {slug: [place_weight(b.lat, b.lng) for b in found] for slug, found in by_app.items()}
    for start, mean in zip(hours, means, strict=True):
        for slug, expected in mean.items():
            for _ in range(poisson(rng, expected)):
                branch = rng.choices(by_app[slug], places[slug])[0]
                kind = crowd_type(rng, PATTERNS.get(apps.get(slug, ""), "shop"))
                yield event_at(kind, branch.entity_id, start + rng.uniform(0.0, 3600.0))


def habit_events(rng: random.Random, user: str, habits: Sequence[Habit],
                 branches: Sequence[Branch], end_s: float) -> Iterator[dict[str, str]]:  # fmt: skip
    """A user's events of the 7 days before ``end_s``: each habit at its own branch."""
    for habit in habits:
        own = [b for b in branches if b.slug == habit.slug]
        if not own:
            raise SystemExit(f"{user}'s habit names {habit.slug!r}, which has no branch")
        branch = rng.choice(own)
        for days_ago in range(8):
            day = datetime.fromtimestamp(end_s, HELSINKI).date() - timedelta(days=days_ago)
            moment = datetime(day.year, day.month, day.day, habit.hour, tzinfo=HELSINKI)
            at_s = moment.timestamp() + rng.uniform(0.0, 3000.0)
            used = day.weekday() in habit.weekdays and rng.random() < habit.chance
            if used and end_s - 7 * 86400.0 <= at_s < end_s:
                yield event_at(habit.type, branch.entity_id, at_s, user)


def simulate_week(seed: int, apps: Mapping[str, str], branches: Sequence[Branch],
                  end_s: float) -> list[dict[str, str]]:  # fmt: skip
    """Every event of the week before ``end_s``, in time order."""
    rng = random.Random(seed)
    events = list(crowd_events(rng, apps, branches, end_s))
    for user, (_, habits) in sorted(USERS.items()):
        events += habit_events(rng, user, habits, branches, end_s)
    return sorted(events, key=lambda event: float(event["at"]))


def set_favorites(conn: Any, user: str, slugs: Sequence[str]) -> None:
    """Make the user's favourites exactly ``slugs``, added in that order."""
    from indexer.store import users

    for held in users.favorites(conn, user):
        if held["slug"] not in slugs:
            users.remove_favorite(conn, user, held["slug"])
    for slug in slugs:
        users.add_favorite(conn, user, slug)
        time.sleep(0.01)  # distinct added_at, so that the list keeps this order


def send(client: Any, stream: str, events: Sequence[Mapping[str, str]]) -> None:
    """XADD the events to ``stream``, a thousand a round trip."""
    for first in range(0, len(events), 1000):
        with client.pipeline(transaction=False) as pipe:
            for fields in events[first : first + 1000]:
                pipe.xadd(stream, dict(fields))
            pipe.execute()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalog", type=Path, required=True)
    parser.add_argument("--branches", type=Path, required=True)
    parser.add_argument("--source", default="osm-helsinki")
    parser.add_argument("--stream", default="nearby-demo:events")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--end", type=datetime.fromisoformat, default=None)
    args = parser.parse_args(argv)
    from indexer.hot.client import connect_redis
    from indexer.settings import IndexSettings
    from indexer.store import db, users

    apps = {}
    for line in args.catalog.read_text(encoding="utf-8").splitlines():
        app = json.loads(line)
        apps[app["slug"]] = app["category"]
    for user, (favourites, _) in USERS.items():
        missing = sorted(set(favourites) - set(apps))
        if missing:
            raise SystemExit(f"{user}'s favourites name apps the catalog lacks: {missing}")
    settings = IndexSettings.from_env()
    with db.connect(settings.database_url) as conn:
        for user, (favourites, _) in sorted(USERS.items()):
            set_favorites(conn, user, favourites)
        if users.recents(conn, "demo-anna"):
            print("usage events: the simulated week is loaded already (kept)")
            return
    # A minute back from now: a server whose clock is a little behind still takes them all.
    end_s = args.end.timestamp() if args.end else time.time() - 60.0
    events = simulate_week(args.seed, apps, read_branches(args.branches, args.source), end_s)
    send(connect_redis(settings.redis_url), args.stream, events)
    print(f"usage events: {len(events):,} sent to {args.stream}")


if __name__ == "__main__":
    main()
