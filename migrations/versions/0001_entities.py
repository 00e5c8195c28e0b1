"""The entity table: stores, bikes and chargers, one row each.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    # Every write takes the next value: Redis applies a change only when its
    # revision is newer than what it holds, so late or replayed writes are harmless.
    op.execute("CREATE SEQUENCE entity_rev")
    op.execute(
        """
        CREATE TABLE entities (
            id text PRIMARY KEY CONSTRAINT entities_id_not_empty CHECK (id <> ''),
            kind text NOT NULL
                CONSTRAINT entities_kind_known CHECK (kind IN ('store', 'bike', 'charger')),
            mini_app text NOT NULL DEFAULT '',
            name text NOT NULL DEFAULT '',
            category text NOT NULL DEFAULT '',
            lat double precision NOT NULL
                CONSTRAINT entities_lat_range CHECK (lat BETWEEN -90 AND 90),
            lng double precision NOT NULL
                CONSTRAINT entities_lng_range CHECK (lng >= -180 AND lng < 180),
            -- Derived from lat/lng, so the two can never disagree; NULL (and so
            -- refused by the range checks above) for an impossible point.
            geog geography(Point, 4326) GENERATED ALWAYS AS (
                CASE WHEN lat BETWEEN -90 AND 90 AND lng >= -180 AND lng < 180
                     THEN ST_SetSRID(ST_MakePoint(lng, lat), 4326)::geography END
            ) STORED,
            h3 bigint NOT NULL CONSTRAINT entities_h3_valid CHECK (h3 > 0),
            -- NaN compares above every number in PostgreSQL, so "< Infinity"
            -- also refuses NaN.
            popularity double precision NOT NULL DEFAULT 0
                CONSTRAINT entities_popularity_range
                CHECK (popularity >= 0 AND popularity < 'Infinity'),
            available integer CONSTRAINT entities_available_range CHECK (available >= 0),
            capacity integer CONSTRAINT entities_capacity_range CHECK (capacity >= 0),
            opening_hours text,
            tz text,
            attrs jsonb NOT NULL DEFAULT '{}'::jsonb,
            source text NOT NULL CONSTRAINT entities_source_not_empty CHECK (source <> ''),
            rev bigint NOT NULL DEFAULT nextval('entity_rev'),
            updated_at timestamptz NOT NULL DEFAULT now(),
            seen_at timestamptz,
            CONSTRAINT entities_store_counts
                CHECK (kind <> 'store' OR (available IS NULL AND capacity IS NULL))
        )
        """
    )
    op.execute("CREATE INDEX entities_geog_gist ON entities USING gist (geog)")
    op.execute("CREATE INDEX entities_h3 ON entities (h3)")
    op.execute("CREATE INDEX entities_source ON entities (source)")


def downgrade() -> None:
    op.execute("DROP TABLE entities")
    op.execute("DROP SEQUENCE entity_rev")
