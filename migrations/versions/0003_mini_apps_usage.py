"""The mini-app catalog, users' favourites and recents, and usage events with their masses.

``mini_apps`` is the catalog: one row per mini-app, keyed by the slug that
entities' ``mini_app`` holds; every import that changes it takes revisions from
``mini_app_rev`` and leaves the last in ``mini_app_revision``, the catalog's
revision (a sequence's own last value would count imports not yet committed).

``usage_events`` keeps every event applied; ``usage_entity`` and
``usage_mini_app`` keep each one's decayed usage mass (indexer/store/usage.py
says what a mass is), in the basis ``usage_basis`` names. No foreign keys: an
entity or a mini-app may leave while its usage stays, and the entities are
truncated and reloaded on their own.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE SEQUENCE mini_app_rev")
    op.execute(
        """
        CREATE TABLE mini_apps (
            slug text PRIMARY KEY CONSTRAINT mini_apps_slug_not_empty CHECK (slug <> ''),
            name text NOT NULL,
            icon_url text NOT NULL DEFAULT '',
            description text NOT NULL DEFAULT '',
            category text NOT NULL DEFAULT '',
            rev bigint NOT NULL DEFAULT nextval('mini_app_rev'),
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE mini_app_revision (
            one boolean PRIMARY KEY DEFAULT true CONSTRAINT mini_app_revision_one CHECK (one),
            rev bigint NOT NULL
        )
        """
    )
    op.execute("INSERT INTO mini_app_revision (rev) VALUES (0)")
    op.execute(
        """
        CREATE TABLE user_favorites (
            user_id text NOT NULL,
            slug text NOT NULL,
            added_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (user_id, slug)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE user_recents (
            user_id text NOT NULL,
            slug text NOT NULL,
            at timestamptz NOT NULL,
            PRIMARY KEY (user_id, slug)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE usage_events (
            at timestamptz NOT NULL,
            type text NOT NULL,
            entity_id text,
            mini_app text NOT NULL DEFAULT '',
            user_id text
        )
        """
    )
    # Forgetting a user finds their events without a scan of them all.
    op.execute("CREATE INDEX usage_events_user ON usage_events (user_id) WHERE user_id IS NOT NULL")
    op.execute(
        """
        CREATE TABLE usage_entity (
            entity_id text PRIMARY KEY,
            mass double precision NOT NULL
                CONSTRAINT usage_entity_mass_range CHECK (mass >= 0 AND mass < 'Infinity')
        )
        """
    )
    op.execute(
        """
        CREATE TABLE usage_mini_app (
            slug text PRIMARY KEY,
            mass double precision NOT NULL
                CONSTRAINT usage_mini_app_mass_range CHECK (mass >= 0 AND mass < 'Infinity')
        )
        """
    )
    # One row: the epoch and half-life the masses are kept in.
    op.execute(
        """
        CREATE TABLE usage_basis (
            one boolean PRIMARY KEY DEFAULT true CONSTRAINT usage_basis_one CHECK (one),
            epoch_s double precision NOT NULL,
            half_life_s double precision NOT NULL
        )
        """
    )


def downgrade() -> None:
    for table in (
        "usage_basis",
        "usage_mini_app",
        "usage_entity",
        "usage_events",
        "user_recents",
        "user_favorites",
        "mini_app_revision",
        "mini_apps",
    ):
        op.execute(f"DROP TABLE {table}")
    op.execute("DROP SEQUENCE mini_app_rev")
