"""The hot index's Redis layout: key names and the values stored per entity.

Every key starts with the deployment's prefix and a generation number, so that a
rebuild can fill a fresh generation while queries read the current one, then
switch with one SET.  Keys of one coarse parent cell (resolution ``TAG_RES``)
share a hash tag, so that on Redis Cluster they live on one slot::

    ({prefix} below is the deployment's prefix followed by the layout, e.g. nearby:l2.r5.7.9.11)
    {prefix}:gen                     current generation (absent: no hot index)
    {prefix}:building                generation being rebuilt, if any
    {prefix}:gens                    the counter that numbers generations
    {prefix}:heal                    lease of the API process that started a healing
                                     rebuild (discovery/search/healing.py)
    {prefix}:{gen}:loc               HASH id -> "rev tag5 c5 .. tag11 c11" ("rev": deleted)
    {prefix}:{gen}:{{tag}}:z:{cell}  ZSET of members by popularity, one per cell of
                                     INDEX_RESOLUTIONS
    {prefix}:{gen}:{{tag}}:t{r}      HASH cell -> the top popularity of its set, for
                                     the group's cells of resolution r (hex digit:
                                     t5, t7, t9, tb); field "*": at least every top
    {prefix}:{gen}:{{tag}}:m         HASH id -> the entity's member (what writers remove)
    {prefix}:{gen}:{{tag}}:d         HASH id -> display JSON (what a result shows)

A set's member is the entity itself, as the search reads it (:func:`member_of`):
a packed head (lat, lng, popularity, ln(1 + popularity), cos(lat), the
revision, the kind's code and the id's length), the id, then the fields that
filters read.  A search ranks a cell's members from the set alone, in
popularity order, and bounds a cell it has not read by its top.

An entity belongs to the cell that contains it at each indexed resolution
(``latlng_to_cell``, not the parent of its base cell: H3 children overhang
their parent, and a search bounds distances by each cell's own outline).  Its
cells usually share one group; when they do not, its member and document are
kept in each group its cells belong to, so that a cell's members are read from
its own group.

The Lua scripts build the same names; tests/indexer/test_writer.py pins both.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import h3

from indexer.model import INDEX_RESOLUTIONS, KINDS, TAG_RES

#: Separates the text fields of a member (never present in slugs or ids we keep).
SEP = "\x1f"
#: The member's head, as the scripts read it with one struct.unpack: lat, lng,
#: popularity, ln(1 + popularity) and cos(lat) (so that a search computes
#: neither per member: each C call costs a Lua script dearly), the entity's
#: revision (what tells a search whether a display document it keeps is the
#: current one), the kind's code and the id's length in bytes.
MEMBER_HEAD = struct.Struct("<ddddddBH")
#: The text fields after the id, in order, each after a separator.
MEMBER_FIELDS = ("available", "seen_at", "source", "mini_app", "category")
#: A kind's code in a member's head: its first letter.
KIND_CODES = {kind: ord(kind[0]) for kind in KINDS}
assert len(set(KIND_CODES.values())) == len(KINDS)
KIND_OF_CODE = {code: kind for kind, code in KIND_CODES.items()}

#: The layout's version and indexed resolutions, named inside every key: an index
#: in another layout is invisible to this code, which then answers from PostGIS
#: until ``nearby cache rebuild`` builds one in this layout.
LAYOUT_VERSION = 2
LAYOUT = f"l{LAYOUT_VERSION}.r" + ".".join(str(res) for res in INDEX_RESOLUTIONS)


def layout_prefix(prefix: str) -> str:
    """The deployment's prefix with the layout named: ``nearby`` -> ``nearby:r5.7.9.11``."""
    return f"{prefix}:{LAYOUT}"


def gen_key(prefix: str) -> str:
    """The key that holds the current generation number."""
    return f"{prefix}:gen"


def building_key(prefix: str) -> str:
    """The key that holds the generation a rebuild is filling."""
    return f"{prefix}:building"


def counter_key(prefix: str) -> str:
    """The key that hands out generation numbers."""
    return f"{prefix}:gens"


def loc_key(prefix: str, gen: str) -> str:
    """Where each id of a generation sits, with its revision."""
    return f"{prefix}:{gen}:loc"


def group_base(prefix: str, gen: str, tag: str) -> str:
    """The common start of every key of one hash-tag group."""
    return f"{prefix}:{gen}:{{{tag}}}:"


def cell_key(prefix: str, gen: str, cell: str) -> str:
    """The popularity-ordered set of one cell (hex id) at any indexed resolution."""
    return group_base(prefix, gen, tag_of(cell)) + "z:" + cell


def member_key(prefix: str, gen: str, tag: str) -> str:
    """The hash of members (id -> member) of one group."""
    return group_base(prefix, gen, tag) + "m"


def tops_key(prefix: str, gen: str, tag: str, res: int) -> str:
    """The hash of top popularities of one group's cells at resolution ``res``."""
    return group_base(prefix, gen, tag) + f"t{res:x}"


def display_key(prefix: str, gen: str, tag: str) -> str:
    """The hash of display documents of one group."""
    return group_base(prefix, gen, tag) + "d"


def tag_of(cell: str) -> str:
    """The hash tag (hex id of the ``TAG_RES`` parent) of a cell given as hex."""
    return h3.cell_to_parent(cell, TAG_RES)


@dataclass(frozen=True, slots=True)
class Placement:
    """Where an entity goes in the hot index: its cells (coarse to fine) and their tags."""

    cells: tuple[str, ...]
    tags: tuple[str, ...]

    def pairs(self) -> list[str]:
        """tag, cell, tag, cell, … as apply.lua and loc read them."""
        return [item for pair in zip(self.tags, self.cells, strict=True) for item in pair]


def placement_of(lat: float, lng: float) -> Placement:
    """Place an entity at (lat, lng): the cell containing it at each indexed resolution."""
    cells = tuple(h3.latlng_to_cell(lat, lng, res) for res in INDEX_RESOLUTIONS)
    return Placement(cells=cells, tags=tuple(tag_of(cell) for cell in cells))


@dataclass(frozen=True, slots=True)
class LocEntry:
    """An id's entry in loc: its revision and the tag, cell pairs it is placed at."""

    rev: int
    pairs: tuple[str, ...]


def parse_loc(value: str | bytes | None) -> LocEntry | None:
    """An id's loc value ("rev tag5 c5 .. tag11 c11") read; None when absent or deleted.

    A deleted id keeps its revision alone in loc (a tombstone), which places it
    nowhere: for a reader it is not in the index.
    """
    if value is None:
        return None
    parts = (value.decode() if isinstance(value, bytes) else value).split()
    if len(parts) < 2:
        return None
    return LocEntry(rev=int(parts[0]), pairs=tuple(parts[1:]))


def epoch_s(moment: datetime | None) -> str:
    """Seconds since the epoch as text, or '' when unknown."""
    return "" if moment is None else repr(moment.timestamp())


def clean(text: str | None) -> str:
    """Text safe inside a member (no separator)."""
    return "" if text is None else text.replace(SEP, " ")


def member_head(
    lat: float, lng: float, popularity: float, rev: int, kind: str, entity_id: bytes
) -> bytes:
    """A member's head and id: what the search reads of every member it scores.

    ``ln(1 + popularity)`` and ``cos(lat)`` are computed as the search and the
    reference ranking would (the C library's log and cos, of the same doubles),
    so the distances and boosts they give are bit for bit the same.
    """
    log_boost = math.log(1.0 + popularity)
    cos_lat = math.cos(math.radians(lat))
    code = KIND_CODES[kind]
    head = MEMBER_HEAD.pack(lat, lng, popularity, log_boost, cos_lat, rev, code, len(entity_id))
    return head + entity_id


def member_of(row: Mapping[str, Any]) -> bytes:
    """The set member of an entity row: what ranking and filters read.

    The head's doubles are the row's own (bit for bit); ``available`` and
    ``seen_at`` are '' when unknown.
    """
    available = row.get("available")
    head = member_head(
        float(row["lat"]), float(row["lng"]), float(row["popularity"]), int(row["rev"]),
        row["kind"], row["id"].encode(),
    )  # fmt: skip
    tail = "".join(
        SEP + field
        for field in (
            "" if available is None else str(int(available)),
            epoch_s(row.get("seen_at")),
            clean(row["source"]),
            clean(row.get("mini_app")),
            clean(row.get("category")),
        )
    )
    return head + tail.encode()


def parse_member(member: bytes) -> dict[str, Any]:
    """The inverse of :func:`member_of` (for tools and tests)."""
    lat, lng, popularity, _, _, rev, code, length = MEMBER_HEAD.unpack_from(member)
    start = MEMBER_HEAD.size
    entity_id = member[start : start + length].decode()
    tail = member[start + length + 1 :].decode().split(SEP)
    fields = dict(zip(MEMBER_FIELDS, tail, strict=True))
    return {
        **fields,
        "id": entity_id,
        "kind": KIND_OF_CODE[code],
        "lat": lat,
        "lng": lng,
        "popularity": popularity,
        "rev": int(rev),
        "available": int(fields["available"]) if fields["available"] else None,
        "seen_at": float(fields["seen_at"]) if fields["seen_at"] else None,
    }


def member_id(member: bytes) -> str:
    """The id a member carries."""
    length = MEMBER_HEAD.unpack_from(member)[7]
    return member[MEMBER_HEAD.size : MEMBER_HEAD.size + length].decode()


DISPLAY_FIELDS = (
    "id",
    "kind",
    "name",
    "mini_app",
    "category",
    "lat",
    "lng",
    "popularity",
    "available",
    "capacity",
    "opening_hours",
    "tz",
    "source",
    "attrs",
)


def display_document(row: Mapping[str, Any]) -> str:
    """The JSON an entity shows in results and at /v1/entities/<id>."""
    doc = {name: row.get(name) for name in DISPLAY_FIELDS}
    doc["lat"] = float(row["lat"])
    doc["lng"] = float(row["lng"])
    doc["popularity"] = float(row["popularity"])
    doc["updated_at"] = _iso(row.get("updated_at"))
    doc["seen_at"] = _iso(row.get("seen_at"))
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
