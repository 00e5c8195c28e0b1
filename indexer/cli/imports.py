"""``nearby import stores PATH…``: the batch import of store listings.

Every path is opened (and its format told) before anything is written, so an
input that cannot be opened writes nothing. The paths of one source go to the
writer in one call: PostGIS in one transaction, then Redis for exactly what
changed; an input that breaks part-way rolls back its source's whole write
(sources written before it, with several sources, stay).
Bad records are left out and listed in a rejects file beside the input.

Exit status: 0 all imported; 1 some records rejected (the others committed);
2 bad usage, unreadable input or a failed write (nothing written).
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, NoReturn

import click
import psycopg
import redis

from indexer import telemetry
from indexer.cli.report import ImportSummary, RejectLog
from indexer.hot.index import HotIndex
from indexer.model import Entity
from indexer.progress import ProgressBar, format_count, progress_bar
from indexer.sources.csv import parse_column_map, read_csv
from indexer.sources.geojson import read_geojson
from indexer.sources.inputs import FORMATS, detect_format, open_input
from indexer.sources.ndjson import read_ndjson
from indexer.sources.records import Record, record_to_entity
from indexer.sources.rejects import InvalidEntity, UnreadableInput
from indexer.store.writer import (
    HotIndexUnavailable,
    Indexing,
    NothingWritten,
    no_indexing_bar,
    write_entities,
)

if TYPE_CHECKING:
    from indexer.cli.main import Context

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
#: What an import says when PostGIS has it and Redis may not.
LOST_MIDWAY = "Redis lost its index generation during the import"
REPAIRED_BY = "the next import, feed sync, server start or healing check rebuilds it from PostGIS"


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
        hot_applied=written.hot_applied,
    )
    telemetry.record_import(hot.client, hot.prefix, source, "stores", summary.rows())
    return summary


# -- the command -------------------------------------------------------------------------


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


def resolve_sources(paths: Sequence[str], source: str | None) -> list[str]:
    """The source of each path: ``source`` if given, else the file's name.

    Raises
    ------
    click.UsageError
        Standard input without ``--source``, or a source name that is not a slug.
    """
    sources = []
    for path in paths:
        if source is None and path == "-":
            raise click.UsageError("reading standard input needs --source")
        name = source or default_source(path)
        if not SOURCE_PATTERN.match(name):
            raise click.UsageError(
                f"source {name!r} must be 1-64 letters, digits, '_', '.' or '-': use --source"
            )
        sources.append(name)
    return sources


def open_all(
    paths: Sequence[str], sources: Sequence[str], fmt: str, columns: dict[str, str]
) -> list[Listing]:
    """Open every input before anything is written (UnreadableInput if one fails)."""
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


def run_import(
    conn: psycopg.Connection,
    hot: HotIndex,
    listings: Sequence[Listing],
    logs: dict[str, RejectLog],
    replace: bool,
) -> ImportSummary:
    """Import every source's listings, with progress bars on a terminal: one while a
    source's records are read, then one while a fresh generation is filled with them."""
    summary = ImportSummary()
    for group in group_by_source(listings):
        total = 0
        if sys.stderr.isatty():
            total = sum(estimate_records(listing.path, listing.format) for listing in group)
        with ExitStack() as reading:
            advance = reading.enter_context(progress_bar("importing", total))

            def indexing(count: int, reading: ExitStack = reading) -> ProgressBar:
                reading.close()  # every record is read by now
                return progress_bar("indexing", count)

            summary += import_source(
                conn, hot, group, logs, replace=replace, advance=advance, indexing=indexing
            )
    return summary


def finish(summary: ImportSummary, logs: dict[str, RejectLog]) -> None:
    """Put the rejects files in place, print the summary and exit 0 or 1."""
    for log in {id(log): log for log in logs.values()}.values():
        log.commit()
        if log.count:
            click.echo(f"{format_count(log.count)} rejected records in {log.target}", err=True)
    if not summary.hot_applied:
        click.echo(f"{LOST_MIDWAY}; {REPAIRED_BY}", err=True)
    click.echo(summary.line())
    if summary.rejected:
        raise SystemExit(1)


def fail(exc: Exception, logs: dict[str, RejectLog]) -> NoReturn:
    """Discard the rejects files, say why nothing was written, exit 2."""
    for log in logs.values():
        log.discard()
    click.echo(f"error: {exc}; nothing was written", err=True)
    raise SystemExit(2) from exc


def import_stores(
    context: Context,
    paths: Sequence[str],
    file_format: str,
    source: str | None,
    replace: bool,
    rejects: str | None,
    col: Sequence[str],
) -> None:
    """The body of ``nearby import stores``: open every input, import, summarise."""
    try:
        columns = parse_column_map(col)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--col") from exc
    sources = resolve_sources(paths, source)
    try:
        listings = open_all(paths, sources, file_format, columns)
    except UnreadableInput as exc:
        fail(exc, {})
    logs = make_reject_logs(listings, rejects)
    try:
        context.ensure_index()
        summary = run_import(context.conn(), context.hot(), listings, logs, replace)
    except (UnreadableInput, psycopg.Error, OSError, NothingWritten) as exc:
        fail(exc, logs)
    except (HotIndexUnavailable, redis.RedisError) as exc:
        raise click.ClickException(
            f"PostGIS has the import but Redis does not: {exc}; {REPAIRED_BY}"
        ) from exc
    finally:
        for listing in listings:
            if listing.spooled:
                listing.spooled.unlink(missing_ok=True)
    finish(summary, logs)


def register(group: click.Group) -> None:
    """Add the ``stores`` command to the ``import`` group of the CLI."""

    @group.command("stores")
    @click.argument("paths", nargs=-1, required=True, metavar="PATH…")
    @click.option(
        "--format",
        "file_format",
        type=click.Choice(("auto", *FORMATS)),
        default="auto",
        show_default=True,
        help="Format of the input; auto tells it from the content.",
    )
    @click.option("--source", help="Source of the entities (default: the file's name).")
    @click.option("--replace", is_flag=True, help="Delete the source's entities not in the input.")
    @click.option("--rejects", type=click.Path(dir_okay=False), help="CSV of rejected records.")
    @click.option(
        "--col", multiple=True, metavar="FIELD=HEADER", help="Read FIELD from column HEADER."
    )
    @click.pass_obj
    def stores(
        context: Context,
        paths: tuple[str, ...],
        file_format: str,
        source: str | None,
        replace: bool,
        rejects: str | None,
        col: tuple[str, ...],
    ) -> None:
        """Import store listings (CSV, GeoJSON, NDJSON, OSM PBF; gzip ok; - for stdin)."""
        import_stores(context, paths, file_format, source, replace, rejects, col)
