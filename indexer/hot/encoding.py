"""What the hot index stores per entity, written and read: members, display
documents, placements and apply.lua's records.

Every writer (apply.lua's records, a rebuild's bulk fill) and every checker
(``cache verify``, the debug map) encodes through these functions, so that a
member or a document is the same bytes whoever wrote it.  The names and
constants they use are :mod:`indexer.hot.layout`'s.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import h3.api.basic_int as h3i

from indexer.hot import layout
from indexer.hot.layout import KIND_CODES, KIND_OF_CODE, MEMBER_FIELDS, MEMBER_HEAD, SEP
from indexer.model import INDEX_RESOLUTIONS
from indexer.text import index_terms, joined, words

# What json.dumps(..., ensure_ascii=False) writes a string with.
_json_string = json.encoder.encode_basestring
_pack_head = MEMBER_HEAD.pack
_log, _cos, _radians = math.log, math.cos, math.radians


# -- members ---------------------------------------------------------------


def epoch_s(moment: datetime | None) -> str:
    """Seconds since the epoch as text, or '' when unknown."""
    return "" if moment is None else repr(moment.timestamp())


def clean(text: str | None) -> str:
    """Text safe inside a member (no separator)."""
    return "" if text is None else text.replace(SEP, " ")


def member(
    entity_id: str,
    kind: str,
    lat: float,
    lng: float,
    popularity: float,
    rev: int,
    fields: tuple[Any, Any, str | None, str | None, str | None],
    mass: float = 0.0,
) -> bytes:
    """The set member of an entity: what ranking and filters read.

    ``fields`` are available, seen_at, source, mini_app and category
    (:data:`indexer.hot.layout.MEMBER_FIELDS`); available and seen_at are ''
    when unknown; ``mass`` is the entity's usage mass.  ``popularity`` is the
    listed one.  ``ln(1 + popularity)`` and ``cos(lat)`` are computed as the
    search and the reference ranking would (the C library's log and cos, of
    the same doubles), so the distances and boosts they give are bit for bit
    the same.
    """
    available, seen_at, source, mini_app, category = fields
    id_bytes = entity_id.encode()
    head = _pack_head(
        lat, lng, popularity, _log(1.0 + popularity), _cos(_radians(lat)), rev, mass,
        KIND_CODES[kind], len(id_bytes),
    )  # fmt: skip
    tail = (
        f"{SEP}{'' if available is None else int(available)}{SEP}{epoch_s(seen_at)}"
        f"{SEP}{clean(source)}{SEP}{clean(mini_app)}{SEP}{clean(category)}"
    )
    return head + id_bytes + tail.encode()


def member_of(row: Mapping[str, Any]) -> bytes:
    """The set member of an entity row (its doubles the row's own, bit for bit)."""
    return member(
        row["id"], row["kind"], float(row["lat"]), float(row["lng"]), float(row["popularity"]),
        int(row["rev"]),
        (row.get("available"), row.get("seen_at"), row["source"], row.get("mini_app"),
         row.get("category")),
        float(row.get("usage_mass") or 0.0),
    )  # fmt: skip


def parse_member(packed: bytes) -> dict[str, Any]:
    """The inverse of :func:`member_of` (for tools and checks)."""
    lat, lng, popularity, _, _, rev, mass, code, length = MEMBER_HEAD.unpack_from(packed)
    start = MEMBER_HEAD.size
    entity_id = packed[start : start + length].decode()
    tail = packed[start + length + 1 :].decode().split(SEP)
    fields = dict(zip(MEMBER_FIELDS, tail, strict=True))
    return {
        **fields,
        "id": entity_id,
        "kind": KIND_OF_CODE[code],
        "lat": lat,
        "lng": lng,
        "popularity": popularity,
        "usage_mass": mass,
        "rev": int(rev),
        "available": int(fields["available"]) if fields["available"] else None,
        "seen_at": float(fields["seen_at"]) if fields["seen_at"] else None,
    }


def member_id(packed: bytes) -> str:
    """The id a member carries."""
    length = MEMBER_HEAD.unpack_from(packed)[8]
    return packed[MEMBER_HEAD.size : MEMBER_HEAD.size + length].decode()


# -- display documents -------------------------------------------------------


def json_scalar(value: Any) -> str:
    """``value`` as json.dumps writes it (compact, non-ASCII kept)."""
    if value is None:
        return "null"
    kind = type(value)
    if kind is str:
        return _json_string(value)
    if kind is float:
        return float.__repr__(value)
    if kind is int:
        return int.__repr__(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@lru_cache(maxsize=65536)
def compact_json(text: str) -> str:
    """JSON text (as PostgreSQL prints jsonb) rewritten the way json.dumps writes it."""
    return json.dumps(json.loads(text), ensure_ascii=False, separators=(",", ":"))


def attrs_json(row: Mapping[str, Any]) -> str:
    """The row's attrs as compact JSON: from ``attrs_json`` (jsonb as text) or ``attrs``."""
    text = row.get("attrs_json")
    if text is not None:
        return compact_json(text)
    return json_scalar(row.get("attrs"))


@lru_cache(maxsize=4096)
def iso_time(moment: datetime) -> str:
    """``moment.isoformat()`` as a JSON string; a batch's rows share a few times."""
    return _json_string(moment.isoformat())


def json_time(moment: datetime | None) -> str:
    """A time as a display document writes it (ISO 8601, or null)."""
    return "null" if moment is None else iso_time(moment)


def document(values: tuple[Any, ...], attrs: str) -> str:
    """The display JSON of an entity, as json.dumps would write it compactly.

    ``values``: the entity's :data:`indexer.hot.layout.DISPLAY_FIELDS` but
    attrs (given as compact JSON text), then updated_at and seen_at.  Written
    in one format string (attrs rewritten once per distinct text, times once
    per distinct time): a move re-sends each entity's whole document.
    """
    (eid, kind, name, mini_app, category, lat, lng, popularity, available, capacity,
     hours, tz, source, updated_at, seen_at) = values  # fmt: skip
    return (
        f'{{"id":{_json_string(eid)},"kind":{_json_string(kind)},'
        f'"name":{json_scalar(name)},"mini_app":{json_scalar(mini_app)},'
        f'"category":{json_scalar(category)},'
        f'"lat":{float.__repr__(lat)},"lng":{float.__repr__(lng)},'
        f'"popularity":{float.__repr__(popularity)},'
        f'"available":{json_scalar(available)},"capacity":{json_scalar(capacity)},'
        f'"opening_hours":{json_scalar(hours)},"tz":{json_scalar(tz)},'
        f'"source":{json_scalar(source)},"attrs":{attrs},'
        f'"updated_at":{json_time(updated_at)},"seen_at":{json_time(seen_at)}}}'
    )


def display_document(row: Mapping[str, Any]) -> str:
    """The JSON an entity shows in results and at /v1/entities/<id>."""
    get = row.get
    values = (
        row["id"], row["kind"], get("name"), get("mini_app"), get("category"),
        float(row["lat"]), float(row["lng"]), float(row["popularity"]), get("available"),
        get("capacity"), get("opening_hours"), get("tz"), get("source"),
        get("updated_at"), get("seen_at"),
    )  # fmt: skip
    return document(values, attrs_json(row))


# -- placement -------------------------------------------------------------


def cells_of(lat: float, lng: float) -> list[int]:
    """The cells (integers, coarse to fine) that hold (lat, lng) at each indexed resolution."""
    return [h3i.latlng_to_cell(lat, lng, res) for res in INDEX_RESOLUTIONS]


@dataclass(frozen=True, slots=True)
class Placement:
    """Where an entity goes in the hot index: its cells (hex, coarse to fine) and their tags."""

    cells: tuple[str, ...]
    tags: tuple[str, ...]

    def pairs(self) -> list[str]:
        """tag, cell, tag, cell, … as apply.lua and loc read them."""
        return [item for pair in zip(self.tags, self.cells, strict=True) for item in pair]


def placement_of(lat: float, lng: float) -> Placement:
    """Place an entity at (lat, lng): the cell containing it at each indexed resolution."""
    cells = cells_of(lat, lng)
    return Placement(
        cells=tuple(format(cell, "x") for cell in cells),
        tags=tuple(layout.tag_of_cell(cell) for cell in cells),
    )


def place_of(lat: float, lng: float) -> str:
    """Where (lat, lng) goes, as loc holds it: "tag cell" per indexed resolution."""
    return " ".join(placement_of(lat, lng).pairs())


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


# -- apply.lua's records -----------------------------------------------------


@lru_cache(maxsize=65536)
def text_entry(
    name: str | None,
    category: str | None,
    search_text: str | None,
    mini_app: str | None,
    own_words: tuple[str | None, str | None] | None = None,
) -> str:
    """What the hot index keeps of an entity's text (its ``search_text``, the words of
    indexer/text.py): its words, each after a space (so that a space and a term find a
    word that starts with it), in three parts, those of its name, its category and its
    mini-app's name, each part ending in a space and :data:`indexer.hot.layout.TEXT_PART`
    (so that a part's own words can be matched, for completions); then
    :data:`indexer.hot.layout.TEXT_END`, its name as it is (a completion's text),
    :data:`indexer.hot.layout.TEXT_END` again and its terms, sorted, joined by
    :data:`indexer.hot.layout.SEP` (what apply.lua takes out of the posting sets when
    the text changes): the index terms of its name's words, and a carrier term
    (:data:`indexer.hot.layout.CARRIER`) for its category and for its mini-app when
    the catalog names it.  ``own_words``: the words of the name and of the category,
    joined, when the caller has them (the PostGIS columns), else they are made here."""
    stored = search_text or ""
    name_words, category_words = own_words or own_words_of(name, category)
    parts = text_parts(name_words, category_words, stored)
    app = mini_app if made_here(name_words, category_words, stored) else None
    terms = entry_terms(parts, category, app)
    spaced = "".join(
        f" {part} {layout.TEXT_PART}" if part else f" {layout.TEXT_PART}" for part in parts
    )
    return spaced + layout.TEXT_END + (name or "") + layout.TEXT_END + SEP.join(sorted(terms))


def entry_terms(parts: tuple[str, str, str], category: str | None, app: str | None) -> list[str]:
    """The terms of a text entry's parts: a carrier term for the category and for the
    mini-app ``app`` (when its part has words), the index terms of the name's words
    (and of the mini-app part's, when no app accounts for them)."""
    indexed = parts[0]
    terms = []
    if category and parts[1]:
        terms.append(layout.CARRIER + "c" + category)
    if parts[2] and app:
        terms.append(layout.CARRIER + "a" + app)
    elif parts[2]:
        indexed = f"{indexed} {parts[2]}"
    return terms + sorted(index_terms(indexed.split(" "))) if indexed else terms


def own_words_of(name: str | None, category: str | None) -> tuple[str, str]:
    """The words of a name and of a category, each joined (as PostGIS keeps them)."""
    return joined(words(name or "")), joined(words(category or ""))


def own_start(name_words: str | None, category_words: str | None) -> str:
    """How stored words start when indexer/text.py made them: the name's, the category's."""
    return joined([part for part in (name_words or "", category_words or "") if part])


def made_here(name_words: str | None, category_words: str | None, stored: str) -> bool:
    """Whether the stored words are the name's, then the category's, then the rest
    (those of the mini-app's catalog name), as indexer/text.py makes them."""
    return stored.startswith(own_start(name_words, category_words))


def text_parts(
    name_words: str | None, category_words: str | None, stored: str
) -> tuple[str, str, str]:
    """The words of an entity's name, of its category (each joined) and of its
    mini-app's name (the rest of its search text ``stored``), each joined as stored."""
    name_words, category_words = name_words or "", category_words or ""
    own = own_start(name_words, category_words)
    if stored.startswith(own):
        return name_words, category_words, stored[len(own) :].strip(" ")
    # Words made by another rule: every one is kept, in the mini-app's part.
    return name_words, category_words, stored


def text_terms(entry: str) -> tuple[str, ...]:
    """The terms of a text entry (:func:`text_entry`)."""
    terms = entry.split(layout.TEXT_END, 2)[2]
    return tuple(terms.split(SEP)) if terms else ()


def text_carriers(entry: str) -> dict[str, str]:
    """The categories and mini-apps a text entry carries: each carrier term's key (the
    term without :data:`indexer.hot.layout.CARRIER`) and its part of the entry's words
    as the entry holds it (a space, the words, a space), as a group's carriers hash
    keeps them."""
    found = {}
    parts = entry.split(layout.TEXT_END, 1)[0].split(layout.TEXT_PART)
    for term in text_terms(entry):
        if term.startswith(layout.CARRIER):
            found[term[1:]] = parts[1 if term[1] == "c" else 2]
    return found


def upsert_record(row: Mapping[str, Any]) -> list[Any]:
    """The apply.lua record for an entity row that is new or changed."""
    return [
        "u",
        row["id"],
        row["rev"],
        place_of(row["lat"], row["lng"]),
        text_entry(row["name"], row["category"], row.get("search_text"), row["mini_app"]),
        member_of(row),
        display_document(row),
    ]


def delete_record(entity_id: str, rev: int) -> list[Any]:
    """The apply.lua record for an entity deleted at revision ``rev``."""
    return ["d", entity_id, rev, "", "", "", ""]
