"""Stores from OpenStreetMap extracts (PBF, or OSM XML), read with pyosmium.

Nodes and ways tagged with one of :data:`STORE_KEYS` become store records.
``category`` is the value of the first such key (``shop=bakery`` gives
``bakery``; a bare ``yes`` gives the key itself), ``mini_app`` is
``brand:wikidata``, else ``brand``; ``opening_hours`` is carried as it is and
every other tag goes to ``attrs``. A way is reduced to its representative point
(a point inside a closed way's polygon, or on an open way's line) from node
locations that osmium caches while it reads. Relations are not read.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import osmium
import osmium.filter
import osmium.io
import shapely

from indexer.sources.records import Record
from indexer.sources.rejects import UnreadableInput

#: The keys that make an OSM object a store, in order of precedence for its category.
STORE_KEYS = ("shop", "amenity", "craft", "tourism", "leisure", "healthcare", "office")
#: Tags that become fields, so they are not repeated in ``attrs``.
FIELD_TAGS = ("name", "opening_hours")


def osm_category(tags: dict[str, str]) -> tuple[str, str]:
    """The ``(key, category)`` of a store's tags; ``yes`` (any kind of shop) gives the key."""
    for key in STORE_KEYS:
        value = tags.get(key, "").strip()
        if value:
            return key, key if value == "yes" else value
    return "", ""


def tags_to_fields(osm_id: str, tags: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split an object's tags into store fields and ``attrs``."""
    key, category = osm_category(tags)
    fields = {
        "id": f"osm:{osm_id}",
        "name": tags.get("name", ""),
        "category": category,
        "mini_app": tags.get("brand:wikidata") or tags.get("brand", ""),
        "opening_hours": tags.get("opening_hours"),
    }
    attrs: dict[str, Any] = {k: v for k, v in tags.items() if k not in FIELD_TAGS}
    attrs["category_key"] = key
    return fields, attrs


def way_point(locations: list[tuple[float, float]]) -> tuple[float, float]:
    """The representative point ``(lat, lng)`` of a way's ``(lng, lat)`` node locations.

    A closed way of four or more nodes is taken as a polygon; otherwise it is a line.
    """
    if len(locations) == 1:
        lng, lat = locations[0]
        return lat, lng
    closed = len(locations) >= 4 and locations[0] == locations[-1]
    shape = shapely.Polygon(locations) if closed else shapely.LineString(locations)
    if closed and not shape.is_valid:
        shape = shapely.make_valid(shape)
    point = shape.representative_point()
    return point.y, point.x


def node_to_record(node: Any, position: int) -> Record:
    """A store record of a tagged node."""
    tags = dict(node.tags)
    fields, attrs = tags_to_fields(f"node/{node.id}", tags)
    location = node.location
    if location.valid():
        fields["lat"], fields["lng"] = location.lat, location.lon
    return Record(position, fields, attrs, raw={"type": "node", "id": node.id, "tags": tags})


def way_to_record(way: Any, position: int) -> Record:
    """A store record of a tagged way, at the representative point of its located nodes."""
    tags = dict(way.tags)
    fields, attrs = tags_to_fields(f"way/{way.id}", tags)
    raw = {"type": "way", "id": way.id, "tags": tags}
    # An extract cuts ways at its border: the nodes outside have no location.
    locations = [(node.lon, node.lat) for node in way.nodes if node.location.valid()]
    if not locations:
        return Record(position, fields, attrs, problem="missing coordinates", raw=raw)
    fields["lat"], fields["lng"] = way_point(locations)
    return Record(position, fields, attrs, reduced=len(locations) > 1, raw=raw)


def read_osm(path: str, file_format: str = "") -> Iterator[Record]:
    """Yield the store records of an OSM file, in file order (nodes, then ways).

    ``file_format`` is osmium's name for it (``pbf``, ``osm``); empty: from the
    file name. ``position`` counts the stores read, from 1.

    Raises
    ------
    UnreadableInput
        The file cannot be read as OSM data.
    """
    processor = (
        osmium.FileProcessor(osmium.io.File(path, file_format), osmium.osm.NODE | osmium.osm.WAY)
        .with_locations()
        .with_filter(osmium.filter.KeyFilter(*STORE_KEYS))
    )
    try:
        for position, obj in enumerate(processor, start=1):
            if isinstance(obj, osmium.osm.Node):
                yield node_to_record(obj, position)
            else:
                yield way_to_record(obj, position)
    except RuntimeError as exc:  # libosmium's io and format errors
        raise UnreadableInput(f"{path}: unreadable OSM data: {exc}") from exc
