"""The rounds that count stored usage events, one every ``NEARBY_EVENT_ROUND_S``, in the background.

Every API worker runs a :class:`RoundLoop`: it wakes ``interval_s`` after its
last round began (at once when that round took longer) and runs one
(:func:`indexer.store.events.apply_round`), skipping when another process's
round holds the lock or began less than 0.9 ``interval_s`` ago. So while events
arrive a round begins about every ``interval_s`` and counts what came since the
last; an event is counted within ``interval_s`` plus the time of one round (the
benchmark measures it: ``scripts/bench_events.py``). A round that fails is
logged and the loop goes on: with PostgreSQL down its events stay stored for
the next; with Redis down once PostgreSQL counted them, a mark is left and the
hot index is rebuilt, as after any write that died between the two
(:func:`indexer.store.events.apply_round`).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

import psycopg
import redis

from indexer.errors import Unavailable
from indexer.hot.index import HotIndex
from indexer.store.events import apply_round
from indexer.store.usage_rounds import Round

log = logging.getLogger(__name__)

Connect = Callable[[], AbstractContextManager[psycopg.Connection]]
#: What a failed round raises: it is logged and the next round tries again.
ROUND_FAILED: tuple[type[Exception], ...] = (psycopg.Error, redis.RedisError, Unavailable)


def round_spacing(interval_s: float) -> float:
    """How far apart the rounds of every process begin at least: a little less than the
    interval, so that a process's own wake-ups are never refused."""
    return 0.9 * interval_s


class RoundLoop:
    """Runs a round every ``interval_s`` in a thread of its own (a greenlet under gevent)."""

    def __init__(self, connect: Connect, hot: HotIndex, interval_s: float) -> None:
        self.connect = connect
        self.hot = hot
        self.interval_s = interval_s
        self.spacing_s = round_spacing(interval_s)
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (once)."""
        if self.thread is None:
            self.thread = threading.Thread(target=self.run, name="usage-rounds", daemon=True)
            self.thread.start()

    def once(self) -> Round | None:
        """One round now (None: another process's held the lock or began less than the
        spacing ago, or it failed)."""
        try:
            with self.connect() as conn:
                counted = apply_round(conn, self.hot, wait=False, spacing_s=self.spacing_s)
        except ROUND_FAILED as exc:
            log.warning("a round of usage events failed (%s); the next tries again", exc)
            return None
        if counted is not None and counted.events:
            log.debug("counted %d usage events of %d entities, the oldest %.2f s old",
                      counted.events, len(counted.changes), counted.waited_s)  # fmt: skip
        return counted

    def run(self) -> None:
        """The thread: a round every ``interval_s`` until closed (the first at a random
        point of the first interval, so that processes started together spread theirs)."""
        began = time.monotonic() - random.uniform(0.0, self.interval_s)
        while not self.stop.wait(max(0.0, began + self.interval_s - time.monotonic())):
            began = time.monotonic()
            self.once()

    def close(self) -> None:
        """Stop the thread after the round under way."""
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=30)
