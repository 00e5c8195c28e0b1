"""The import of store listings: every input opened first, then each source in one write.

Every path is opened (and its format told) before anything is written, so an
input that cannot be opened writes nothing. The paths of one source go to the
writer in one call: PostGIS in one transaction, then Redis for exactly what
changed; an input that breaks part-way rolls back its source's whole write
(sources written before it, with several sources, stay).
Bad records are left out and listed in a rejects file beside the input.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psycopg

from indexer import telemetry
from indexer.hot.index import HotIndex
from indexer.jobs.failures import write_failures
from indexer.jobs.report import ImportSummary, RejectLog
from indexer.model import Entity
from indexer.progress import ProgressBar
from indexer.sources.csv import read_csv
from indexer.sources.geojson import read_geojson
from indexer.sources.inputs import detect_format, open_input
from indexer.sources.ndjson import read_ndjson
from indexer.sources.records import Record, record_to_entity
from indexer.sources.rejects import InvalidEntity
from indexer.store.errors import HotIndexUnavailable
from indexer.store.merge import Indexing, no_indexing_bar
from indexer.store.writer import write_entities

#: Suffixes that the default source name drops (``shops.csv.gz`` is ``shops``).
LISTING_SUFFIXES = (".gz", ".csv", ".tsv", ".txt", ".geojson", ".json", ".ndjson", ".jsonl")
OSM_SUFFIXES = (".pbf", ".osm")
SOURCE_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
#: What a record's position counts, by format, for the rejects file.
POSITION_UNITS = {"csv": "line", "ndjson": "line", "geojson": "feature", "osm": "element"}
READERS: Mapping[str, Callable[[IO[bytes], Mapping[str, str] | None], Iterator[Record]]] = {
    "csv": read_csv,
    "geojson": read_geojson,
    "ndjson": read_ndjson,
}
#: Records between two progress updates.
PROGRESS_STEP = 5000
#: Given a label and a total (0: unknown), a progress bar.
Bar = Callable[[str, int], ProgressBar]


@dataclass
class Listing:
    """One opened input: its records, lazily read, and where its rejects go."""

    path: str
    source: str
    format: str
    records: Iterator[Record]
    spooled: Path | None = None

    @property
    def unit(self) -> str:
        """What a position counts in this listing: line, feature or element."""
        return POSITION_UNITS[self.format]


def default_source(path: str) -> str:
    """The source named by a file: its name without listing suffixes (``Helsinki.osm.pbf``)."""
    name = Path(path).name
    lowered = name.lower()
    while True:
        suffix = next((s for s in (*LISTING_SUFFIXES, *OSM_SUFFIXES) if lowered.endswith(s)), "")
        if not suffix or len(suffix) == len(lowered):
            return name
        name, lowered = name[: -len(suffix)], lowered[: -len(suffix)]


def default_rejects_path(path: str, source: str) -> Path:
    """``NAME.rejects.csv`` beside the input (in the working directory for stdin)."""
    if path == "-":
        return Path(f"{source}.rejects.csv")
    return Path(path).with_name(f"{default_source(path)}.rejects.csv")


def spool(stream: IO[bytes], suffix: str) -> Path:
    """Copy a stream to a temporary file (osmium reads files, not pipes)."""
    with tempfile.NamedTemporaryFile(suffix=suffix, delete=False) as out:
        shutil.copyfileobj(stream, out)
    return Path(out.name)


def open_listing(path: str, source: str, file_format: str, columns: dict[str, str]) -> Listing:
    """Open one input, tell its format and start its reader.

    Raises
    ------
    UnreadableInput
        The input cannot be opened, decompressed, or read as the format.
    """
    opened = open_input(path)
    fmt = detect_format(opened.head) if file_format == "auto" else file_format
    spooled = None
    if fmt == "osm":
        osm_format = "pbf" if b"OSMHeader" in opened.head[:32] else "osm"
        if path == "-" or opened.compressed:
            spooled = spool(opened.stream, "." + osm_format)
        opened.stream.close()
        from indexer.sources.osm import read_osm

        records = read_osm(str(spooled or path), osm_format)
    else:
        records = READERS[fmt](opened.stream, columns)
    return Listing(path, source, fmt, records, spooled)


def _no_progress(count: int) -> None:
    """Progress callback that shows nothing."""


@dataclass
class Validation:
    """Turns the records of one source into entities, rejecting bad ones and repeated ids."""

    source: str
    rejects: dict[str, RejectLog]
    advance: Callable[[int], None] = _no_progress
    rejected: int = 0
    reduced: int = 0
    #: First place of each id, packed as ``listing number << 40 | position``.
    seen: dict[str, int] = field(default_factory=dict)
    listings: list[Listing] = field(default_factory=list)

    def entities(self, listings: Sequence[Listing]) -> Iterator[Entity]:
        """The valid entities of the listings, in order; each id only once."""
        for listing in listings:
            self.listings.append(listing)
            number = len(self.listings) - 1
            count = 0
            for record in listing.records:
                count += 1
                if count % PROGRESS_STEP == 0:
                    self.advance(PROGRESS_STEP)
                entity = self._entity(number, record)
                if entity is not None:
                    yield entity
            self.advance(count % PROGRESS_STEP)

    def _entity(self, number: int, record: Record) -> Entity | None:
        place = number << 40 | record.position
        try:
            entity = record_to_entity(record, self.source)
        except InvalidEntity as exc:
            self.reject(place, str(record.fields.get("id") or ""), str(exc), record.raw)
            return None
        first = self.seen.setdefault(entity.id, place)
        if first != place:
            reason = f"id twice in the input (first on {self.describe(first, number)})"
            self.reject(place, entity.id, reason, record.raw)
            return None
        self.reduced += record.reduced
        return entity

    def describe(self, place: int, number: int) -> str:
        """``line 12`` (``line 12 of shops.csv`` when in another listing than ``number``)."""
        listing = self.listings[place >> 40]
        where = f"{listing.unit} {place & ((1 << 40) - 1)}"
        return where if place >> 40 == number else f"{where} of {listing.path}"

    def reject(self, place: int, entity_id: str, reason: str, raw: object) -> None:
        """Write one rejected record to its listing's rejects file."""
        listing = self.listings[place >> 40]
        position = place & ((1 << 40) - 1)
        self.rejects[listing.path].add(listing.path, position, entity_id, reason, raw)
        self.rejected += 1

    def reject_conflicts(self, conflicts: Iterable[str]) -> None:
        """Reject the ids that another source owns (the writer left them out)."""
        for entity_id in conflicts:
            self.reject(self.seen[entity_id], entity_id, "id belongs to another source", None)


def import_source(
    conn: psycopg.Connection,
    hot: HotIndex,
    listings: Sequence[Listing],
    rejects: dict[str, RejectLog],
    *,
    replace: bool,
    advance: Callable[[int], None] = _no_progress,
    indexing: Indexing = no_indexing_bar,
) -> ImportSummary:
    """Write the listings of one source in one call of the writer; return what it did.

    On an error nothing of the source is written and the rejects files are discarded.
    """
    started = time.monotonic()
    source = listings[0].source
    validation = Validation(source, rejects, advance)
    try:
        written = write_entities(
            conn,
            hot,
            source,
            validation.entities(listings),
            replace=replace,
            indexing=indexing,
        )
    except BaseException as exc:
        conn.rollback()
        error = f"{type(exc).__name__}: {exc}"
        telemetry.record_failure(hot.client, hot.prefix, source, "stores", error)
        raise
    validation.reject_conflicts(written.conflicts)
    summary = ImportSummary(
        inserted=written.inserted,
        updated=written.updated,
        unchanged=written.unchanged,
        deleted=written.deleted,
        rejected=validation.rejected,
        reduced=validation.reduced,
        seconds=time.monotonic() - started,
        no_generation=written.no_generation,
    )
    telemetry.record_import(hot.client, hot.prefix, source, "stores", summary.rows())
    return summary


def estimate_records(path: str, fmt: str) -> int:
    """Roughly how many records a file holds, for the progress bar (0: unknown)."""
    if path == "-" or fmt == "osm":
        return 0
    marker = b'"Feature"' if fmt == "geojson" else b"\n"
    opened = open_input(path)
    count = 0
    with opened.stream as stream:
        while chunk := stream.read(1 << 20):
            count += chunk.count(marker)
    return max(count - (fmt == "csv"), 0)


def open_all(
    paths: Sequence[str], sources: Sequence[str], fmt: str, columns: dict[str, str]
) -> list[Listing]:
    """Open every input before anything is written (BadInput if one fails)."""
    with write_failures():
        return [open_listing(p, s, fmt, columns) for p, s in zip(paths, sources, strict=True)]


def make_reject_logs(listings: Sequence[Listing], rejects: str | None) -> dict[str, RejectLog]:
    """One rejects file per input, or the one ``--rejects FILE`` for all of them."""
    if rejects:
        shared = RejectLog(Path(rejects), listings[0].unit)
        return {listing.path: shared for listing in listings}
    return {
        listing.path: RejectLog(default_rejects_path(listing.path, listing.source), listing.unit)
        for listing in listings
    }


def group_by_source(listings: Sequence[Listing]) -> list[list[Listing]]:
    """The listings of each source, sources in order of first appearance."""
    groups: dict[str, list[Listing]] = {}
    for listing in listings:
        groups.setdefault(listing.source, []).append(listing)
    return list(groups.values())


def import_listings(
    conn: psycopg.Connection,
    hot: HotIndex,
    listings: Sequence[Listing],
    logs: dict[str, RejectLog],
    *,
    replace: bool,
    bar: Bar | None = None,
) -> ImportSummary:
    """Import every source's listings, each source in one write; return what they did.

    A failure is raised as the table's error (:func:`indexer.jobs.failures.write_failures`)
    and discards the rejects files, but when PostGIS has the write. With ``bar``,
    progress: one bar while a source's records are read, then one while a fresh
    generation is filled with them.
    """
    try:
        with write_failures():
            summary = ImportSummary()
            for group in group_by_source(listings):
                summary += import_group(conn, hot, group, logs, replace, bar)
            return summary
    except HotIndexUnavailable:
        commit_rejects(logs)
        raise
    except BaseException:
        for log in logs.values():
            log.discard()
        raise


def import_group(
    conn: psycopg.Connection,
    hot: HotIndex,
    group: Sequence[Listing],
    logs: dict[str, RejectLog],
    replace: bool,
    bar: Bar | None,
) -> ImportSummary:
    """Import the listings of one source, with progress bars if ``bar``."""
    if bar is None:
        return import_source(conn, hot, group, logs, replace=replace)
    total = sum(estimate_records(listing.path, listing.format) for listing in group)
    with ExitStack() as reading:
        advance = reading.enter_context(bar("importing", total))

        def indexing(count: int) -> ProgressBar:
            reading.close()  # every record is read by now
            return bar("indexing", count)

        return import_source(
            conn, hot, group, logs, replace=replace, advance=advance, indexing=indexing
        )


def commit_rejects(logs: Mapping[str, RejectLog]) -> list[RejectLog]:
    """Put the rejects files in place; return each log once."""
    unique = list({id(log): log for log in logs.values()}.values())
    for log in unique:
        log.commit()
    return unique


@contextmanager
def spools_removed(listings: Sequence[Listing]) -> Iterator[None]:
    """Remove the listings' temporary copies (:func:`spool`) when the block ends."""
    try:
        yield
    finally:
        for listing in listings:
            if listing.spooled:
                listing.spooled.unlink(missing_ok=True)
