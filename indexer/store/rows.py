"""The rows a write stages: its columns, an entity's row, and the COPY that sends them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache

import h3.api.basic_int as h3i
import psycopg
import tzfpy

from indexer.model import BASE_RES, Entity
from indexer.text import joined, stored_text_sql, words

STAGE_COLUMNS = (
    "id",
    "kind",
    "name",
    "category",
    "name_words",
    "category_words",
    "mini_app",
    "lat",
    "lng",
    "h3",
    "popularity",
    "available",
    "capacity",
    "opening_hours",
    "tz",
    "attrs",
    "seen_at",
)
#: The stage's columns, as a SQL column list.
COLUMNS = ", ".join(STAGE_COLUMNS)
#: The stage's columns but ``id``, with their SQL types.
STAGE_TYPES = """
    kind text, name text, category text, name_words text, category_words text,
    mini_app text,
    lat double precision, lng double precision, h3 bigint, popularity double precision,
    available integer, capacity integer, opening_hours text, tz text, attrs jsonb,
    seen_at timestamptz
"""
#: An entity's ``search_text`` from a staged row ``s``: its words, then its mini-app's.
STORED_TEXT = stored_text_sql("s")
#: Taken by every write of entities before it reads the catalog's words: a
#: catalog write (SHARE ROW EXCLUSIVE) then waits for it to commit before it
#: refreshes the entities of the mini-apps it changed, or it waits for that
#: catalog write, and so reads the words the catalog holds once it committed.
CATALOG_WORDS_LOCK = "LOCK TABLE mini_apps IN SHARE MODE"
#: Rows between two progress updates of a COPY.
PROGRESS_STEP = 5000


@lru_cache(maxsize=65536)
def _tz_of_cell(cell: int) -> str:
    lat, lng = h3i.cell_to_latlng(cell)
    return tzfpy.get_tz(lng, lat)


def timezone_of(lat: float, lng: float) -> str:
    """The IANA time zone at a point (looked up once per res-7 cell, ~5 km²)."""
    return _tz_of_cell(h3i.latlng_to_cell(lat, lng, 7)) or tzfpy.get_tz(lng, lat)


def stage_row(entity: Entity) -> tuple[object, ...]:
    """The staging-table row of an entity: its base cell and time zone computed."""
    return (
        entity.id,
        entity.kind,
        entity.name,
        entity.category,
        joined(words(entity.name)),
        joined(words(entity.category)),
        entity.mini_app,
        entity.lat,
        entity.lng,
        h3i.latlng_to_cell(entity.lat, entity.lng, BASE_RES),
        entity.popularity,
        entity.available,
        entity.capacity,
        entity.opening_hours,
        timezone_of(entity.lat, entity.lng) if entity.opening_hours else None,
        # Most listings carry no extra columns: skip the encoder for them.
        json.dumps(entity.attrs, ensure_ascii=False, default=str) if entity.attrs else "{}",
        entity.seen_at,
    )


def copy_rows(
    cur: psycopg.Cursor,
    table: str,
    columns: str,
    rows: Iterable[Sequence[object]],
    progress: Callable[[int], None] | None,
) -> int:
    """COPY rows into ``table``; return how many."""
    count = 0
    with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
            if progress and count % PROGRESS_STEP == 0:
                progress(PROGRESS_STEP)
    if progress and count % PROGRESS_STEP:
        progress(count % PROGRESS_STEP)
    return count
