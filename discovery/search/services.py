"""The connections an API process holds: a PostGIS pool and a Redis client.

Made when the app is created (not at import), opened lazily on first use, so
that the app starts, and answers from the store that is up, while the other is
down.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property

import psycopg
import redis
from flask import current_app
from psycopg_pool import ConnectionPool, PoolTimeout

from discovery.api.errors import ServiceUnavailable
from discovery.api.requestlog import note_postgres_error
from discovery.search.healing import Healer
from discovery.search.hot import RedisSearch
from discovery.search.query import StaleLimits
from discovery.settings import ApiSettings
from indexer.hot.index import HotIndex, connect_redis


class Services:
    """PostGIS and Redis for one app."""

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self.pool = ConnectionPool(
            settings.index.database_url,
            min_size=1,
            max_size=4,
            open=False,
            timeout=2.0,
            check=ConnectionPool.check_connection,
            kwargs={"autocommit": True, "connect_timeout": 2},
        )
        self._opened = False
        self.redis = connect_redis(settings.index.redis_url)
        self.hot = HotIndex(self.redis, settings.index.redis_prefix)
        #: Starts a rebuild when Redis holds no index (discovery/search/healing.py).
        self.healer = Healer(settings.index, self.hot, settings.heal_check_s)

    @contextmanager
    def postgis(self) -> Iterator[psycopg.Connection]:
        """A pooled connection; ServiceUnavailable when PostGIS does not answer."""
        if not self._opened:
            self.pool.open(wait=False)
            self._opened = True
        try:
            with self.pool.connection() as conn:
                yield conn
        except (PoolTimeout, psycopg.OperationalError) as exc:
            note_postgres_error(exc)
            raise ServiceUnavailable("PostGIS is not reachable") from exc

    @cached_property
    def stale(self) -> StaleLimits:
        """The deployment's staleness limits."""
        return self.settings.index.stale_limits

    @cached_property
    def search(self) -> RedisSearch:
        """Nearby queries over the hot index (made on first use)."""
        return RedisSearch(self.hot)

    def close(self) -> None:
        """Close the pool and the Redis connections."""
        if self._opened:
            self.pool.close()
        if "search" in self.__dict__:
            self.search.close()
        self.hot.close()


def services() -> Services:
    """The current app's services."""
    found: Services = current_app.extensions["nearby"]
    return found


def redis_errors() -> tuple[type[Exception], ...]:
    """Exceptions that mean Redis cannot answer now."""
    return (redis.ConnectionError, redis.TimeoutError)
