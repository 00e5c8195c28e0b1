"""The words text search reads: each entity's, each mini-app's, and the two together.

``entities.name_words`` and ``category_words`` hold the words of an entity's
name and category, ``mini_apps.words`` those of a mini-app's name, each as
indexer/text.py makes them (joined by single spaces); ``entities.search_text``
is the entity's words then its mini-app's, what ``q`` is matched against. Writes of entities fill it
from the catalog as it is when they commit; a catalog write refreshes it for
the entities of the mini-apps it changed. A trigram index on it lets PostGIS
find the entities a query's words occur in without reading every entity in the
radius.

The rows already there get their words here, made by the same code.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

from indexer.text import joined, spaced, stored_text_sql, words

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

#: Entities given their words at a time.
BATCH = 10_000


def fill_app_words(conn: sa.Connection) -> None:
    """Every mini-app's words."""
    apps = conn.execute(sa.text("SELECT slug, name FROM mini_apps")).fetchall()
    if apps:
        conn.execute(
            sa.text(
                "UPDATE mini_apps m SET words = u.words"
                " FROM unnest(CAST(:slugs AS text[]), CAST(:words AS text[])) AS u(slug, words)"
                " WHERE m.slug = u.slug"
            ),
            {"slugs": [slug for slug, _ in apps], "words": [joined(words(n)) for _, n in apps]},
        )


def fill_entity_words(conn: sa.Connection) -> None:
    """Every entity's words of its name and of its category, in batches by id."""
    last = ""
    while True:
        rows = conn.execute(
            sa.text(
                'SELECT id, name, category FROM entities WHERE id COLLATE "C" > :last'
                ' ORDER BY id COLLATE "C" LIMIT :batch'
            ),
            {"last": last, "batch": BATCH},
        ).fetchall()
        if not rows:
            return
        conn.execute(
            sa.text(
                "UPDATE entities e SET name_words = u.n, category_words = u.c"
                " FROM unnest(CAST(:ids AS text[]), CAST(:names AS text[]),"
                " CAST(:categories AS text[])) AS u(id, n, c)"
                " WHERE e.id = u.id"
            ),
            {
                "ids": [row[0] for row in rows],
                "names": [joined(words(row[1])) for row in rows],
                "categories": [joined(words(row[2])) for row in rows],
            },
        )
        last = rows[-1][0]


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute("ALTER TABLE mini_apps ADD COLUMN words text NOT NULL DEFAULT ''")
    op.execute(
        "ALTER TABLE entities ADD COLUMN name_words text NOT NULL DEFAULT '',"
        " ADD COLUMN category_words text NOT NULL DEFAULT '',"
        " ADD COLUMN search_text text NOT NULL DEFAULT ''"
    )
    conn = op.get_bind()
    fill_app_words(conn)
    fill_entity_words(conn)
    op.execute(f"UPDATE entities e SET search_text = {stored_text_sql('e')}")
    # On the expression the text rule's clauses read (indexer.text.match_sql).
    op.execute(
        "CREATE INDEX entities_search_text_trgm ON entities"
        f" USING gin ({spaced('search_text')} gin_trgm_ops)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX entities_search_text_trgm")
    op.execute(
        "ALTER TABLE entities DROP COLUMN search_text, DROP COLUMN category_words,"
        " DROP COLUMN name_words"
    )
    op.execute("ALTER TABLE mini_apps DROP COLUMN words")
