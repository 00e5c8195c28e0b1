"""PostgreSQL access: connections and the schema's migrations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


#: Memory for a session's temporary tables (a write's staging table) before they
#: spill to disk: a re-import of a million unchanged rows compares them in 3 s
#: instead of 5.  Taken only as used, and settable only before the first one.
TEMP_BUFFERS = "256MB"


def connect(database_url: str, *, autocommit: bool = False) -> psycopg.Connection:
    """Open a connection; rows come back as tuples."""
    conn = psycopg.connect(database_url, autocommit=autocommit, connect_timeout=5)
    conn.execute("SELECT set_config('temp_buffers', %s, false)", (TEMP_BUFFERS,))
    if not autocommit:
        conn.commit()
    return conn


def connect_dict(database_url: str) -> psycopg.Connection[dict[str, Any]]:
    """Open an autocommit connection whose rows come back as dicts."""
    return psycopg.Connection.connect(
        database_url, autocommit=True, connect_timeout=5, row_factory=dict_row
    )


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
