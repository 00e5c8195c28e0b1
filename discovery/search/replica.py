"""Which PostgreSQL server an API process reads from: its read replica while that
answers and keeps up, else the primary.

The replica's lag (:func:`indexer.replica.lag_s`) is looked at on first need
and then at most once every :data:`CHECK_EVERY_S`, on a connection of its own;
requests in between go by the last look.  A replica that lags more than the
limit, does not answer, or fails a read sends reads to the primary until a later
look finds it well again.  Each change is logged once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import psycopg
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from indexer import replica

log = logging.getLogger(__name__)

#: Seconds between two looks at the replica's lag, per process.
CHECK_EVERY_S = 1.0
#: Seconds a read waits for a connection to the replica, or to connect for a look.
CONNECT_TIMEOUT_S = 1

#: What a read may raise that means its server cannot answer it now.
READ_FAILED: tuple[type[Exception], ...] = (PoolTimeout, PoolClosed, psycopg.OperationalError)

Primary = Callable[[], AbstractContextManager[psycopg.Connection]]


def api_pool(url: str, timeout_s: float) -> ConnectionPool:
    """An API process's pool of autocommit connections to ``url`` (the primary or
    the replica), not yet open; ``timeout_s`` bounds both the wait for a
    connection and connecting."""
    return ConnectionPool(
        url,
        min_size=1,
        max_size=4,
        open=False,
        timeout=timeout_s,
        check=ConnectionPool.check_connection,
        kwargs={"autocommit": True, "connect_timeout": timeout_s},
    )


class ReplicaReads:
    """The read replica of one API process: its pool, and whether reads go to it."""

    def __init__(self, url: str, max_lag_s: float, check_every_s: float = CHECK_EVERY_S) -> None:
        self.url = url
        self.max_lag_s = max_lag_s
        #: Seconds between two looks at its lag.
        self.check_every_s = check_every_s
        #: Made on first use, dropped when the replica fails (so that its next one
        #: connects at once, rather than after the pool's reconnection back-off).
        self.pool: ConnectionPool | None = None
        self._probe: psycopg.Connection | None = None
        self._lock = threading.Lock()
        self._pool_lock = threading.Lock()
        self._next_look = 0.0
        #: Whether reads go to the replica (as of the last look).
        self.usable = False
        #: Why not, when not (as logged).
        self.reason = "not looked at yet"

    def use(self, primary: Primary) -> bool:
        """Whether a read goes to the replica now; looks again when the last look is
        ``check_every_s`` old (``primary`` gives a connection to the primary)."""
        now = time.monotonic()
        if now >= self._next_look and self._lock.acquire(blocking=False):
            try:
                self._next_look = now + self.check_every_s
                self._set(*self._look(primary))
            finally:
                self._lock.release()
        return self.usable

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A pooled connection to the replica."""
        pool = self.pool
        if pool is None:
            with self._pool_lock:
                pool = self.pool
                if pool is None:
                    pool = self.pool = self._new_pool()
        with pool.connection() as conn:
            yield conn

    def _new_pool(self) -> ConnectionPool:
        pool = api_pool(self.url, CONNECT_TIMEOUT_S)
        pool.open(wait=False)
        return pool

    def failed(self, exc: BaseException) -> None:
        """A read on the replica failed: reads go to the primary until the next look."""
        with self._lock:
            self._next_look = time.monotonic() + self.check_every_s
            self._set(False, f"a read failed: {type(exc).__name__}: {exc}")
            self._drop_connections()

    def _look(self, primary: Primary) -> tuple[bool, str]:
        """(usable, why not) from the replica's lag now."""
        with primary() as conn:
            lsn = replica.primary_position(conn)
        try:
            behind = replica.lag_s(self._probe_connection(), lsn)
        except psycopg.Error as exc:
            self._drop_connections()
            return False, f"{type(exc).__name__}: {exc}"
        if behind > self.max_lag_s:
            return False, f"it lags {behind:.1f} s (more than {self.max_lag_s} s)"
        return True, ""

    def _probe_connection(self) -> psycopg.Connection:
        if self._probe is None or self._probe.closed:
            self._probe = psycopg.connect(
                self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
            )
        return self._probe

    def _drop_connections(self) -> None:
        """Close the look's connection and the pool (reads holding one fail over)."""
        if self._probe is not None:
            self._probe.close()
            self._probe = None
        with self._pool_lock:
            pool, self.pool = self.pool, None
        if pool is not None:
            pool.close(timeout=0)

    def _set(self, usable: bool, reason: str) -> None:
        """Take the outcome of a look; log when it differs from the last one."""
        if usable != self.usable:
            if usable:
                log.info("the read replica keeps up: reads go to it")
            else:
                log.warning("the read replica is not used (%s): reads go to the primary", reason)
        self.usable, self.reason = usable, reason

    def close(self) -> None:
        """Close the pool and the connection the looks use."""
        with self._lock:
            self._drop_connections()
