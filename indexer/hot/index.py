"""The hot index in Redis: applying changes, rebuilding from PostGIS, verifying.

PostGIS is the truth; everything here can be thrown away and rebuilt.  The key
layout is in :mod:`indexer.hot.layout`, what each entity is stored as in
:mod:`indexer.hot.encoding`; writes go through ``apply.lua`` so that each
entity's change (a move from one cell to another included) is atomic and
revision-gated.  A rebuild fills a fresh generation in bulk (:mod:`indexer.hot.fill`).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
import redis
from psycopg.rows import dict_row

from indexer.hot import layout
from indexer.hot.client import HotClient, chunked, connect_redis
from indexer.hot.encoding import delete_record, upsert_record
from indexer.hot.fill import fill_generation
from indexer.hot.verify import Difference, verify_generation
from indexer.replica import scan_connection
from indexer.settings import DEFAULT_HALF_LIFE_S
from indexer.telemetry import BuildRecorder, telemetry_prefix

__all__ = [
    "ENTITY_COLUMNS",
    "row_columns",
    "Difference",
    "HotIndex",
    "RebuildSuperseded",
    "chunked",
    "connect_redis",
    "delete_record",
    "stream_entities",
    "upsert_record",
]

#: Columns of an entity row as the hot index reads them from PostGIS.
ENTITY_COLUMNS = (
    "id, kind, name, category, mini_app, lat, lng, h3, popularity, available, capacity,"
    " opening_hours, tz, attrs, source, rev, updated_at, seen_at, usage_mass, search_text"
)


def row_columns(table: str = "e") -> str:
    """:data:`ENTITY_COLUMNS` of ``table`` as a select list, attrs as jsonb's text
    (``attrs_json``: rewritten once per distinct text by the encoder, cheaper than
    parsing it into a dict and dumping it again for every row)."""
    return ", ".join(
        f"{table}.attrs::text AS attrs_json" if name == "attrs" else f"{table}.{name}"
        for name in map(str.strip, ENTITY_COLUMNS.split(","))
    )


#: Records per script call for bulk writes (imports, rebuilds): the script
#: gathers a batch's writes per key, so larger batches cost less per entity,
#: but a query may wait behind a call (with a million entities indexed, one
#: of 250 records takes about 12 ms of Redis time).
BULK_BATCH = 250
#: How long a build's mark lasts unless its builder renews it (a thread of the
#: build does, every third of it): a builder that dies stops holding every write
#: to a generation that nobody will finish, and stops keeping large writes
#: from filling generations of their own.
BUILD_LEASE_MS = 30_000


class RebuildSuperseded(RuntimeError):
    """Another rebuild started while this one ran; its generation becomes current."""


class HotIndex(HotClient):
    """The hot index of one deployment: its writes, its generations and their repair."""

    def __init__(
        self, client: redis.Redis, prefix: str, half_life_s: float = float(DEFAULT_HALF_LIFE_S)
    ) -> None:
        super().__init__(client, prefix, half_life_s)
        self._switch = self.script("switch.lua")
        self._release = self.script("release.lua")
        self._renew = self.script("renew.lua")
        self._claim = self.script("claim.lua")

    # -- writes ------------------------------------------------------------

    def apply_rows(self, rows: Iterable[Mapping[str, Any]], *, target: str = "live") -> int:
        """Apply new or changed entity rows (dicts with :data:`ENTITY_COLUMNS`)."""
        return self.apply((upsert_record(row) for row in rows), target=target)

    def apply_row_batches(
        self, batches: Iterable[Sequence[Mapping[str, Any]]], *, target: str = "live"
    ) -> int:
        """Apply batches of entity rows in bulk; return how many applied
        (:class:`NoGeneration` raised when Redis holds no generation).

        One batch is sent to Redis (a thread waiting on the socket) while the
        next one is read and its records built, so that Redis running the script
        and Python building records overlap.
        """
        applied = 0
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hot-apply") as sender:
            pending: Future[int] | None = None
            for rows in batches:
                records = [upsert_record(row) for row in rows]
                applied = _add_applied(applied, pending)
                pending = sender.submit(self.apply, records, target=target, batch=BULK_BATCH)
            return _add_applied(applied, pending)

    def apply_deletes(self, deleted: Iterable[tuple[str, int]]) -> int:
        """Apply deletions given as (id, rev) pairs."""
        return self.apply(delete_record(entity_id, rev) for entity_id, rev in deleted)

    # -- repair ------------------------------------------------------------

    def rebuild(
        self,
        conn: psycopg.Connection,
        progress: Callable[[int], None] | None = None,
        replica: psycopg.Connection | None = None,
        replica_wait_s: float = 0.0,
    ) -> int:
        """Fill a fresh generation from PostGIS, then make it current.

        Safe while queries and writes run: queries read the old generation until
        the switch; writes meanwhile go to both (see apply.lua and
        :mod:`indexer.hot.fill`).  With a ``replica`` of ``conn``'s server, the
        snapshot is taken there once it has replayed what the primary had
        committed when the generation was marked (waiting at most
        ``replica_wait_s``, else it is taken on ``conn``).  Returns the number of
        entities indexed; RebuildSuperseded when another rebuild started
        meanwhile (its generation is the one that becomes current).
        """

        def fill(gen: str) -> int:
            reader = scan_connection(conn, replica, replica_wait_s)
            return fill_generation(self, reader, gen, progress)

        count = self.build(fill, alone=False)
        if count is None:
            raise RebuildSuperseded(
                "another rebuild started meanwhile: its generation becomes current when it ends"
            )
        return count

    def rebuild_alone(
        self,
        conn: psycopg.Connection,
        progress: Callable[[int], None] | None = None,
        deleted: Iterable[Sequence[tuple[str, int]]] = (),
        *,
        missing: bool = False,
    ) -> int | None:
        """:meth:`rebuild`, unless another one is running or starts before this one ends
        (with ``missing``: also unless a generation is current).

        None then: this one changes nothing (its generation is dropped).
        ``deleted``: batches of (id, rev) that a write has just deleted, whose
        tombstones the new generation keeps (as applying the deletions would).
        """
        return self.build(
            lambda gen: fill_generation(self, conn, gen, progress, deleted),
            alone=True,
            missing=missing,
        )

    def build(
        self, fill: Callable[[str], int], *, alone: bool, missing: bool = False
    ) -> int | None:
        """Mark a new generation building, ``fill(gen)`` it, switch; None if another build won.

        The generation is marked before ``fill`` takes its snapshot, so that every
        write the snapshot misses reaches it.  With ``alone``, nothing is marked
        (and None returned) while another build runs; with ``missing`` too, nor
        while a generation is current.  On any error the new generation is
        dropped and the current one stays as it was.  Every build marked is
        counted with its outcome (:class:`indexer.telemetry.BuildRecorder`).
        """
        keys = [layout.gen_key(self.prefix), layout.building_key(self.prefix)]
        mode = "missing" if missing else "alone" if alone else "over"
        factor = repr(self.new_bound_factor(time.time()))
        claimed = self._claim(
            keys=[*keys, layout.counter_key(self.prefix)],
            args=[BUILD_LEASE_MS, mode, self.prefix, factor],
        )
        if claimed is None:
            return None
        new = str(claimed)
        recorder = BuildRecorder(self.client, self.prefix, new)
        try:
            with self._leased(new):
                count = fill(new)
            old = self._switch(keys=keys, args=[new])
        except BaseException:
            recorder.finished("failed")
            with suppress(redis.RedisError):
                self._release(keys=keys[1:], args=[new])
                self.drop_generation(new)
            raise
        if old is None:
            recorder.finished("superseded")
            self.drop_generation(new)
            return None
        recorder.finished("ok")
        if old and old != new:
            self.drop_generation(old)
        return count

    @contextmanager
    def _leased(self, gen: str) -> Iterator[None]:
        """Renew generation ``gen``'s building mark from a thread while inside."""
        stop = threading.Event()
        building = layout.building_key(self.prefix)

        def renew() -> None:
            while not stop.wait(BUILD_LEASE_MS / 3000):
                with suppress(redis.RedisError):
                    self._renew(keys=[building], args=[gen, BUILD_LEASE_MS])

        renewer = threading.Thread(target=renew, name="build-lease", daemon=True)
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join()

    def drop_stale_generations(self) -> int:
        """Delete the keys of generations older than the current one but the building
        one (what builds that died left); return how many.

        Only older ones: a build that starts meanwhile takes a newer number.
        """
        current, building = self.generation(), self.client.get(layout.building_key(self.prefix))
        if current is None:
            return 0
        start = self.prefix + ":"

        def stale(key: str) -> bool:
            gen = key[len(start) :].partition(":")[0]
            return gen.isdigit() and int(gen) < int(current) and gen != building

        return self.unlink(
            key for key in self.client.scan_iter(match=start + "*", count=1000) if stale(key)
        )

    def drop_generation(self, gen: str) -> int:
        """Delete every key of generation ``gen``; return how many."""
        return self.drop_matching(f"{self.prefix}:{gen}:*")

    def drop_all(self) -> int:
        """Delete every key of this deployment's prefix and layout, and its telemetry (tests)."""
        return self.drop_matching(f"{self.prefix}:*") + self.drop_matching(
            telemetry_prefix(self.prefix) + ":*"
        )

    def drop_other_layouts(self) -> int:
        """Delete what this deployment's prefix holds in any other layout; return how many keys.

        An upgrade that changes the layout leaves the old one's keys behind
        (nothing reads them: queries answer from PostGIS until ``cache
        rebuild``). Prefixes cannot hold ':', so every key under
        ``{prefix}:`` is this deployment's; those outside ``{prefix}:{LAYOUT}:``
        belong to other layouts, but for its telemetry (:mod:`indexer.telemetry`).
        Only keys shaped as an index's are taken (:data:`_LAYOUT_KEY`): the
        mini-app catalog (:func:`indexer.hot.layout.catalog_key`), or a stream a
        platform named under the prefix, is no layout's and stays.
        """
        base = self.prefix[: -len(layout.LAYOUT) - 1]
        ours = (self.prefix + ":", telemetry_prefix(self.prefix) + ":")
        return self.unlink(
            key for key in self.client.scan_iter(match=f"{base}:*", count=1000)
            if not key.startswith(ours) and _LAYOUT_KEY.match(key, len(base) + 1)
        )  # fmt: skip

    def drop_matching(self, pattern: str) -> int:
        """UNLINK the keys matching ``pattern``; return how many."""
        return self.unlink(self.client.scan_iter(match=pattern, count=1000))

    def unlink(self, keys: Iterable[str]) -> int:
        """UNLINK ``keys`` in batches of 1,000; return how many existed."""
        return sum(int(self.client.unlink(*batch)) for batch in chunked(keys, 1000))

    def verify(self, conn: psycopg.Connection) -> list[Difference]:
        """Every difference between PostGIS and the current generation."""
        gen = self.generation()
        if gen is None:
            return [Difference("*", "Redis holds no index generation")]
        return verify_generation(self, gen, conn)


#: What follows ``{prefix}:`` in a key of an index of any layout: a generation's
#: keys (``3:loc``), the generation, lease and counter keys of the bare prefix, or
#: anything under a layout's name (``r5.7.9.11:…``, ``l2.r5.7.9.11:…``).
_LAYOUT_KEY = re.compile(r"(?:gen|gens|building|heal)$|[0-9]+:|[lr][0-9][0-9a-z.]*:")


def _add_applied(applied: int, pending: Future[int] | None) -> int:
    """``applied`` plus what a sent batch applied (its error raised)."""
    return applied if pending is None else applied + pending.result()


def stream_entities(
    conn: psycopg.Connection, where: str = "", params: Mapping[str, Any] | None = None
) -> Iterator[list[dict[str, Any]]]:
    """Entity rows from PostGIS in batches, through a server-side cursor."""
    with conn.transaction(), conn.cursor(name="nearby_stream", row_factory=dict_row) as cur:
        cur.itersize = 5000
        cur.execute(f"SELECT {row_columns('entities')} FROM entities {where}", params or {})
        while rows := cur.fetchmany(5000):
            yield rows
