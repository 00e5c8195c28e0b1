"""PostgreSQL access: connections and the schema's migrations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def connect(database_url: str, *, autocommit: bool = False) -> psycopg.Connection:
    """Open a connection; rows come back as tuples."""
    return psycopg.connect(database_url, autocommit=autocommit, connect_timeout=5)


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
