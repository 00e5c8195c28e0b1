"""The hot index in Redis: applying changes, rebuilding from PostGIS, verifying.

PostGIS is the truth; everything here can be thrown away and rebuilt.  The key
layout is in :mod:`indexer.hot.layout`; writes go through ``apply.lua`` so that each
entity's change (a move from one cell to another included) is atomic and
revision-gated.  A rebuild fills a fresh generation in bulk (:mod:`indexer.hot.fill`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property, lru_cache
from importlib import resources
from itertools import islice
from typing import Any

import h3.api.basic_int as h3i
import psycopg
import redis
from psycopg.rows import dict_row

from indexer.hot import layout
from indexer.model import INDEX_RESOLUTIONS, TAG_RES
from indexer.telemetry import BuildRecorder, telemetry_prefix

#: Columns of an entity row as the hot index reads them from PostGIS.
ENTITY_COLUMNS = (
    "id, kind, name, category, mini_app, lat, lng, h3, popularity, available, capacity,"
    " opening_hours, tz, attrs, source, rev, updated_at, seen_at"
)
#: Records per script call: large enough to amortise the call, small enough
#: that one call does not hold Redis for long (a query waits behind a running
#: script).  With 100,000 bikes a move costs 100-150 µs of Redis time: calls of
#: 10 moves made the query p99 under updates 11-20 ms instead of 18-29 ms, for
#: 12-15 % fewer updates a second (docs/bench-live.md).
APPLY_BATCH = 10
#: Script calls sent per round trip (Redis serves other clients between them).
PIPELINE_CALLS = 20
#: Records per script call for bulk writes (imports, rebuilds): the script
#: gathers a batch's writes per key, so larger batches cost less per entity;
#: with a million entities indexed, 250 records take about 12 ms of Redis time,
#: which a query may wait behind.
BULK_BATCH = 250


#: Make generation ARGV[1] current if it is still the one building; return the
#: generation it replaces ('' when none), or nil when another build took its place.
SWITCH = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return nil end
local old = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return old or ''
"""
#: Renew the building mark of generation ARGV[1] for ARGV[2] ms, if it is still its own.
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
#: How long a build's mark lasts unless its builder renews it (a thread of the
#: build does, every third of it): a builder that dies stops holding every write
#: to a generation that nobody will finish, and stops keeping large writes
#: from filling generations of their own.
BUILD_LEASE_MS = 30_000
#: Mark a new generation (the counter's next number) building for ARGV[1] ms and
#: return it; nil when not marked.  ARGV[2]: 'over' (in place of any build
#: running), 'alone' (unless one runs) or 'missing' (unless one runs or a
#: generation is current: the check and the mark in one step, so that of the
#: processes that find the index missing at once, one builds).
CLAIM = """
if ARGV[2] ~= 'over' and redis.call('EXISTS', KEYS[2]) == 1 then return false end
if ARGV[2] == 'missing' and redis.call('EXISTS', KEYS[1]) == 1 then return false end
local new = redis.call('INCR', KEYS[3])
redis.call('SET', KEYS[2], new, 'PX', ARGV[1])
return tostring(new)
"""
#: Stop marking generation ARGV[1] as building (unless another build has taken its place).
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""


class HotIndexMissing(RuntimeError):
    """Redis holds no generation of the index (the next write or healing check builds one)."""


class RebuildSuperseded(RuntimeError):
    """Another rebuild started while this one ran; its generation becomes current."""


@dataclass(frozen=True, slots=True)
class Difference:
    """One way in which Redis disagrees with PostGIS."""

    id: str
    problem: str

    def __str__(self) -> str:
        return f"{self.id}: {self.problem}"


def connect_redis(url: str) -> redis.Redis:
    """A Redis client that decodes replies as text and fails fast when Redis is down."""
    return redis.Redis.from_url(
        url, decode_responses=True, socket_connect_timeout=1.0, socket_timeout=5.0
    )


def raw_client(client: redis.Redis) -> redis.Redis:
    """A client of the same server that leaves replies as bytes (members are binary)."""
    kwargs = {**client.connection_pool.connection_kwargs, "decode_responses": False}
    pool = redis.ConnectionPool(connection_class=client.connection_pool.connection_class, **kwargs)
    return redis.Redis(connection_pool=pool)


def chunked(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Lists of up to ``size`` items, in order."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def place_of(lat: float, lng: float) -> str:
    """Where (lat, lng) goes, as loc holds it: "tag cell" per indexed resolution.

    The same cells as :func:`indexer.hot.layout.placement_of` (the cell containing
    the point at each resolution), through h3's integer API, which is cheaper.
    """
    parts = []
    for res in INDEX_RESOLUTIONS:
        cell = h3i.latlng_to_cell(lat, lng, res)
        parts.append(format(h3i.cell_to_parent(cell, TAG_RES), "x"))
        parts.append(format(cell, "x"))
    return " ".join(parts)


# What json.dumps(..., ensure_ascii=False) writes a string with.
_json_string = json.encoder.encode_basestring


def json_scalar(value: Any) -> str:
    """``value`` as json.dumps writes it (compact, non-ASCII kept)."""
    if value is None:
        return "null"
    kind = type(value)
    if kind is str:
        return _json_string(value)
    if kind is float:
        return float.__repr__(value)
    if kind is int:
        return int.__repr__(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@lru_cache(maxsize=65536)
def compact_json(text: str) -> str:
    """JSON text (as PostgreSQL prints jsonb) rewritten the way json.dumps writes it."""
    return json.dumps(json.loads(text), ensure_ascii=False, separators=(",", ":"))


def attrs_json(row: Mapping[str, Any]) -> str:
    """The row's attrs as compact JSON: from ``attrs_json`` (jsonb as text) or ``attrs``."""
    text = row.get("attrs_json")
    if text is not None:
        return compact_json(text)
    return json_scalar(row.get("attrs"))


@lru_cache(maxsize=4096)
def iso_time(moment: datetime) -> str:
    """``moment.isoformat()`` as a JSON string; a batch's rows share a few times."""
    return _json_string(moment.isoformat())


def json_time(moment: datetime | None) -> str:
    """A time as layout's display document writes it (ISO 8601, or null)."""
    return "null" if moment is None else iso_time(moment)


def display_json(row: Mapping[str, Any]) -> str:
    """:func:`indexer.hot.layout.display_document`, byte for byte, written without a dict.

    A move re-sends each entity's whole document; writing it in one format
    string (attrs rewritten once per distinct text, times once per distinct
    time) costs a fraction of json.dumps. The field order is
    layout.DISPLAY_FIELDS then updated_at, seen_at; a test pins the equality.
    """
    return (
        f'{{"id":{_json_string(row["id"])},"kind":{_json_string(row["kind"])},'
        f'"name":{json_scalar(row.get("name"))},"mini_app":{json_scalar(row.get("mini_app"))},'
        f'"category":{json_scalar(row.get("category"))},'
        f'"lat":{float.__repr__(float(row["lat"]))},"lng":{float.__repr__(float(row["lng"]))},'
        f'"popularity":{float.__repr__(float(row["popularity"]))},'
        f'"available":{json_scalar(row.get("available"))},'
        f'"capacity":{json_scalar(row.get("capacity"))},'
        f'"opening_hours":{json_scalar(row.get("opening_hours"))},'
        f'"tz":{json_scalar(row.get("tz"))},"source":{json_scalar(row.get("source"))},'
        f'"attrs":{attrs_json(row)},"updated_at":{json_time(row.get("updated_at"))},'
        f'"seen_at":{json_time(row.get("seen_at"))}}}'
    )


def upsert_record(row: Mapping[str, Any]) -> list[Any]:
    """The apply.lua record for an entity row that is new or changed."""
    return [
        "u",
        row["id"],
        row["rev"],
        place_of(row["lat"], row["lng"]),
        repr(float(row["popularity"])),
        layout.member_of(row),
        display_json(row),
    ]


def delete_record(entity_id: str, rev: int) -> list[Any]:
    """The apply.lua record for an entity deleted at revision ``rev``."""
    return ["d", entity_id, rev, "", "0", "", ""]


class HotIndex:
    """The hot index of one deployment: a Redis client and a key prefix."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        #: Every key of this index starts with it (the layout is part of it).
        self.prefix = layout.layout_prefix(prefix)
        source = resources.files("indexer.hot").joinpath("apply.lua").read_text()
        self._apply = client.register_script(source)
        self._switch = client.register_script(SWITCH)
        self._release = client.register_script(RELEASE)
        self._renew = client.register_script(RENEW)
        self._claim = client.register_script(CLAIM)

    @cached_property
    def raw(self) -> redis.Redis:
        """The same server, replies left as bytes: set members are binary."""
        return raw_client(self.client)

    def close(self) -> None:
        """Close both clients' connections."""
        if "raw" in self.__dict__:
            self.raw.close()
        self.client.close()

    # -- generations -------------------------------------------------------

    def generation(self) -> str | None:
        """The current generation, or None when there is no hot index."""
        value = self.client.get(layout.gen_key(self.prefix))
        return None if value is None else str(value)

    def require_generation(self) -> str:
        """The current generation; HotIndexMissing when there is none."""
        gen = self.generation()
        if gen is None:
            raise HotIndexMissing("Redis holds no index generation")
        return gen

    # -- writes ------------------------------------------------------------

    def apply(
        self, records: Iterable[list[Any]], *, target: str = "live", batch: int = APPLY_BATCH
    ) -> int:
        """Apply apply.lua records; return how many were newer than what Redis held.

        ``batch`` records go in one script call.  Returns -1 when Redis holds no
        generation to write to (nothing written).
        """
        applied = 0
        for calls in chunked(chunked(records, batch), PIPELINE_CALLS):
            pipe = self.client.pipeline(transaction=False)
            for call in calls:
                args = [self.prefix, target]
                for record in call:
                    args.extend(record)
                self._apply(keys=[], args=args, client=pipe)
            for result in pipe.execute():
                if int(result) < 0:
                    return -1
                applied += int(result)
        return applied

    def apply_rows(self, rows: Iterable[Mapping[str, Any]], *, target: str = "live") -> int:
        """Apply new or changed entity rows (dicts with :data:`ENTITY_COLUMNS`)."""
        return self.apply((upsert_record(row) for row in rows), target=target)

    def apply_row_batches(
        self, batches: Iterable[Sequence[Mapping[str, Any]]], *, target: str = "live"
    ) -> int:
        """Apply batches of entity rows in bulk; return how many applied, or -1.

        One batch is sent to Redis (a thread waiting on the socket) while the
        next one is read and its records built, so that Redis running the script
        and Python building records overlap.  -1: Redis holds no generation.
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
        self, conn: psycopg.Connection, progress: Callable[[int], None] | None = None
    ) -> int:
        """Fill a fresh generation from PostGIS, then make it current.

        Safe while queries and writes run: queries read the old generation until
        the switch; writes meanwhile go to both (see apply.lua and
        :mod:`indexer.hot.fill`).  Returns the number of entities indexed;
        RebuildSuperseded when another rebuild started meanwhile (its generation
        is the one that becomes current).
        """
        from indexer.hot.fill import fill_generation

        count = self.build(lambda gen: fill_generation(self, conn, gen, progress), alone=False)
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
        from indexer.hot.fill import fill_generation

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
        claimed = self._claim(
            keys=[*keys, layout.counter_key(self.prefix)], args=[BUILD_LEASE_MS, mode]
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
        """
        base = self.prefix[: -len(layout.LAYOUT) - 1]
        ours = (self.prefix + ":", telemetry_prefix(self.prefix) + ":")
        return self.unlink(
            key for key in self.client.scan_iter(match=f"{base}:*", count=1000)
            if not key.startswith(ours)
        )  # fmt: skip

    def drop_matching(self, pattern: str) -> int:
        """UNLINK the keys matching ``pattern``; return how many."""
        return self.unlink(self.client.scan_iter(match=pattern, count=1000))

    def unlink(self, keys: Iterable[str]) -> int:
        """UNLINK ``keys`` in batches of 1,000; return how many existed."""
        return sum(int(self.client.unlink(*batch)) for batch in chunked(keys, 1000))

    def verify(self, conn: psycopg.Connection) -> list[Difference]:
        """Every difference between PostGIS and the current generation."""
        from indexer.hot.verify import verify_generation

        gen = self.generation()
        if gen is None:
            return [Difference("*", "Redis holds no index generation")]
        return verify_generation(self, gen, conn)


def _add_applied(applied: int, pending: Future[int] | None) -> int:
    """``applied`` plus what a sent batch applied (its error raised); -1 stays -1."""
    if pending is None:
        return applied
    result = pending.result()
    return -1 if applied < 0 or result < 0 else applied + result


def stream_entities(
    conn: psycopg.Connection, where: str = "", params: Mapping[str, Any] | None = None
) -> Iterator[list[dict[str, Any]]]:
    """Entity rows from PostGIS in batches, through a server-side cursor."""
    with conn.transaction(), conn.cursor(name="nearby_stream", row_factory=dict_row) as cur:
        cur.itersize = 5000
        # attrs as jsonb's text: rewritten once per distinct text (compact_json)
        # instead of parsed into a dict and dumped again for every row.
        columns = ", ".join(
            "entities.attrs::text AS attrs_json" if name.strip() == "attrs" else f"entities.{name}"
            for name in map(str.strip, ENTITY_COLUMNS.split(","))
        )
        cur.execute(f"SELECT {columns} FROM entities {where}", params or {})
        while rows := cur.fetchmany(5000):
            yield rows
