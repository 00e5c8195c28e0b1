"""PostgreSQL access: connections and the schema's migrations."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import psycopg
import psycopg.errors

T = TypeVar("T")

#: Times a transaction that PostgreSQL aborted as a deadlock victim is tried again.
DEADLOCK_RETRIES = 3

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


#: Memory for a session's temporary tables (a write's staging table) before they
#: spill to disk, where comparing a large re-import with the index is slower.
#: Taken only as used, and settable only before the first one.
TEMP_BUFFERS = "256MB"


def connect(database_url: str, *, autocommit: bool = False) -> psycopg.Connection:
    """Open a connection; rows come back as tuples."""
    conn = psycopg.connect(database_url, autocommit=autocommit, connect_timeout=5)
    conn.execute("SELECT set_config('temp_buffers', %s, false)", (TEMP_BUFFERS,))
    if not autocommit:
        conn.commit()
    return conn


def retrying_deadlocks(run: Callable[[], T], retries: int = DEADLOCK_RETRIES) -> T:
    """``run()`` (one transaction), tried again while PostgreSQL aborts it as a deadlock
    victim: writers lock rows in id order, another writer's order can still meet theirs."""
    for attempt in range(retries + 1):
        try:
            return run()
        except psycopg.errors.DeadlockDetected:
            if attempt == retries:
                raise
    raise AssertionError("unreachable")


def sqlalchemy_url(database_url: str) -> str:
    """The same database as a SQLAlchemy URL with the psycopg 3 driver."""
    scheme, _, rest = database_url.partition("://")
    return f"postgresql+psycopg://{rest}"


def upgrade(database_url: str, revision: str = "head") -> None:
    """Apply the migrations up to ``revision``; harmless when already there."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url).replace("%", "%%"))
    command.upgrade(config, revision)
