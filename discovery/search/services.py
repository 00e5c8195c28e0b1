"""The connections an API process holds: a PostGIS pool and a Redis client.

Made when the app is created (not at import), opened lazily on first use, so
that the app starts, and answers from the store that is up, while the other is
down.  Reads that may be a little behind (the PostGIS fallback search, an
entity's document) go to the read replica when there is one and it keeps up
(:mod:`discovery.search.replica`); writes always to the primary.  What a
search notices on the way (where its answer came from, a fallback to PostGIS
and why, a store's error) it tells its :class:`Notes`, which the API fills in
for its request log.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import TypeVar

import psycopg
import redis
from psycopg_pool import PoolTimeout

from discovery.search.healing import Healer
from discovery.search.hot import RedisSearch
from discovery.search.query import StaleLimits
from discovery.search.replica import READ_FAILED, ReplicaReads, api_pool
from discovery.settings import ApiSettings
from indexer.errors import Unavailable
from indexer.hot.index import HotIndex, connect_redis
from indexer.jobs.rounds import RoundLoop


class Notes:
    """Where a search tells what it noticed while answering; these take no note."""

    def source(self, source: str) -> None:
        """The answer came from ``source`` (``redis`` or ``postgis``)."""

    def no_generation(self) -> None:
        """Redis holds no generation: the answer comes from PostGIS."""

    def redis_failed(self, exc: BaseException) -> None:
        """Redis failed (``exc``): the answer comes from PostGIS."""

    def not_answered(self) -> None:
        """The hot index could not answer this query (discovery.search.hot.NotAnswered):
        the answer comes from PostGIS."""

    def postgres_failed(self, exc: BaseException) -> None:
        """PostgreSQL failed, or its pool timed out (``exc``)."""

    def read_from(self, server: str) -> None:
        """A read went to ``server`` (``primary`` or ``replica``)."""


T = TypeVar("T")

#: Seconds a request waits for a connection to the primary, or to connect to it.
PRIMARY_TIMEOUT_S = 2


class Services:
    """PostGIS and Redis for one app, and the notes its searches take."""

    def __init__(self, settings: ApiSettings, notes: Notes | None = None) -> None:
        self.settings = settings
        self.notes = notes if notes is not None else Notes()
        self.pool = api_pool(settings.index.database_url, PRIMARY_TIMEOUT_S)
        self._opened = False
        read_url = settings.index.database_read_url
        #: The read replica; None: every read goes to the primary.
        self.replica = (
            None if read_url is None else ReplicaReads(read_url, settings.index.replica_max_lag_s)
        )
        self.redis = connect_redis(settings.index.redis_url)
        self.hot = HotIndex(
            self.redis, settings.index.redis_prefix, settings.index.usage.half_life_s
        )
        #: Starts a rebuild when Redis holds no index (discovery/search/healing.py).
        self.healer = Healer(settings.index, self.hot, settings.heal_check_s)
        round_s = settings.index.usage.round_s
        #: Counts the stored usage events (indexer/jobs/rounds.py); None: each
        #: request counts its own batch.
        self.rounds = None if round_s <= 0 else RoundLoop(self.postgis, self.hot, round_s)

    @contextmanager
    def postgis(self) -> Iterator[psycopg.Connection]:
        """A pooled connection; Unavailable when PostGIS does not answer."""
        if not self._opened:
            self.pool.open(wait=False)
            self._opened = True
        try:
            with self.pool.connection() as conn:
                yield conn
        except (PoolTimeout, psycopg.OperationalError) as exc:
            self.notes.postgres_failed(exc)
            raise Unavailable("PostGIS is not reachable") from exc

    def read(self, query: Callable[[psycopg.Connection], T]) -> T:
        """``query(conn)`` on the replica when it is used, else (or when it fails
        there) on the primary; Unavailable when the primary does not answer."""
        replica = self.replica
        if replica is not None and replica.use(self.postgis):
            try:
                with replica.connection() as conn:
                    found = query(conn)
            except READ_FAILED as exc:
                replica.failed(exc)
            else:
                self.notes.read_from("replica")
                return found
        with self.postgis() as conn:
            found = query(conn)
        self.notes.read_from("primary")
        return found

    @cached_property
    def stale(self) -> StaleLimits:
        """The deployment's staleness limits."""
        return self.settings.index.stale_limits

    @cached_property
    def search(self) -> RedisSearch:
        """Nearby queries over the hot index (made on first use)."""
        return RedisSearch(self.hot)

    def check_healing_in_background(self) -> None:
        """Look for a missing hot index or a dead write's mark, in a background thread
        (the app serves meanwhile, from whichever store answers); nothing when healing is off."""
        if self.settings.heal_check_s > 0:
            threading.Thread(
                target=self.healer.check_at_start,
                args=(self.postgis,),
                name="heal-start",
                daemon=True,
            ).start()

    def start_rounds(self) -> None:
        """Start counting stored usage events in the background (when rounds are on)."""
        if self.rounds is not None:
            self.rounds.start()

    def close(self) -> None:
        """Stop the rounds; close the pool and the Redis connections."""
        if self.rounds is not None:
            self.rounds.close()
        if self._opened:
            self.pool.close()
        if self.replica is not None:
            self.replica.close()
        if "search" in self.__dict__:
            self.search.close()
        self.hot.close()


#: Exceptions that mean Redis cannot answer now.
REDIS_DOWN: tuple[type[Exception], ...] = (redis.ConnectionError, redis.TimeoutError)
