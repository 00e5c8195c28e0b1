"""Filling a generation of the hot index in bulk, from one PostGIS snapshot.

A rebuild (and a write that changes most of the index) fills a fresh generation, marked
``building``, with its writes gathered per key instead of one apply.lua record per entity:
in each transaction, every cell set's new members (and the sets' tops) in one call of
fill_sets.lua, each group's members and documents in one HSET each, loc in one HSET. Rows
stream in H3 order, so that neighbours, which share cell sets, are written together.

Writes that run meanwhile go to the building generation too (apply.lua, gated by revision);
the fill must never undo one. Every record that apply.lua applies writes the generation's
loc, so each transaction of the fill WATCHes loc, reads (HMGET) which of its ids loc already
holds, and writes only the others, in MULTI/EXEC: if a live write touches loc in between,
EXEC fails and the batch is tried again. An id that loc already holds was put there by a
live write; its snapshot row goes through apply.lua instead, which keeps the newer of the
two by revision (and moves it out of the cells the older one named). Once written, an id is
in exactly the cells and groups its loc names, so later live writes apply to it by revision
as usual. A write that the snapshot misses commits after the snapshot was taken, so after
``building`` was set: its writer applies it to the building generation, before the fill
reaches its id (then kept) or after (then applied on top).
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, contextmanager
from typing import Any

import h3.api.basic_int as h3i
import psycopg
from psycopg.rows import tuple_row

from indexer.hot import encoding, layout
from indexer.hot.client import HotClient
from indexer.hot.encoding import compact_json, delete_record
from indexer.hot.fill_batch import CellNames, FillBatch, FillEntity, gather, pack, packed_command

#: Columns read per entity, in the order :func:`fill_entity` unpacks them.
FILL_COLUMNS = (
    "id, kind, name, category, mini_app, lat, lng, popularity, available, capacity,"
    " opening_hours, tz, attrs::text, source, rev, updated_at, seen_at, usage_mass, search_text,"
    " name_words, category_words"
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


class FillNames(dict[int, CellNames]):
    """What the fill writes again and again, made once: the names of each cell
    (given as an integer), kept for a while once made."""

    def __init__(self, prefix: str, gen: str, bound_factor: float = 1.0) -> None:
        super().__init__()
        self.base = layout.generation_base(prefix, gen)
        self.bound_factor = bound_factor  # the generation's: the sets' scores are made with it

    def __missing__(self, cell: int) -> CellNames:
        if len(self) >= CELL_NAMES_KEPT:
            self.clear()
        tag = layout.tag_of_cell(cell)
        hexed = format(cell, "x")
        group = layout.group_of(self.base, tag)
        tops = group + layout.tops_field(h3i.get_resolution(cell))
        names = self[cell] = CellNames(
            f"{tag} {hexed}", group + layout.CELL_SET + hexed, tops, hexed, group
        )
        return names


def fill_entity(row: Sequence[Any], names: FillNames) -> FillEntity:
    """What the fill writes for a row of :data:`FILL_COLUMNS`: the same place, member
    and document as :func:`indexer.hot.encoding.upsert_record`, from a tuple."""
    (eid, kind, name, category, mini_app, lat, lng, popularity, available, capacity,
     hours, tz, attrs, source, rev, updated_at, seen_at, mass, search_text, name_words,
     category_words) = row  # fmt: skip
    member = encoding.member(
        eid,
        kind,
        lat,
        lng,
        popularity,
        rev,
        (available, seen_at, source, mini_app, category),
        mass,
    )
    display = encoding.document(
        (eid, kind, name, mini_app, category, lat, lng, popularity, available, capacity,
         hours, tz, source, updated_at, seen_at),
        compact_json(attrs),
    )  # fmt: skip
    cells = tuple([names[cell] for cell in encoding.cells_of(lat, lng)])
    groups = tuple(dict.fromkeys([names.group for names in cells]))
    place = " ".join([names.word for names in cells])
    score = float.__repr__(layout.bound_of(popularity, mass, names.bound_factor))
    text = encoding.text_entry(name, category, search_text, mini_app, (name_words, category_words))
    terms = encoding.text_terms(text)
    carriers = tuple(encoding.text_carriers(text).items())
    branch = mini_app if mini_app and layout.in_branches(lat) else ""
    return FillEntity(
        eid, rev, place, score, member, display, cells, groups, text, terms, carriers, branch
    )


def tombstone(entity_id: str, rev: int) -> FillEntity:
    """What the fill writes for an id deleted at revision ``rev``: loc's tombstone only."""
    return FillEntity(entity_id, rev, "", "", b"", "", (), ())


def apply_record(entity: FillEntity) -> list[Any]:
    """The apply.lua record of a fill entity (as :func:`indexer.hot.encoding.upsert_record`)."""
    if not entity.place:
        return delete_record(entity.id, entity.rev)
    return ["u", entity.id, entity.rev, entity.place, entity.text, entity.member, entity.display]


class FillSender:
    """Writes batches of fill entities into one generation, never over a live write.

    As a context manager, :meth:`write` hands batches to a thread of its own
    (at most :data:`IN_FLIGHT` waiting) and leaving waits for them all.
    """

    def __init__(self, hot: HotClient, gen: str) -> None:
        self.hot = hot
        self.gen = gen
        self.loc = layout.loc_key(hot.prefix, gen)
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
        ids = [entity.id for entity in batch.entities]
        for _ in range(WATCH_TRIES):
            with self.hot.client.pipeline(transaction=True) as pipe:
                held = self.watch(pipe, ids)
                packed = pack(gather(batch.entities, self.loc, held)) if held else batch.packed
                if self.commit(pipe, packed):
                    break
        else:
            held = frozenset(ids)
        if held:
            records = [apply_record(entity) for entity in batch.entities if entity.id in held]
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
#: servers are not kept waiting.
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
    hot: HotClient,
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
    names = FillNames(hot.prefix, gen, hot.bound_factor(gen))
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
