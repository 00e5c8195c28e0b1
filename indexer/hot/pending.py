"""Marks of writes between their PostGIS commit and their Redis writes.

Every write goes to PostGIS first, then to Redis: a process killed between the
two would leave Redis without the write until someone rebuilt it by hand.  So a
write inserts a mark (a row of ``hot_pending``) in the transaction that commits
its rows, and deletes it once Redis holds them.  While the write runs, its
session holds an advisory lock on the mark's key, which PostgreSQL releases when
the session ends, however the process died.  A mark whose lock is free is
dead: what its write committed may be missing from Redis, and the next process
that looks (an import, a feed sync, the server's start, a healing check; see
:mod:`indexer.hot.heal`) rebuilds the hot index from PostGIS and deletes the mark.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

import psycopg
from psycopg.pq import TransactionStatus

#: The first key of the marks' advisory locks (the second is a mark's own): "hotp".
LOCK_CLASS = 0x686F7470

#: Marks whose writer's lock no session holds: the writer is gone, or gave up on Redis.
DEAD_MARKS = """
SELECT p.id FROM hot_pending p
WHERE NOT EXISTS (
    SELECT 1 FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND l.classid = %(class)s::oid AND l.objid = p.lock_key::oid
)
ORDER BY p.id
"""


@dataclass
class Mark:
    """The mark of one write on ``conn``: taken in the transaction that commits the write,
    cleared once Redis holds it."""

    conn: psycopg.Connection
    source: str
    key: int = field(default_factory=lambda: secrets.randbelow(2**31))
    #: The rows inserted (one per transaction that took the mark).
    ids: list[int] = field(default_factory=list)
    locked: bool = False

    def take(self, cur: psycopg.Cursor) -> None:
        """Lock the mark's key (once) and insert a mark row, inside the write's transaction.

        The lock is taken before the row can be seen, so that no other process
        ever sees the mark of a running write without its lock.
        """
        if not self.locked:
            cur.execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_CLASS, self.key))
            self.locked = True
        cur.execute(
            "INSERT INTO hot_pending (lock_key, source) VALUES (%s, %s) RETURNING id",
            (self.key, self.source),
        )
        row = cur.fetchone()
        assert row is not None
        self.ids.append(int(row[0]))

    def clear(self) -> None:
        """Redis holds the write: delete the mark, then free its lock."""
        # Should PostgreSQL fail here, the mark stays: a rebuild that was not
        # needed, rather than a write reported as failed that is whole.
        with suppress(psycopg.Error):
            if self.ids:
                with self.conn.transaction():
                    self.conn.execute("DELETE FROM hot_pending WHERE id = ANY(%s)", (self.ids,))
                self.ids = []
        self.release()

    def release(self) -> None:
        """Free the lock and leave the mark (if committed) for the next process to repair."""
        if not self.locked:
            return
        self.locked = False
        # A session that is gone has lost its locks already.
        with suppress(psycopg.Error):
            if self.conn.info.transaction_status != TransactionStatus.IDLE:
                self.conn.rollback()
            self.conn.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_CLASS, self.key))
            self.conn.commit()


@contextmanager
def marked(conn: psycopg.Connection, source: str) -> Iterator[Mark]:
    """A write's mark; its lock is freed on leaving (the mark stays unless cleared)."""
    mark = Mark(conn, source)
    try:
        yield mark
    finally:
        mark.release()


def leave_mark(conn: psycopg.Connection, source: str) -> None:
    """Mark a write that PostGIS has and Redis may not, dead from the start (no lock
    is held): for a writer that goes on after Redis failed it (the API's pushes)."""
    with suppress(psycopg.Error), conn.transaction():
        conn.execute(
            "INSERT INTO hot_pending (lock_key, source) VALUES (%s, %s)",
            (secrets.randbelow(2**31), source),
        )


def dead_marks(conn: psycopg.Connection) -> list[int]:
    """The ids of the marks whose writer is gone (what they wrote may be missing in Redis)."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(DEAD_MARKS, {"class": LOCK_CLASS})
        return [int(row[0]) for row in cur.fetchall()]


def clear_marks(conn: psycopg.Connection, ids: Sequence[int]) -> None:
    """Delete marks that a rebuild has repaired (its snapshot was taken after they were read)."""
    with conn.transaction():
        conn.execute("DELETE FROM hot_pending WHERE id = ANY(%s)", (list(ids),))
