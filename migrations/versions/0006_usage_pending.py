"""Usage not yet in the masses: what the next round of the applier adds to them.

``POST /v1/events`` and the stream consumer store each checked batch in one
transaction: its events in the log and the users' recents at once, and here
its sums of the events' mass terms, by entity (and by mini-app, for events
that name one only). A round (indexer/store/usage_rounds.py) takes every row in
one transaction and adds them to the masses, and the entities' new masses go to
the hot index: each entity once a round, however many events the round holds.
``received`` is when the row was stored, for the age of the oldest waiting;
``usage_clocks`` when the last round began, and when a batch last trimmed the
users' recents.

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
            entity_id text,
            mini_app text NOT NULL DEFAULT '',
            mass double precision NOT NULL,
            events integer NOT NULL,
            received timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    # When the last round began ('round': the processes that run rounds space them
    # by NEARBY_EVENT_ROUND_S between them), and when a batch last trimmed the recents
    # ('trim'); a row each, so that a round holding its row never holds a batch back.
    op.execute("CREATE TABLE usage_clocks (name text PRIMARY KEY, at timestamptz NOT NULL)")
    op.execute("INSERT INTO usage_clocks VALUES ('round', '-infinity'), ('trim', '-infinity')")


def downgrade() -> None:
    op.execute("DROP TABLE usage_clocks")
    op.execute("DROP TABLE usage_pending")
