"""The words text search reads, as every write of entities and of the catalog leaves them."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from alembic import command
from alembic.config import Config

from indexer.store import db
from indexer.store.catalog import MiniApp, write_catalog
from indexer.store.writer import write_entities
from indexer.text import entity_words, joined, words
from tests.conftest import Index
from tests.factories import clear_catalog, fresh_fills, text_catalog, text_entities


def stored(index: Index) -> dict[str, tuple[str, str, str]]:
    """(name_words, category_words, search_text) of every entity, by id."""
    with index.conn.cursor() as cur:
        cur.execute("SELECT id, name_words, category_words, search_text FROM entities")
        rows = {row[0]: row[1:] for row in cur.fetchall()}
    index.conn.commit()
    return rows


def assert_words(index: Index, entities, apps: list[MiniApp]) -> None:
    """Every entity's stored words are indexer.text's of its fields and its mini-app's name."""
    names = {app.slug: app.name for app in apps}
    want = {
        e.id: (
            joined(words(e.name)),
            joined(words(e.category)),
            joined(entity_words(e.name, e.category, names.get(e.mini_app, ""))),
        )
        for e in entities
    }
    assert stored(index) == want


@pytest.fixture
def catalog(index: Index):
    clear_catalog(index)
    apps = text_catalog(random.Random(3))
    write_catalog(index.conn, apps, replace=True)
    yield apps
    clear_catalog(index)


def test_merged_writes(index: Index, catalog) -> None:
    rng = random.Random(1)
    entities = text_entities(rng, 300, 60.17, 24.94)
    write_entities(index.conn, index.hot, "t", entities[:10])
    write_entities(index.conn, index.hot, "t", entities)
    assert_words(index, entities, catalog)
    renamed = [replace(e, name="Uusi " + e.name) for e in entities[::3]]
    write_entities(index.conn, index.hot, "t", renamed)
    by_id = {e.id: e for e in entities} | {e.id: e for e in renamed}
    assert_words(index, list(by_id.values()), catalog)


def test_a_fresh_load(index: Index, catalog, monkeypatch) -> None:
    fills = fresh_fills(monkeypatch)
    entities = text_entities(random.Random(2), 400, 60.17, 24.94)
    write_entities(index.conn, index.hot, "t", entities)
    assert fills, "the load filled a fresh generation"
    assert_words(index, entities, catalog)


def test_catalog_writes_refresh_their_entities(index: Index, catalog) -> None:
    entities = text_entities(random.Random(4), 200, 60.17, 24.94)
    write_entities(index.conn, index.hot, "t", entities)
    renamed = [MiniApp(app.slug, app.name + " Plus") for app in catalog[:2]]
    write_catalog(index.conn, renamed, replace=False)
    assert_words(index, entities, renamed + catalog[2:])
    write_catalog(index.conn, catalog[2:], replace=True)
    assert_words(index, entities, catalog[2:])


def alembic_config(url: str) -> Config:
    """The migrations' configuration for ``url``, as indexer.store.db makes it."""
    config = Config()
    config.set_main_option("script_location", str(db.MIGRATIONS))
    config.set_main_option("sqlalchemy.url", db.sqlalchemy_url(url).replace("%", "%%"))
    return config


def test_the_migration_gives_rows_their_words(settings, index: Index) -> None:
    clear_catalog(index)
    index.conn.close()
    config = alembic_config(settings.database_url)
    command.downgrade(config, "0003")
    try:
        with db.connect(settings.database_url) as conn:
            conn.execute("INSERT INTO mini_apps (slug, name) VALUES ('k', 'K-Market')")
            conn.execute(
                "INSERT INTO entities (id, kind, name, category, mini_app, lat, lng, h3, source)"
                " VALUES ('a', 'store', 'Café Regatta', 'cafe', 'k', 60.17, 24.94, 1, 't'),"
                " ('b', 'store', '스타벅스', '', '', 60.17, 24.94, 1, 't')"
            )
            conn.commit()
    finally:
        command.upgrade(config, "head")
    with db.connect(settings.database_url) as conn:
        rows = conn.execute(
            "SELECT id, name_words, category_words, search_text FROM entities ORDER BY id"
        ).fetchall()
        apps = conn.execute("SELECT slug, words FROM mini_apps").fetchall()
        conn.execute("TRUNCATE entities, mini_apps")
        conn.commit()
    assert apps == [("k", "k market kmarket")]
    assert rows == [
        ("a", "cafe regatta", "cafe", "cafe regatta cafe k market kmarket"),
        ("b", "스타벅스", "", "스타벅스"),
    ]
