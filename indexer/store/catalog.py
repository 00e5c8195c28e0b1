"""The mini-app catalog: PostGIS holds it, a small Redis key carries it to the API processes.

A mini-app is what entities' ``mini_app`` names: its slug, a name, an icon, a
description and a category. An import writes the catalog in one transaction
(COPY into a staging table, then one upsert of what changed and, with
``replace``, one delete of what the input left out); every row it changes takes
a revision from ``mini_app_rev``, and the last one it took is the catalog's
revision (``mini_app_revision``, written in the same transaction).

Once committed, the whole catalog goes to ``{prefix}:apps`` (``prefix`` is the
deployment's, outside the hot index's generations): a hash of ``rev`` and
``apps`` (the entries as one JSON object, by slug). An API process reads
``rev`` to tell whether its copy is current, and ``apps`` when it is not; when
the key is missing it reads PostGIS and puts the key back
(:func:`restore_catalog`), unless an import put it there meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import psycopg
import redis

from indexer.hot.layout import catalog_key
from indexer.hot.pending import Mark
from indexer.text import joined, stored_text_sql, words

#: The fields of a catalog entry, in the order the table and the answers hold them.
FIELDS = ("slug", "name", "icon_url", "description", "category")
#: What the stage holds: the fields, and the words of the name (indexer/text.py's).
STAGED = (*FIELDS, "words")
STAGE = """
CREATE TEMP TABLE mini_app_stage (
    slug text PRIMARY KEY, name text, icon_url text, description text, category text,
    words text
) ON COMMIT DROP
"""
UPSERT = """
INSERT INTO mini_apps (slug, name, icon_url, description, category, words, rev, updated_at)
SELECT s.slug, s.name, s.icon_url, s.description, s.category, s.words,
       nextval('mini_app_rev'), now()
FROM mini_app_stage s LEFT JOIN mini_apps m USING (slug)
WHERE m.slug IS NULL
   OR (m.name, m.icon_url, m.description, m.category, m.words)
      IS DISTINCT FROM (s.name, s.icon_url, s.description, s.category, s.words)
ORDER BY s.slug
ON CONFLICT (slug) DO UPDATE SET
    name = excluded.name, icon_url = excluded.icon_url, description = excluded.description,
    category = excluded.category, words = excluded.words, rev = excluded.rev,
    updated_at = excluded.updated_at
RETURNING slug, xmax = 0
"""
DELETE_OTHERS = """
DELETE FROM mini_apps m WHERE NOT EXISTS (SELECT 1 FROM mini_app_stage s WHERE s.slug = m.slug)
RETURNING slug
"""
#: The search text of the entities of mini-apps a write changed (a name's words
#: may have changed, or the mini-app gone): their words, then the catalog's.
_TEXT = stored_text_sql("e")
REFRESH_TEXT = f"""
UPDATE entities e SET search_text = {_TEXT}, rev = nextval('entity_rev'), updated_at = now()
WHERE e.mini_app = ANY(%(slugs)s) AND e.search_text IS DISTINCT FROM {_TEXT}
RETURNING e.id
"""
REVISION = "SELECT rev FROM mini_app_revision"
#: A write that changed something: its revision, newer than every row's.
NEW_REVISION = "UPDATE mini_app_revision SET rev = nextval('mini_app_rev')"
ENTRIES = f"SELECT {', '.join(FIELDS)}, rev, updated_at FROM mini_apps ORDER BY slug"


@dataclass(frozen=True, slots=True)
class MiniApp:
    """One catalog entry as an import gives it."""

    slug: str
    name: str
    icon_url: str = ""
    description: str = ""
    category: str = ""


@dataclass(frozen=True, slots=True)
class CatalogWrite:
    """What writing the catalog did."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    #: The entities whose search text changed (a new revision each): the hot index's to take.
    retexted: tuple[str, ...] = ()


@dataclass(frozen=True)
class Catalog:
    """The catalog at one revision: each entry as the API shows it, by slug."""

    rev: int
    apps: Mapping[str, Mapping[str, Any]]


def write_catalog(
    conn: psycopg.Connection, apps: Iterable[MiniApp], *, replace: bool, mark: Mark | None = None
) -> CatalogWrite:
    """Upsert ``apps`` (slugs unique); with ``replace``, delete the entries they leave out.

    One transaction: on any error nothing is written. Imports are serialised by
    a lock on the table, so that their revisions follow their commits; writes of
    entities wait for it too, so the entities' search text follows the catalog.
    Entities whose search text changes get a new revision, and ``mark`` is taken
    in the same transaction (the hot index must take them: see indexer/hot/pending.py).
    """
    retexted: list[str] = []
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("LOCK TABLE mini_apps IN SHARE ROW EXCLUSIVE MODE")
        cur.execute(STAGE)
        staged = 0
        with cur.copy(f"COPY mini_app_stage ({', '.join(STAGED)}) FROM STDIN") as copy:
            for app in apps:
                name_words = joined(words(app.name))
                copy.write_row(
                    (app.slug, app.name, app.icon_url, app.description, app.category, name_words)
                )
                staged += 1
        cur.execute(UPSERT)
        changed = cur.fetchall()
        fresh = [bool(inserted) for _, inserted in changed]
        slugs = [slug for slug, _ in changed]
        deleted = 0
        if replace:
            cur.execute(DELETE_OTHERS)
            deleted = cur.rowcount
            slugs += (slug for (slug,) in cur.fetchall())
        if slugs:
            cur.execute(NEW_REVISION)
            cur.execute(REFRESH_TEXT, {"slugs": slugs})
            retexted = [entity_id for (entity_id,) in cur.fetchall()]
            if retexted and mark is not None:
                mark.take(cur)
    inserted = sum(fresh)
    updated = len(fresh) - inserted
    return CatalogWrite(inserted, updated, staged - len(fresh), deleted, tuple(retexted))


def entry_of(row: tuple[Any, ...]) -> dict[str, Any]:
    """A catalog row as the API shows it (``updated_at`` in ISO 8601)."""
    entry = dict(zip((*FIELDS, "rev", "updated_at"), row, strict=True))
    updated_at = entry["updated_at"]
    entry["updated_at"] = updated_at.isoformat() if isinstance(updated_at, datetime) else None
    return entry


def read_catalog(conn: psycopg.Connection) -> Catalog:
    """The whole catalog from PostGIS, at the revision it was read at."""
    # The revision first: entries read after it are at least as new (an import
    # committed in between makes the next look read them again, no more).
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(REVISION)
        rev = int((cur.fetchone() or (0,))[0])
        cur.execute(ENTRIES)
        apps = {row[0]: entry_of(row) for row in cur.fetchall()}
    return Catalog(rev, apps)


def publish_catalog(client: redis.Redis, prefix: str, catalog: Catalog) -> None:
    """Put the catalog in its Redis key (both fields in one command)."""
    client.hset(
        catalog_key(prefix),
        mapping={"rev": str(catalog.rev), "apps": orjson.dumps(catalog.apps)},
    )


def restore_catalog(client: redis.Redis, prefix: str, catalog: Catalog) -> bool:
    """Put the catalog read from PostGIS back in Redis unless the key exists by now
    (an import's, newer); return whether it was put."""
    key = catalog_key(prefix)
    with client.pipeline() as pipe:
        try:
            pipe.watch(key)
            if pipe.exists(key):
                return False
            pipe.multi()
            pipe.hset(key, mapping={"rev": str(catalog.rev), "apps": orjson.dumps(catalog.apps)})
            pipe.execute()
        except redis.WatchError:
            return False
    return True


def held_revision(client: redis.Redis, prefix: str) -> int | None:
    """The revision the Redis key carries; None when there is no key."""
    rev = client.hget(catalog_key(prefix), "rev")
    return None if rev is None else int(rev)


def held_catalog(client: redis.Redis, prefix: str) -> Catalog | None:
    """The catalog the Redis key carries; None when there is no key."""
    rev, apps = client.hmget(catalog_key(prefix), ["rev", "apps"])
    if rev is None or apps is None:
        return None
    return Catalog(int(rev), orjson.loads(apps))
