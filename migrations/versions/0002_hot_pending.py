"""Marks of writes that PostGIS committed and Redis may not hold yet.

A write inserts its mark in the transaction that commits its rows and deletes
it once Redis holds them; while it runs, it holds a session advisory lock on
the mark's key, so that a mark whose lock is free belongs to a writer that died
(or gave up on Redis): the hot index is rebuilt from PostGIS by the next
process that looks (indexer/hot/pending.py, indexer/hot/heal.py).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE hot_pending (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            lock_key integer NOT NULL,
            source text NOT NULL,
            committed_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE hot_pending")
