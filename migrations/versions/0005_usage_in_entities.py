"""Each entity's usage mass kept on its row, where the search reads it.

``entities.usage_mass`` is the decayed mass of the entity's usage events
(indexer/store/usage.py), taken over from ``usage_entity``: the popularity an
entity ranks by is ``popularity + usage_mass · 2^(−(t − T0)/h)`` (indexer/rules.py),
read in one row by the PostGIS search and by what writes the hot index. An
entity whose mass moves here gets a new revision, so that the hot index takes it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE entities ADD COLUMN usage_mass double precision NOT NULL DEFAULT 0
            CONSTRAINT entities_usage_mass_range CHECK (usage_mass >= 0 AND usage_mass < 'Infinity')
        """
    )
    op.execute(
        """
        UPDATE entities e SET usage_mass = u.mass, rev = nextval('entity_rev')
        FROM usage_entity u WHERE u.entity_id = e.id AND u.mass > 0
        """
    )
    op.execute("DROP TABLE usage_entity")


def downgrade() -> None:
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
        "INSERT INTO usage_entity (entity_id, mass)"
        " SELECT id, usage_mass FROM entities WHERE usage_mass > 0"
    )
    op.execute("ALTER TABLE entities DROP COLUMN usage_mass")
