"""``nearby events consume STREAM``: usage events from a Redis Stream, for platforms that log them.

Each entry is one event, its fields those of ``POST /v1/events`` (``type``,
``entity_id`` or ``mini_app``, ``user``, ``at``; other fields are ignored). The
consumer reads as one consumer of a consumer group (made, with the stream, if
missing), checks and stores each batch of entries exactly as the HTTP endpoint
does (:func:`indexer.store.events.receive_events`: stored, or with
``NEARBY_EVENT_ROUND_S`` 0 counted too), and only then acknowledges
and deletes them, in one transaction: entries it read but did not apply (it
died, PostgreSQL failed) stay pending, and are read again by this consumer at
its start, or claimed (XAUTOCLAIM) by another once idle for ``claim_idle_ms``.
A refused entry is logged with its id and reason (never its user), and
acknowledged as applied ones are. Entries are deleted once applied, so that
what a forgotten user did does not stay in Redis. Delivery is at least once:
should Redis fail between the commit and the acknowledgement, the batch is
applied again.

The consumer runs the rounds that count stored events itself, one every
``NEARBY_EVENT_ROUND_S`` at most (skipped while another process's round runs),
and one more before it stops, so that it needs no API beside it.

SIGTERM (or SIGINT) stops the loop after the batch under way is applied.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from threading import Event

import psycopg
import redis

from indexer.hot.index import HotIndex
from indexer.jobs.rounds import round_spacing
from indexer.settings import UsageSettings
from indexer.store.events import EventBatch, apply_round, receive_events

log = logging.getLogger(__name__)

#: Entries read a batch.
DEFAULT_COUNT = 1000
#: How long a read waits for new entries (milliseconds): also how soon a stop is seen.
DEFAULT_BLOCK_MS = 1000
#: How long another consumer's entry stays pending before this one takes it.
DEFAULT_CLAIM_IDLE_MS = 60_000
#: Seconds between two looks for entries a dead consumer left pending.
CLAIM_EVERY_S = 10.0
#: Seconds to wait after PostgreSQL or Redis failed before trying again.
RETRY_S = 2.0

Entry = tuple[str, dict[str, str] | None]


@dataclass
class ConsumeSummary:
    """What a run applied and refused."""

    applied: int = 0
    refused: int = 0
    batches: int = 0

    def line(self) -> str:
        """``applied N · refused N in B batches``."""
        return f"applied {self.applied:,} · refused {self.refused:,} in {self.batches:,} batches"


@dataclass
class StreamConsumer:
    """One consumer of a group reading usage events from ``stream`` (see the module)."""

    conn: psycopg.Connection
    #: The hot index: its Redis holds the stream, and takes the entities' new usage.
    hot: HotIndex
    stream: str
    group: str
    consumer: str
    usage: UsageSettings
    count: int = DEFAULT_COUNT
    block_ms: int = DEFAULT_BLOCK_MS
    claim_idle_ms: int = DEFAULT_CLAIM_IDLE_MS
    #: Opens a new connection when PostgreSQL closed the one held.
    reconnect: Callable[[], psycopg.Connection] | None = None
    summary: ConsumeSummary = field(default_factory=ConsumeSummary)
    _next_claim: float = 0.0
    _next_round: float = 0.0

    @property
    def client(self) -> redis.Redis:
        """The Redis that holds the stream."""
        return self.hot.client

    def ensure_group(self) -> None:
        """Make the group (reading from the stream's start), and the stream, when missing."""
        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read(self, start: str, block_ms: int | None) -> list[Entry]:
        """Entries of the group: ``0`` this consumer's pending ones, ``>`` new ones."""
        reply = self.client.xreadgroup(
            self.group, self.consumer, {self.stream: start}, count=self.count, block=block_ms
        )
        return [entry for _, entries in reply or [] for entry in entries]

    def claim(self) -> list[Entry]:
        """Entries other consumers left pending for ``claim_idle_ms`` or more, now this one's."""
        claimed: list[Entry] = []
        cursor = "0-0"
        while len(claimed) < self.count:
            reply = self.client.xautoclaim(
                self.stream, self.group, self.consumer, self.claim_idle_ms, cursor,
                count=self.count - len(claimed),
            )  # fmt: skip
            cursor, entries = reply[0], reply[1]
            claimed += entries
            for deleted in reply[2] if len(reply) > 2 else []:
                # Deleted before it was acknowledged: nothing to apply.
                self.client.xack(self.stream, self.group, deleted)
            if cursor == "0-0":
                break
        return claimed

    def apply(self, entries: Sequence[Entry]) -> EventBatch:
        """Apply the entries' events, log the refused ones, then acknowledge and delete them all."""
        ids = [entry_id for entry_id, _ in entries]
        items = [fields or {} for _, fields in entries]
        batch = receive_events(self.conn, self.hot, items, self.usage, time.time())
        for error in batch.errors:
            log.warning("stream %s entry %s refused: %s (%s)", self.stream, ids[error.index],
                        error.reason, error.param)  # fmt: skip
        with self.client.pipeline(transaction=True) as pipe:
            pipe.xack(self.stream, self.group, *ids)
            pipe.xdel(self.stream, *ids)
            pipe.execute()
        self.summary.applied += len(batch.events)
        self.summary.refused += len(batch.errors)
        self.summary.batches += 1
        return batch

    def step(self, pending: bool) -> tuple[bool, int]:
        """Read and apply one batch: this consumer's pending entries while ``pending``, else
        entries claimed from dead consumers, else new ones. (pending still?, entries)."""
        if pending:
            entries = self.read("0", None)
            pending = bool(entries)
        else:
            entries = []
            if time.monotonic() >= self._next_claim:
                self._next_claim = time.monotonic() + CLAIM_EVERY_S
                entries = self.claim()
            entries = entries or self.read(">", self.block_ms)
        if entries:
            self.apply(entries)
        if self.usage.round_s > 0 and time.monotonic() >= self._next_round:
            self._next_round = time.monotonic() + self.usage.round_s
            apply_round(
                self.conn, self.hot, wait=False, spacing_s=round_spacing(self.usage.round_s)
            )
        return pending, len(entries)

    def run(self, stop: Event, *, until_empty: bool = False) -> ConsumeSummary:
        """Consume until ``stop`` is set (or, ``until_empty``, until a read finds nothing).

        A failure of PostgreSQL or Redis is logged and the batch tried again (its
        entries stay pending) after :data:`RETRY_S`.
        """
        self.ensure_group()
        pending = True
        while not stop.is_set():
            was_pending = pending
            try:
                pending, read = self.step(pending)
            except (psycopg.OperationalError, redis.ConnectionError, redis.TimeoutError) as exc:
                log.error("consuming %s failed (%s): trying again", self.stream, exc)
                pending = True
                stop.wait(RETRY_S)
                self._reconnect_if_closed()
                continue
            if until_empty and not was_pending and not read:
                break
        if self.usage.round_s > 0:
            self._last_round()
        return self.summary

    def _last_round(self) -> None:
        """Count what this consumer stored before it stops (after any round under way)."""
        try:
            apply_round(self.conn, self.hot, wait=True)
        except (psycopg.Error, redis.RedisError) as exc:
            log.error("the last round failed (%s): the next round of another process counts"
                      " the events", exc)  # fmt: skip

    def _reconnect_if_closed(self) -> None:
        if self.reconnect is not None and (self.conn.closed or self.conn.broken):
            try:
                self.conn = self.reconnect()
            except psycopg.OperationalError as exc:
                log.error("PostgreSQL is not reachable (%s)", exc)
