"""Usage events taken but not yet counted: what the next round of the applier counts.

``POST /v1/events`` and the stream consumer store each checked event here, in
the request's one transaction (one COPY, no index to keep); a round of the
applier (indexer/store/usage_rounds.py) takes every row in one transaction,
moves them into the log (``usage_events``), adds them to the masses and
recents, and sends the entities' new masses to the hot index: each entity
once a round, however many of its events the round holds. ``received`` is when
the row was stored, for the age of the oldest waiting; ``usage_round`` when
the last round began, and when one last trimmed the users' recents.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE usage_pending (
            at_s double precision NOT NULL,
            type text NOT NULL,
            entity_id text,
            mini_app text NOT NULL DEFAULT '',
            user_id text,
            mass double precision NOT NULL,
            received timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    # One row: when the last round began, so that the processes that run rounds
    # space them by NEARBY_EVENT_ROUND_S between them.
    op.execute(
        """
        CREATE TABLE usage_round (
            one boolean PRIMARY KEY DEFAULT true CONSTRAINT usage_round_one CHECK (one),
            began timestamptz NOT NULL,
            trimmed timestamptz NOT NULL
        )
        """
    )
    op.execute("INSERT INTO usage_round (began, trimmed) VALUES ('-infinity', '-infinity')")


def downgrade() -> None:
    op.execute("DROP TABLE usage_round")
    op.execute("DROP TABLE usage_pending")
