#!/usr/bin/env python3
"""Derive the demo's mini-app catalog from the Helsinki extract, and give its branches their app.

    scripts/gen_demo_catalog.py [--pois data/helsinki_center_pois.geojson] [--out DIR]
                                [--icon-base http://127.0.0.1:8000/demo/icons/]

The extract tags few chains with ``brand``; most appear by name alone (seven
Espresso Houses, five Hesburgers). Only the POIs the extract's import accepts
count (:func:`accepted`); a POI belongs to a mini-app when

- it has a brand (the ``brand`` property, else its ``brand`` tag): the brand's app;
- else its name, case-folded, is shared by at least :data:`MIN_BRANCHES` POIs that
  trade (:func:`trades`: shops, and amenities where one orders or pays): that name's app.

The slug is the brand or name folded to ASCII words (:func:`slugify`); POIs whose
brand or name give the same slug are one app's branches. Writes

- ``{out}/mini_apps.ndjson``: the catalog (slug, name, icon_url, description,
  category), for ``nearby import mini-apps --replace``, with the apps of the
  demo's bike system and charger networks (:data:`FEED_APPS`) after the shops';
- ``{out}/branches.ndjson``: each branch's own GeoJSON Feature with a ``mini_app``
  property, for ``nearby import stores --source osm-helsinki`` after the extract.

Why the branches are whole Features: an import upserts whole rows (every field
of a row is the listing's), so a listing of ids and slugs alone would empty
their names and places. Each line is the Feature the extract's import read,
with ``mini_app`` in place of ``brand`` (which :data:`indexer.sources.records.ALIASES`
prefers to ``brand``), and the same source and feature id give the same entity
id (``osm-helsinki:node/…``): the import changes the branches' ``mini_app`` and
nothing else.
"""

from __future__ import annotations

import argparse
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: A name makes an app when at least this many trading POIs bear it.
MIN_BRANCHES = 2
#: Amenities where one orders, books or pays (every ``shop`` trades).
TRADING_AMENITIES = frozenset(
    {"cafe", "restaurant", "fast_food", "bar", "pub", "ice_cream", "bank", "atm",
     "bureau_de_change", "pharmacy", "car_rental", "fuel", "cinema"}
)  # fmt: skip
#: One line about an app, by its category; others get :data:`DEFAULT_DESCRIPTION`.
DESCRIPTIONS: Mapping[str, str] = {
    "cafe": "Order coffee ahead and skip the queue",
    "fast_food": "Order ahead and pick up at the counter",
    "restaurant": "Book a table or order to take away",
    "kiosk": "Snacks, tickets and parcels on the way home",
    "bank": "Banking, appointments and the nearest branch",
    "atm": "Find a cash machine that is open now",
    "bureau_de_change": "Exchange rates and the nearest office",
    "clothes": "Browse the collection and reserve in store",
    "alcohol": "Check stock and opening hours",
    "hotel": "Book a room and check in from your phone",
    "car_rental": "Rent a car and pick it up nearby",
}
DEFAULT_DESCRIPTION = "Browse, order and find the nearest branch"
#: The apps of the demo's generated feeds (``scripts/gen_demo_feeds.py``): its bike
#: system and its charger networks (slug, name, description, category).
FEED_APPS = (
    ("kaupunkipyorat-demo", "City bikes", "Unlock a bike or scooter nearby", "bike_station"),
    ("helen", "Helen", "Charge at a free point and pay in the app", "ev_charger"),
    ("k-lataus", "K-Lataus", "Charge at a free point and pay in the app", "ev_charger"),
    ("plugit", "Plugit", "Charge at a free point and pay in the app", "ev_charger"),
    ("virta", "Virta", "Charge at a free point and pay in the app", "ev_charger"),
)


@dataclass(frozen=True)
class Poi:
    """What the derivation reads of one Feature of the extract."""

    feature_id: str
    name: str
    brand: str
    category_key: str
    category: str


@dataclass(frozen=True)
class CatalogApp:
    """One mini-app of the demo catalog, as ``nearby import mini-apps`` reads it."""

    slug: str
    name: str
    icon_url: str
    description: str
    category: str


def slugify(text: str) -> str:
    """ASCII words of ``text``, lower case, joined by ``-`` (``Fazer Café``: ``fazer-cafe``).

    Apostrophes join (``McDonald's`` → ``mcdonalds``); any other run of
    non-alphanumerics is one ``-``; accents are dropped (``Boknäs`` → ``boknas``).
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return "-".join(re.findall(r"[a-z0-9]+", ascii_text.lower().replace("'", "")))


def feature_to_poi(feature: Mapping[str, Any]) -> Poi:
    """The fields of a Feature of the extract that the derivation uses."""
    props = feature.get("properties") or {}
    tags = props.get("tags") or {}
    return Poi(
        feature_id=str(feature.get("id", "")),
        name=str(props.get("name") or "").strip(),
        brand=str(props.get("brand") or tags.get("brand") or "").strip(),
        category_key=str(props.get("category_key") or ""),
        category=str(props.get("category") or ""),
    )


def accepted(features: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Features the import of the extract takes: those it rejects (unparseable
    opening hours, no usable point) are no entity, so no branch and no brand."""
    from indexer.sources.geojson import feature_to_record
    from indexer.sources.records import record_to_entity
    from indexer.sources.rejects import InvalidEntity

    kept = []
    for position, feature in enumerate(features, start=1):
        try:
            record_to_entity(feature_to_record(feature, position), "osm-helsinki")
        except InvalidEntity:
            continue
        kept.append(feature)
    return kept


def trades(poi: Poi) -> bool:
    """Whether a POI is a place one buys at: a shop, or an amenity of :data:`TRADING_AMENITIES`."""
    return poi.category_key == "shop" or (
        poi.category_key == "amenity" and poi.category in TRADING_AMENITIES
    )


def poi_slugs(pois: Sequence[Poi]) -> dict[str, str]:
    """The slug of every POI that belongs to a mini-app, by feature id (the rules of the module)."""
    named = Counter(p.name.casefold() for p in pois if p.name and trades(p))
    slugs: dict[str, str] = {}
    for poi in pois:
        if poi.brand:
            key = poi.brand
        elif poi.name and trades(poi) and named[poi.name.casefold()] >= MIN_BRANCHES:
            key = poi.name
        else:
            continue
        slug = slugify(key)
        if slug:
            slugs[poi.feature_id] = slug
    return slugs


def most_common(values: Iterable[str]) -> str:
    """The most frequent value; ties go to the smallest (so the result does not depend on order)."""
    counts = Counter(values)
    return min(counts, key=lambda value: (-counts[value], value))


def derive_catalog(pois: Sequence[Poi], icon_base: str) -> list[CatalogApp]:
    """The catalog of the apps :func:`poi_slugs` finds, by slug.

    An app's name is its brands' commonest spelling, else its names'; its
    category is its branches' commonest; its icon is ``{icon_base}{slug}.svg``.
    """
    slugs = poi_slugs(pois)
    branches: dict[str, list[Poi]] = {}
    for poi in pois:
        if poi.feature_id in slugs:
            branches.setdefault(slugs[poi.feature_id], []).append(poi)
    apps = []
    for slug in sorted(branches):
        group = branches[slug]
        brands = [p.brand for p in group if p.brand]
        category = most_common(p.category for p in group)
        apps.append(
            CatalogApp(
                slug=slug,
                name=most_common(brands or [p.name for p in group]),
                icon_url=f"{icon_base}{slug}.svg",
                description=DESCRIPTIONS.get(category, DEFAULT_DESCRIPTION),
                category=category,
            )
        )
    return apps


def feed_apps(icon_base: str) -> list[CatalogApp]:
    """The catalog entries of :data:`FEED_APPS`."""
    return [CatalogApp(slug, name, f"{icon_base}{slug}.svg", description, category)
            for slug, name, description, category in FEED_APPS]  # fmt: skip


def branch_features(features: Iterable[dict[str, Any]], slugs: Mapping[str, str]) -> list[dict]:
    """Each branch's Feature as the extract holds it, with its app's slug as ``mini_app``."""
    branches = []
    for feature in features:
        slug = slugs.get(str(feature.get("id", "")))
        if slug is not None:
            # Without ``brand``: the extract's import took it as the mini_app, so it
            # is in no entity's attrs, and the branch's attrs stay as they were.
            kept = {k: v for k, v in (feature.get("properties") or {}).items() if k != "brand"}
            properties = {**kept, "mini_app": slug}
            branches.append({**feature, "properties": properties})
    return branches


def write_ndjson(path: Path, rows: Iterable[Mapping[str, Any]]) -> int:
    """Write one JSON object a line; return how many."""
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pois", type=Path, default=Path("data/helsinki_center_pois.geojson"))
    parser.add_argument("--out", type=Path, default=Path("."))
    parser.add_argument("--icon-base", default="http://127.0.0.1:8000/demo/icons/")
    args = parser.parse_args(argv)
    features = accepted(json.loads(args.pois.read_text(encoding="utf-8"))["features"])
    pois = [feature_to_poi(feature) for feature in features]
    args.out.mkdir(parents=True, exist_ok=True)
    catalog = derive_catalog(pois, args.icon_base) + feed_apps(args.icon_base)
    apps = write_ndjson(args.out / "mini_apps.ndjson",
                        (asdict(app) for app in catalog))  # fmt: skip
    branches = write_ndjson(
        args.out / "branches.ndjson", branch_features(features, poi_slugs(pois))
    )
    print(f"{apps} mini-apps · {branches} branches")


if __name__ == "__main__":
    main()
