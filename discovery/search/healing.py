"""Self-healing of the hot index, from the API's side.

When Redis answers that it holds no generation (it restarted empty, failed over,
was flushed, or the layout changed), queries go on from PostGIS, and the
process that notices starts a rebuild, so that Redis serves again without
anyone running a command.  A rebuild of a large index takes tens of seconds of
CPU: it never runs in a request (a greenlet of a gevent worker would starve the
worker's other connections), but in a process of its own,
``python -m indexer cache rebuild --if-needed`` with this app's own
``DATABASE_URL``, ``REDIS_URL`` and ``NEARBY_REDIS_PREFIX``, which a
background thread (a greenlet under gevent) starts and waits for.

Of the many processes that notice at once (every API worker, the feed
watcher), one starts it: each looks at most once every
``NEARBY_HEAL_CHECK_S`` seconds (so that the fallback path does not hammer
Redis), and only the one that takes a short lease in Redis, in the same step
that finds no generation current or building, starts a process.  The process
builds only if the index is still missing when it marks its build
(:func:`indexer.hot.heal.ensure_index`), so a feed watcher that heals inline meanwhile
and the API's process never both build.  A process that dies is replaced once
the lease lapses.  At the server's start, each worker also looks for marks of
writes that died between PostGIS and Redis (:mod:`indexer.hot.pending`).

:func:`run_healing_rebuild` logs each start, finish and failure.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

import psycopg
import redis

from indexer.hot import layout, lua
from indexer.hot.heal import MISSING, dead_reason
from indexer.hot.index import HotIndex
from indexer.hot.pending import dead_marks
from indexer.settings import IndexSettings

log = logging.getLogger("nearby.healing")

#: How long a process that started a healing rebuild keeps others from starting
#: one: long enough for the rebuild to start and mark its build (which then
#: keeps them off); a rebuild that died is started again once it lapses.
HEAL_LEASE_MS = 30_000


def rebuild_command() -> list[str]:
    """The command of a healing rebuild: this interpreter, the index's CLI."""
    return [sys.executable, "-m", "indexer", "cache", "rebuild", "--if-needed"]


def rebuild_env(settings: IndexSettings) -> dict[str, str]:
    """The environment of a healing rebuild: this process's, with the app's own stores."""
    return {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "NEARBY_REDIS_PREFIX": settings.redis_prefix,
    }


def run_healing_rebuild(settings: IndexSettings, reason: str) -> int:
    """Run a healing rebuild in a process of its own and wait for it; its exit status.

    Logs its start, its finish (with what it did) and its failure.
    """
    try:
        process = subprocess.Popen(
            rebuild_command(),
            env=rebuild_env(settings),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,  # not stopped by a signal to the server's group
        )
    except OSError as exc:
        log.warning("healing rebuild failed to start: %s: %s", reason, exc)
        return -1
    log.info("healing rebuild started (process %d): %s", process.pid, reason)
    output, _ = process.communicate()
    said = output.strip().splitlines()[-1] if output.strip() else ""
    if process.returncode == 0:
        log.info("healing rebuild finished (process %d): %s", process.pid, said)
    else:
        log.warning(
            "healing rebuild failed (process %d, exit %d): %s",
            process.pid,
            process.returncode,
            said,
        )
    return process.returncode


Starter = Callable[[IndexSettings, str], object]


class Healer:
    """Starts healing rebuilds for one API process (see the module)."""

    def __init__(
        self,
        settings: IndexSettings,
        hot: HotIndex,
        check_s: float,
        *,
        starter: Starter = run_healing_rebuild,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.hot = hot
        #: Seconds between two checks of this process; 0: never heal.
        self.check_s = check_s
        self.starter = starter
        self.clock = clock
        self.token = f"{socket.gethostname()}:{os.getpid()}"
        self._claim = hot.client.register_script(lua.source("discovery.search", "heal_lease.lua"))
        self._next_check = 0.0
        self._lock = threading.Lock()

    @property
    def key(self) -> str:
        """The healing lease's key."""
        return f"{self.hot.prefix}:heal"

    def notice_missing(self) -> bool:
        """Redis answered without a generation: start a healing rebuild if this process
        may (see the module); whether it started one."""
        if self.check_s <= 0 or not self._due():
            return False
        return self._start_if_leased(MISSING, missing=True)

    def check_at_start(
        self, postgis: Callable[[], AbstractContextManager[psycopg.Connection]]
    ) -> bool:
        """At the process's start: a dead write's mark, or no generation, starts a
        healing rebuild (under the lease); whether it started one.  Errors are logged."""
        if self.check_s <= 0:
            return False
        try:
            with postgis() as conn:
                dead = dead_marks(conn)
        except Exception as exc:  # the app starts whatever PostGIS says
            log.warning("healing check at start could not read PostGIS: %s", exc)
            dead = []
        if dead:
            return self._start_if_leased(dead_reason(dead), missing=False)
        return self._start_if_leased(MISSING, missing=True)

    def _due(self) -> bool:
        """Whether this process may check now (at most once every ``check_s``)."""
        with self._lock:
            now = self.clock()
            if now < self._next_check:
                return False
            self._next_check = now + self.check_s
            return True

    def _start_if_leased(self, reason: str, *, missing: bool) -> bool:
        """Take the lease (with ``missing``: only if no generation is current or building)
        and start the rebuild in a background thread; whether it was taken."""
        prefix = self.hot.prefix
        keys = [layout.gen_key(prefix), layout.building_key(prefix), self.key]
        mode = "missing" if missing else "any"
        try:
            taken = self._claim(keys=keys, args=[self.token, HEAL_LEASE_MS, mode])
        except redis.RedisError as exc:
            log.warning("healing check could not reach Redis: %s", type(exc).__name__)
            return False
        if not taken:
            return False
        threading.Thread(
            target=self.starter, args=(self.settings, reason), name="healing", daemon=True
        ).start()
        return True
