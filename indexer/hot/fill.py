"""Filling a generation of the hot index in bulk, from one PostGIS snapshot.

A rebuild (and a write that changes most of the index) fills a fresh generation,
marked ``building``, with its writes gathered per key instead of one apply.lua
record per entity: in each transaction, every cell set's new members (and the
sets' tops) in one call of :data:`ZADDS`, each group's members and documents in
one HSET each, loc in one HSET.  Rows
stream in H3 order, so that neighbours, which share cell sets, are written
together.

Writes that run meanwhile go to the building generation too (apply.lua, gated
by revision); the fill must never undo one.  Every record that apply.lua
applies writes the generation's loc, so each transaction of the fill WATCHes
loc, reads (HMGET) which of its ids loc already holds, and writes only the
others, in MULTI/EXEC: if a live write touches loc in between, EXEC fails and
the batch is tried again.  An id that loc already holds was put there by a live
write; its snapshot row goes through apply.lua instead, which keeps the newer
of the two by revision (and moves it out of the cells the older one named).
Once written, an id is in exactly the cells and groups its loc names, so later
live writes apply to it by revision as usual.  A write that the snapshot misses
commits after the snapshot was taken, so after ``building`` was set: its writer
applies it to the building generation, before the fill reaches its id (then
kept) or after (then applied on top).
"""

from __future__ import annotations

import json
import sys
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import h3.api.basic_int as h3i
import hiredis
import psycopg
from psycopg.rows import tuple_row

from indexer.hot import layout
from indexer.hot.index import compact_json, delete_record, json_scalar, json_time
from indexer.model import INDEX_RESOLUTIONS, TAG_RES

# fill_entity writes the cells of these resolutions, unrolled.
assert INDEX_RESOLUTIONS == (5, 7, 9, 11)

if TYPE_CHECKING:
    from indexer.hot.index import HotIndex

#: Columns read per entity, in the order :func:`fill_entity` unpacks them.
FILL_COLUMNS = (
    "id, kind, name, category, mini_app, lat, lng, popularity, available, capacity,"
    " opening_hours, tz, attrs::text, source, rev, updated_at, seen_at"
)
#: Entities per MULTI/EXEC: with a million entities indexed, one takes about 8 ms
#: of Redis time, which a query may wait behind.
FILL_BATCH = 500
#: Rows per fetch from PostGIS.
FETCH_ROWS = 5000
#: Tries of a transaction whose WATCH fails before its batch goes through apply.lua.
WATCH_TRIES = 4
#: Cells whose names are kept (rows come in H3 order: neighbours follow each other).
CELL_NAMES_KEPT = 1 << 16

#: Batches sent or waiting to be sent while the next rows are read and built.
IN_FLIGHT = 3

#: ZADD into many sets in one call, and set each set's top in its t hash (raising
#: the hash's '*' bound); ARGV: set key, t hash, cell, n, n score/member pairs,
#: then the next set.  A batch writes to hundreds of small cell sets: one reply
#: instead of one each.
ZADDS = """
local i = 1
local most = {}
while i <= #ARGV do
  local zkey, tkey, cell = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local last = i + 3 + 2 * tonumber(ARGV[i + 3])
  for first = i + 4, last, 4000 do
    redis.call('ZADD', zkey, unpack(ARGV, first, math.min(first + 3999, last)))
  end
  local top = redis.call('ZREVRANGE', zkey, 0, 0, 'WITHSCORES')[2]
  redis.call('HSET', tkey, cell, top)
  local value = tonumber(top)
  if not most[tkey] or value > most[tkey][1] then most[tkey] = {value, top} end
  i = last + 1
end
for tkey, top in pairs(most) do
  local bound = redis.call('HGET', tkey, '*')
  if not bound or tonumber(bound) < top[1] then redis.call('HSET', tkey, '*', top[2]) end
end
return 0
"""

_json_string = json.encoder.encode_basestring
_SEP = layout.SEP

#: What the fill writes for one entity: id, rev, place (as loc holds it, after the
#: rev), popularity, member, display document, cell set keys, group key bases.
FillEntity = tuple[str, int, str, str, bytes, str, tuple[str, ...], tuple[str, ...]]


class FillNames(dict[int, tuple[str, str, str]]):
    """What the fill writes again and again, made once: the names of each cell, a time.

    ``names[cell]`` is (loc's words "tag cell", set key, group key base) of an
    H3 cell given as an integer, kept for a while once made.  ``updated_at``
    and its JSON: a snapshot's rows share a few times, and comparing two is
    cheaper than hashing one.
    """

    def __init__(self, prefix: str, gen: str) -> None:
        super().__init__()
        self.base = f"{prefix}:{gen}:"
        self.updated_at: datetime | None = None
        self.updated_json = "null"

    def __missing__(self, cell: int) -> tuple[str, str, str]:
        if len(self) >= CELL_NAMES_KEPT:
            self.clear()
        tag = format(h3i.cell_to_parent(cell, TAG_RES), "x")
        hexed = format(cell, "x")
        group = f"{self.base}{{{tag}}}:"
        names = self[cell] = (f"{tag} {hexed}", f"{group}z:{hexed}", group)
        return names


def fill_entity(row: Sequence[Any], names: FillNames) -> FillEntity:
    """What the fill writes for a row of :data:`FILL_COLUMNS`.

    The same place, member and document as :func:`indexer.hot.index.upsert_record`
    (a test pins it), from a tuple, each float written once, and the text
    columns that the table holds NOT NULL encoded without a check for None.
    """
    (eid, kind, name, category, mini_app, lat, lng, popularity, available, capacity,
     hours, tz, attrs, source, rev, updated_at, seen_at) = row  # fmt: skip
    lat_text, lng_text, score = float.__repr__(lat), float.__repr__(lng), float.__repr__(popularity)
    available_text = "null" if available is None else int.__repr__(available)
    member = (
        _member_head(lat, lng, popularity, rev, kind, eid.encode())
        + (
            f"{_SEP}{'' if available is None else available_text}"
            f"{_SEP}{'' if seen_at is None else layout.epoch_s(seen_at)}"
            f"{_SEP}{source.replace(_SEP, ' ')}{_SEP}{mini_app.replace(_SEP, ' ')}"
            f"{_SEP}{category.replace(_SEP, ' ')}"
        ).encode()
    )
    if updated_at != names.updated_at:
        names.updated_at, names.updated_json = updated_at, json_time(updated_at)
    display = (
        f'{{"id":{_json_string(eid)},"kind":{_json_string(kind)},'
        f'"name":{_json_string(name)},"mini_app":{_json_string(mini_app)},'
        f'"category":{_json_string(category)},'
        f'"lat":{lat_text},"lng":{lng_text},"popularity":{score},'
        f'"available":{available_text},"capacity":{json_scalar(capacity)},'
        f'"opening_hours":{"null" if hours is None else _json_string(hours)},'
        f'"tz":{"null" if tz is None else _json_string(tz)},'
        f'"source":{_json_string(source)},"attrs":{compact_json(attrs)},'
        f'"updated_at":{names.updated_json},"seen_at":{json_time(seen_at)}}}'
    )
    word5, key5, group = names[h3i.latlng_to_cell(lat, lng, 5)]
    word7, key7, group7 = names[h3i.latlng_to_cell(lat, lng, 7)]
    word9, key9, group9 = names[h3i.latlng_to_cell(lat, lng, 9)]
    word11, key11, group11 = names[h3i.latlng_to_cell(lat, lng, 11)]
    if group == group7 == group9 == group11:
        groups: tuple[str, ...] = (group,)
    else:
        groups = tuple(dict.fromkeys((group, group7, group9, group11)))
    place = f"{word5} {word7} {word9} {word11}"
    return eid, rev, place, score, member, display, (key5, key7, key9, key11), groups


_member_head = layout.member_head

#: A command's words: text, or bytes for members.
Word = str | bytes


def tombstone(entity_id: str, rev: int) -> FillEntity:
    """What the fill writes for an id deleted at revision ``rev``: loc's tombstone only."""
    return entity_id, rev, "", "", b"", "", (), ()


def apply_record(entity: FillEntity) -> list[Any]:
    """The apply.lua record of a fill entity (as :func:`indexer.hot.index.upsert_record`)."""
    eid, rev, place, score, member, display, _keys, _groups = entity
    if not place:
        return delete_record(eid, rev)
    return ["u", eid, rev, place, score, member, display]


def tops_of(set_key: str) -> tuple[str, str]:
    """The t hash of a cell set's key, and the cell's field there."""
    group, _, cell = set_key.rpartition("z:")
    return f"{group}t{cell[1]}", cell


def gather(
    entities: Iterable[FillEntity], loc: str, skip: frozenset[str] = frozenset()
) -> list[list[Word]]:
    """The commands that write ``entities`` (but the ``skip`` ids) into empty places.

    Every cell set's members (and its top) in one call of :data:`ZADDS`, each
    group's member and document hashes in one HSET each, loc in one HSET.
    """
    sets: dict[str, list[Word]] = {}
    payloads: dict[str, tuple[list[Word], list[Word]]] = {}
    locs: list[Word] = ["HSET", loc]
    for eid, rev, place, score, member, display, keys, groups in entities:
        if eid in skip:
            continue
        for key in keys:
            members = sets.get(key)
            if members is None:
                sets[key] = [score, member]
            else:
                members += (score, member)
        for group in groups:
            pair = payloads.get(group)
            if pair is None:
                pair = payloads[group] = (["HSET", group + "m"], ["HSET", group + "d"])
            pair[0].extend((eid, member))
            pair[1].extend((eid, display))
        locs += (eid, f"{rev} {place}" if place else str(rev))
    if len(locs) == 2:
        return []
    commands = [zadds(sets)] if sets else []
    for held, displays in payloads.values():
        commands += (held, displays)
    commands.append(locs)
    return commands


def zadds(sets: dict[str, list[Word]]) -> list[Word]:
    """The :data:`ZADDS` call that adds each set's members (score, member, …)."""
    command: list[Word] = ["EVAL", ZADDS, "0"]
    for key, members in sets.items():
        command += (key, *tops_of(key), str(len(members) // 2))
        command += members
    return command


def pack(commands: list[list[Word]]) -> list[bytes]:
    """``commands`` in MULTI/EXEC, each in the Redis protocol."""
    return [_MULTI, *map(packed_command, commands), _EXEC]


def packed_command(command: Sequence[Word]) -> bytes:
    """One command in the Redis protocol, packed by hiredis."""
    return hiredis.pack_command(tuple(command))  # type: ignore[arg-type]  # stubs: a 1-tuple


_MULTI = packed_command(("MULTI",))
_EXEC = packed_command(("EXEC",))


@dataclass(frozen=True, slots=True)
class FillBatch:
    """Entities to write in one transaction, and that transaction packed for when
    loc holds none of them (the common case), made while the previous one is sent."""

    entities: list[FillEntity]
    packed: list[bytes]

    @classmethod
    def of(cls, entities: list[FillEntity], loc: str) -> FillBatch:
        """The batch of ``entities``, packed to write them all."""
        return cls(entities, pack(gather(entities, loc)))


class FillSender:
    """Writes batches of fill entities into one generation, never over a live write.

    As a context manager, :meth:`write` hands batches to a thread of its own
    (at most :data:`IN_FLIGHT` waiting) and leaving waits for them all.
    """

    def __init__(self, hot: HotIndex, gen: str) -> None:
        self.hot = hot
        self.gen = gen
        self.loc = layout.loc_key(hot.prefix, gen)
        #: Transactions that EXEC refused because loc changed (live writes meanwhile).
        self.retries = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hot-fill")
        self._pending: deque[Future[None]] = deque()

    def __enter__(self) -> FillSender:
        return self

    def __exit__(self, kind: type[BaseException] | None, *details: object) -> None:
        try:
            if kind is None:
                while self._pending:
                    self._pending.popleft().result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def write(self, entities: list[FillEntity]) -> None:
        """Queue ``entities`` in batches of :data:`FILL_BATCH` (the first error is raised)."""
        for first in range(0, len(entities), FILL_BATCH):
            batch = FillBatch.of(entities[first : first + FILL_BATCH], self.loc)
            while len(self._pending) >= IN_FLIGHT:
                self._pending.popleft().result()
            self._pending.append(self._pool.submit(self.send, batch))

    def send(self, batch: FillBatch) -> None:
        """Write a batch: ids loc does not hold in one transaction, the others by revision."""
        ids = [entity[0] for entity in batch.entities]
        for _ in range(WATCH_TRIES):
            with self.hot.client.pipeline(transaction=True) as pipe:
                held = self.watch(pipe, ids)
                packed = pack(gather(batch.entities, self.loc, held)) if held else batch.packed
                if self.commit(pipe, packed):
                    break
            self.retries += 1
        else:
            held = frozenset(ids)
        if held:
            records = [apply_record(entity) for entity in batch.entities if entity[0] in held]
            self.hot.apply(records, target=self.gen)

    def watch(self, pipe: Any, ids: list[str]) -> frozenset[str]:
        """WATCH loc on the pipeline's connection; the ids among ``ids`` that loc holds."""
        pipe.watch(self.loc)
        connection = pipe.connection
        connection.send_packed_command([packed_command(("HMGET", self.loc, *ids))])
        values = connection.read_response()
        return frozenset(eid for eid, value in zip(ids, values, strict=True) if value is not None)

    def commit(self, pipe: Any, packed: list[bytes]) -> bool:
        """Run a packed MULTI/EXEC under the pipeline's WATCH; False if loc changed.

        The replies are read one by one, without redis-py's per-command
        pipeline bookkeeping.
        """
        connection = pipe.connection
        try:
            connection.send_packed_command(packed)
            for _ in range(len(packed) - 1):
                connection.read_response()  # OK, then QUEUED for each command
            replies = connection.read_response()
        except BaseException:
            connection.disconnect()
            raise
        if replies is None:
            return False
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return True


#: How long a thread may hold the GIL while another waits for it, while a
#: write's threads run: a thread back from PostgreSQL or Redis with the next
#: statement ready gets it within this instead of Python's 5 ms, so that the
#: servers are not kept waiting (a re-import of a million rows: 16 s → 12.6 s).
QUICK_SWITCH_S = 0.0005
_quick_users = 0
_quick_lock = threading.Lock()
_usual_switch_s = sys.getswitchinterval()


@contextmanager
def quick_handoffs() -> Iterator[None]:
    """Let threads take turns at the GIL every :data:`QUICK_SWITCH_S` while inside."""
    global _quick_users, _usual_switch_s
    with _quick_lock:
        if _quick_users == 0:
            _usual_switch_s = sys.getswitchinterval()
            sys.setswitchinterval(min(QUICK_SWITCH_S, _usual_switch_s))
        _quick_users += 1
    try:
        yield
    finally:
        with _quick_lock:
            _quick_users -= 1
            if _quick_users == 0:
                sys.setswitchinterval(_usual_switch_s)


def fill_generation(
    hot: HotIndex,
    conn: psycopg.Connection,
    gen: str,
    progress: Callable[[int], None] | None = None,
    deleted: Iterable[Sequence[tuple[str, int]]] = (),
    chunks: Generator[list[tuple[Any, ...]], None, None] | None = None,
) -> int:
    """Write every entity of one PostGIS snapshot into ``gen``; return how many.

    ``gen`` must already be the building generation (so that live writes reach
    it) when this starts: the snapshot is taken here.  A thread sends each
    batch to Redis while the next one is read and built.  Then the tombstones
    of ``deleted`` (batches of id, rev, read after the snapshot), so that a late
    copy of an older write does not bring such an id back.  ``chunks``: lists of
    rows of :data:`FILL_COLUMNS` to write instead of the snapshot's (in H3 order).
    """
    names = FillNames(hot.prefix, gen)
    count = 0
    with quick_handoffs(), FillSender(hot, gen) as sender:
        with closing(chunks or snapshot_rows(conn)) as lists:
            for rows in lists:
                sender.write([fill_entity(row, names) for row in rows])
                count += len(rows)
                if progress:
                    progress(len(rows))
        for ids in deleted:
            sender.write([tombstone(entity_id, rev) for entity_id, rev in ids])
    return count


def snapshot_rows(
    conn: psycopg.Connection,
    query: str = f"SELECT {FILL_COLUMNS} FROM entities ORDER BY h3",
    params: Mapping[str, Any] | None = None,
) -> Generator[list[tuple[Any, ...]], None, None]:
    """The rows of ``query`` (every entity of one snapshot, in H3 order), in lists of
    :data:`FETCH_ROWS`."""
    with (
        conn.transaction(),
        conn.cursor(name="nearby_fill", row_factory=tuple_row, binary=True) as cur,
    ):
        cur.itersize = FETCH_ROWS
        cur.execute(query, params)
        while rows := cur.fetchmany(FETCH_ROWS):
            yield rows
