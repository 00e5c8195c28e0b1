"""What every command shares: the settings, connections opened on first use, and how
a command ends (the exit status of an error from :data:`indexer.errors.ENDINGS`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import click
import psycopg
import redis

from indexer.errors import NearbyError, Unavailable, ending
from indexer.hot.heal import ensure_index
from indexer.hot.index import HotIndex, connect_redis
from indexer.jobs.failures import NOTHING_WRITTEN
from indexer.settings import IndexSettings
from indexer.store import db

#: The exit status of a command that ran but whose outcome is not clean (rows
#: rejected, differences found, a store that did not answer).
NOT_CLEAN = 1


class NearbyGroup(click.Group):
    """A command group that ends every :class:`~indexer.errors.NearbyError` its commands
    raise the same way: ``Error: <message>`` on stderr, and the table's exit status."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NearbyError as exc:
            click.echo(f"Error: {exc.message}", err=True)
            raise click.exceptions.Exit(ending(exc).exit_code) from exc


@dataclass
class Context:
    """What every command gets: the settings, and connections opened on first use."""

    settings: IndexSettings
    _conn: psycopg.Connection | None = None
    _replica: psycopg.Connection | None = None
    _hot: HotIndex | None = None

    def conn(self) -> psycopg.Connection:
        """The PostGIS connection (opened once)."""
        if self._conn is None:
            try:
                self._conn = db.connect(self.settings.database_url)
            except psycopg.OperationalError as exc:
                raise Unavailable(f"PostGIS is not reachable: {exc}") from exc
        return self._conn

    def replica(self) -> psycopg.Connection | None:
        """A connection to the read replica (opened once); None when there is none or it
        does not answer (then the primary serves)."""
        url = self.settings.database_read_url
        if self._replica is None and url is not None:
            try:
                self._replica = db.connect(url)
            except psycopg.OperationalError as exc:
                click.echo(f"warning: the read replica is not reachable ({exc})", err=True)
        return self._replica

    def close(self) -> None:
        """Close what was opened (a transaction left open would block other sessions)."""
        for conn in (self._conn, self._replica):
            if conn is not None:
                conn.close()
        self._conn = self._replica = None
        if self._hot is not None:
            self._hot.client.close()
            self._hot = None

    def hot(self) -> HotIndex:
        """The hot index (Redis client made once)."""
        if self._hot is None:
            client = connect_redis(self.settings.redis_url)
            self._hot = HotIndex(
                client, self.settings.redis_prefix, self.settings.usage.half_life_s
            )
        return self._hot

    def ensure_index(self) -> None:
        """Before a write: rebuild the hot index if Redis holds none or a write died
        half-way (:func:`indexer.hot.heal.ensure_index`), and say so."""
        try:
            healed = ensure_index(self.conn(), self.hot())
        except redis.RedisError as exc:
            raise Unavailable(f"Redis is not reachable: {exc}; {NOTHING_WRITTEN}") from exc
        except psycopg.Error as exc:
            raise Unavailable(f"PostGIS failed: {exc}; {NOTHING_WRITTEN}") from exc
        if healed is not None:
            click.echo(str(healed), err=True)


pass_context = click.make_pass_decorator(Context)
