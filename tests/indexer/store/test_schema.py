"""The migrated schema: table, columns, indexes, constraints."""

from __future__ import annotations

import psycopg
import pytest
from alembic.script import ScriptDirectory

from indexer.store import db
from tests.conftest import Index


def columns(conn: psycopg.Connection) -> dict[str, str]:
    rows = conn.execute(
        "SELECT column_name, udt_name FROM information_schema.columns WHERE table_name = 'entities'"
    ).fetchall()
    return dict(rows)


def test_entity_table_has_every_field(index: Index) -> None:
    found = columns(index.conn)
    expected = {
        "id": "text",
        "kind": "text",
        "mini_app": "text",
        "name": "text",
        "category": "text",
        "name_words": "text",
        "category_words": "text",
        "search_text": "text",
        "lat": "float8",
        "lng": "float8",
        "geog": "geography",
        "h3": "int8",
        "popularity": "float8",
        "available": "int4",
        "capacity": "int4",
        "opening_hours": "text",
        "tz": "text",
        "attrs": "jsonb",
        "source": "text",
        "rev": "int8",
        "updated_at": "timestamptz",
        "seen_at": "timestamptz",
        "usage_mass": "float8",
    }
    assert found == expected


def test_geography_is_a_wgs84_point(index: Index) -> None:
    row = index.conn.execute(
        "SELECT type, srid FROM geography_columns WHERE f_table_name = 'entities'"
    ).fetchone()
    assert row == ("Point", 4326)


def test_indexes_gist_on_geography_and_btree_on_cell(index: Index) -> None:
    rows = index.conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'entities'"
    ).fetchall()
    definitions = dict(rows)
    assert "USING gist (geog)" in definitions["entities_geog_gist"]
    assert "USING btree (h3)" in definitions["entities_h3"]
    assert "USING btree (id)" in definitions["entities_pkey"]


INSERT = (
    "INSERT INTO entities (id, kind, lat, lng, h3, popularity, source)"
    " VALUES (%s, %s, %s, %s, 617700169958293503, %s, 'test')"
)


@pytest.mark.parametrize(
    ("row", "constraint"),
    [
        (("a", "store", 91.0, 0.0, 0.0), "entities_lat_range"),
        (("a", "store", -90.5, 0.0, 0.0), "entities_lat_range"),
        (("a", "store", 0.0, 180.0, 0.0), "entities_lng_range"),
        (("a", "spaceship", 0.0, 0.0, 0.0), "entities_kind_known"),
        (("a", "store", 0.0, 0.0, -1.0), "entities_popularity_range"),
        (("a", "store", 0.0, 0.0, float("nan")), "entities_popularity_range"),
        (("", "store", 0.0, 0.0, 0.0), "entities_id_not_empty"),
        (("a", "store", float("nan"), 0.0, 0.0), "entities_lat_range"),
    ],
)
def test_constraints_reject_impossible_rows(index: Index, row: tuple, constraint: str) -> None:
    with pytest.raises(psycopg.errors.CheckViolation) as caught, index.conn.transaction():
        index.conn.execute(INSERT, row)
    assert caught.value.diag.constraint_name == constraint


def test_store_has_no_counts(index: Index) -> None:
    with pytest.raises(psycopg.errors.CheckViolation) as caught, index.conn.transaction():
        index.conn.execute(
            "INSERT INTO entities (id, kind, lat, lng, h3, source, available)"
            " VALUES ('s', 'store', 1, 1, 617700169958293503, 't', 3)"
        )
    assert caught.value.diag.constraint_name == "entities_store_counts"


def test_geography_follows_lat_lng(index: Index) -> None:
    with index.conn.transaction():
        index.conn.execute(INSERT, ("p", "store", 60.17, 24.94, 1.0))
    row = index.conn.execute(
        "SELECT ST_Y(geog::geometry), ST_X(geog::geometry) FROM entities WHERE id = 'p'"
    ).fetchone()
    assert row == (60.17, 24.94)


def newest_migration() -> str | None:
    """The head revision of the migrations directory."""
    return ScriptDirectory(str(db.MIGRATIONS)).get_current_head()


def test_upgrade_twice_is_harmless(settings, index: Index) -> None:
    db.upgrade(settings.database_url)
    db.upgrade(settings.database_url)
    version = index.conn.execute("SELECT version_num FROM alembic_version").fetchall()
    assert version == [(newest_migration(),)]


def test_the_marks_of_writes_waiting_for_redis(index: Index) -> None:
    rows = index.conn.execute(
        "SELECT column_name, udt_name, is_nullable FROM information_schema.columns"
        " WHERE table_name = 'hot_pending' ORDER BY ordinal_position"
    ).fetchall()
    assert rows == [
        ("id", "int8", "NO"),
        ("lock_key", "int4", "NO"),
        ("source", "text", "NO"),
        ("committed_at", "timestamptz", "NO"),
    ]


def test_db_upgrade_command(nearby) -> None:
    first = nearby("db", "upgrade")
    second = nearby("db", "upgrade")
    assert first.exit_code == 0 and second.exit_code == 0
    assert "latest schema" in second.output
