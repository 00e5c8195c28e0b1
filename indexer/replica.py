"""How far a streaming read replica is behind its primary, in WAL and in seconds.

The primary's position is ``pg_current_wal_insert_lsn()``: every committed
transaction's commit record is at or before it, even one committed with
synchronous_commit off whose WAL is not yet written; a replica has
replayed a transaction once ``pg_last_wal_replay_lsn()`` reaches that position.
A server that is not in recovery (a read URL naming a primary) is never behind.
"""

from __future__ import annotations

import logging
import time

import psycopg

log = logging.getLogger(__name__)

#: Seconds between two looks at a replica that a rebuild waits for.
REPLAY_POLL_S = 0.02

_BEHIND_SQL = """
SELECT NOT pg_is_in_recovery() OR coalesce(pg_last_wal_replay_lsn() >= %(lsn)s::pg_lsn, false),
       extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8
"""


def primary_position(primary: psycopg.Connection) -> str:
    """The primary's WAL position now: what it has committed so far ends at or before it."""
    with primary.transaction():
        row = primary.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
    assert row is not None
    return str(row[0])


def replayed(replica: psycopg.Connection, lsn: str) -> tuple[bool, float | None]:
    """Whether ``replica`` has replayed the WAL up to ``lsn``, and the age in seconds of
    the last transaction it replayed (None: none yet)."""
    with replica.transaction():
        row = replica.execute(_BEHIND_SQL, {"lsn": lsn}).fetchone()
    assert row is not None
    return bool(row[0]), row[1]


def lag_s(replica: psycopg.Connection, lsn: str) -> float:
    """How many seconds ``replica`` is behind a primary that was at ``lsn``: 0 when
    it has replayed up to there, else the age of its last replayed transaction
    (infinite when it replayed none)."""
    caught_up, age = replayed(replica, lsn)
    if caught_up:
        return 0.0
    return float("inf") if age is None else max(age, 0.0)


def wait_for_replay(replica: psycopg.Connection, lsn: str, timeout_s: float) -> bool:
    """Wait until ``replica`` has replayed the WAL up to ``lsn``; False after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not replayed(replica, lsn)[0]:
        if time.monotonic() >= deadline:
            return False
        time.sleep(REPLAY_POLL_S)
    return True


def scan_connection(
    primary: psycopg.Connection, replica: psycopg.Connection | None, timeout_s: float
) -> psycopg.Connection:
    """The connection a rebuild takes its snapshot on, asked once its generation is
    marked building: the replica once it has replayed every write the primary had
    committed by then (every later one reaches the generation through its
    writer), else, after ``timeout_s`` or when the replica fails, the primary."""
    if replica is None:
        return primary
    lsn = primary_position(primary)
    try:
        if wait_for_replay(replica, lsn, timeout_s):
            log.info("the rebuild scans the read replica (replayed up to %s)", lsn)
            return replica
    except psycopg.OperationalError as exc:
        log.warning("the read replica failed (%s): the rebuild scans the primary", exc)
        return primary
    log.warning(
        "the read replica had not replayed up to %s within %s s: the rebuild scans the primary",
        lsn,
        timeout_s,
    )
    return primary
