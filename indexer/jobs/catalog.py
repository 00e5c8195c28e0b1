"""The import of the mini-app catalog: CSV or NDJSON, checked row by row, written at once.

The input is opened (and its format told) before anything is written; rows are
read one at a time, a bad one goes to the rejects file with its line and
reason, and the good ones are written in one transaction
(:func:`indexer.store.catalog.write_catalog`), then the catalog is published to
Redis. A failure before the commit leaves the previous catalog whole.

A CSV has a header naming the columns ``slug``, ``name``, ``icon_url``,
``description`` and ``category`` (any order, case-insensitive; others are
ignored); an NDJSON line is an object with those keys.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import urlsplit

import psycopg
import redis

from indexer.hot.client import NoGeneration
from indexer.hot.index import HotIndex, stream_entities
from indexer.hot.pending import marked
from indexer.jobs.failures import write_failures
from indexer.jobs.report import ImportSummary, RejectLog
from indexer.model import text_problem
from indexer.sources.csv import open_csv
from indexer.sources.inputs import detect_format, open_input
from indexer.sources.ndjson import read_ndjson
from indexer.sources.records import Record
from indexer.sources.rejects import DECODE_ERRORS, UnreadableInput
from indexer.store.catalog import FIELDS, MiniApp, publish_catalog, read_catalog, write_catalog
from indexer.store.errors import HotIndexUnavailable

FORMATS = ("csv", "ndjson")
#: Longest text of each field (a slug is a path segment and a filter value).
MAX_CHARS = {"slug": 200, "name": 200, "icon_url": 2048, "description": 2000, "category": 100}
#: Characters a slug may not hold: control characters (never part of a value), the
#: comma (that separates the ``mini_app`` filter's values) and ``/`` (a path segment).
SLUG_FORBIDDEN = frozenset(chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))) | {",", "/"}
#: What the catalog says when PostGIS has it and Redis may not.
NOT_PUBLISHED = "PostGIS has the catalog but Redis does not"


class InvalidMiniApp(ValueError):
    """A row that cannot become a catalog entry; the message says why."""


@dataclass
class CatalogInput:
    """An opened catalog file: its format and its records, lazily read."""

    path: str
    format: str
    records: Iterator[Record]


def open_catalog(path: str, file_format: str) -> CatalogInput:
    """Open ``path`` (``-`` for standard input; gzip read transparently) and start its reader.

    Raises
    ------
    BadInput
        The input cannot be opened, is neither CSV nor NDJSON, or its header lacks a slug
        or a name column (nothing is written).
    """
    with write_failures():
        opened = open_input(path)
        fmt = detect_format(opened.head) if file_format == "auto" else file_format
        if fmt not in FORMATS:
            raise UnreadableInput(f"{path}: a catalog is CSV or NDJSON, this reads as {fmt}")
        records = read_ndjson(opened.stream) if fmt == "ndjson" else read_catalog_csv(opened.stream)
        return CatalogInput(path, fmt, records)


def read_catalog_csv(stream: IO[bytes]) -> Iterator[Record]:
    """Read a catalog CSV's header now; return the records of its rows (raw: the row's
    fields by column name). ``position`` is the line a row starts on (the header is 1)."""
    headers, rows = open_csv(stream)
    folded = [header.strip().lower() for header in headers]
    missing = [name for name in ("slug", "name") if name not in folded]
    if missing:
        raise UnreadableInput(f"the header has no column for {', '.join(missing)}")
    return _catalog_rows(rows, folded)


def _catalog_rows(rows: Any, headers: list[str]) -> Iterator[Record]:
    positions = {name: headers.index(name) for name in FIELDS if name in headers}
    line = 1
    try:
        for row in rows:
            start, line = line + 1, rows.line_num + 1
            if not row:
                continue
            problem = f"{len(row)} fields, the header has {len(headers)}"
            values = (row + [""] * len(headers))[: len(headers)]
            fields = {name: values[index] for name, index in positions.items()}
            yield Record(start, fields, problem=None if len(row) == len(headers) else problem,
                         raw=fields)  # fmt: skip
    except DECODE_ERRORS as exc:
        raise UnreadableInput(f"unreadable CSV: {exc}") from exc


def check_text(fields: Mapping[str, Any], name: str, *, required: bool = False) -> str:
    """A field as stripped text within its length, PostgreSQL-storable."""
    value = fields.get(name)
    if value is not None and not isinstance(value, str | int | float):
        raise InvalidMiniApp(f"{name} must be text")
    text = "" if value is None else str(value).strip()
    if required and not text:
        raise InvalidMiniApp(f"empty {name}")
    if len(text) > MAX_CHARS[name]:
        raise InvalidMiniApp(f"{name} is longer than {MAX_CHARS[name]} characters")
    problem = text_problem(text)
    if problem is not None:
        raise InvalidMiniApp(f"{name} {problem}")
    return text


def check_slug(text: str) -> str:
    """A slug without control characters, commas or slashes."""
    bad = SLUG_FORBIDDEN.intersection(text)
    if bad:
        raise InvalidMiniApp(f"slug must not contain {sorted(bad)[0]!r}")
    return text


def check_icon_url(text: str) -> str:
    """An icon URL: empty, or http(s) with a host."""
    if not text:
        return text
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        raise InvalidMiniApp(f"unparseable icon_url {text[:80]!r}") from exc
    if parts.scheme not in ("http", "https") or not parts.netloc or " " in text:
        raise InvalidMiniApp(f"icon_url must be an http(s) URL, got {text[:80]!r}")
    return text


def record_to_mini_app(record: Record) -> MiniApp:
    """Validate a record and make its catalog entry; InvalidMiniApp with the reason."""
    if record.problem:
        raise InvalidMiniApp(record.problem)
    # Both readers keep a row's fields by their names in ``raw`` (NDJSON: the object).
    if not isinstance(record.raw, Mapping):
        raise InvalidMiniApp("not a JSON object")
    folded = {str(key).strip().lower(): value for key, value in record.raw.items()}
    return MiniApp(
        slug=check_slug(check_text(folded, "slug", required=True)),
        name=check_text(folded, "name", required=True),
        icon_url=check_icon_url(check_text(folded, "icon_url")),
        description=check_text(folded, "description"),
        category=check_text(folded, "category"),
    )


@dataclass
class CatalogValidation:
    """Turns records into entries, rejecting bad ones and repeated slugs."""

    source: CatalogInput
    rejects: RejectLog
    rejected: int = 0
    seen: dict[str, int] = field(default_factory=dict)

    def apps(self) -> Iterator[MiniApp]:
        """The valid entries, in order; each slug once."""
        for record in self.source.records:
            try:
                app = record_to_mini_app(record)
            except InvalidMiniApp as exc:
                self.reject(record, _shown_slug(record), str(exc))
                continue
            first = self.seen.setdefault(app.slug, record.position)
            if first != record.position:
                self.reject(record, app.slug, f"slug twice in the input (first on line {first})")
                continue
            yield app

    def reject(self, record: Record, slug: str, reason: str) -> None:
        """Write one rejected row to the rejects file."""
        self.rejects.add(self.source.path, record.position, slug, reason, record.raw)
        self.rejected += 1


def _shown_slug(record: Record) -> str:
    value = record.raw.get("slug") if isinstance(record.raw, Mapping) else None
    return value if isinstance(value, str) else ""


def import_catalog(
    conn: psycopg.Connection,
    hot: HotIndex,
    prefix: str,
    source: CatalogInput,
    rejects: RejectLog,
    *,
    replace: bool,
) -> ImportSummary:
    """Write the input's valid entries, then publish the catalog and send the entities
    whose search text it changed to the hot index; return what it did.

    A failure before the commit discards the rejects file and raises the table's
    error (nothing written); a Redis failure after it raises HotIndexUnavailable
    (the rejects file is kept: PostGIS has the import; the write's mark makes the
    next process rebuild the hot index, indexer/hot/pending.py).
    """
    started = time.monotonic()
    validation = CatalogValidation(source, rejects)
    with marked(conn, "catalog") as mark:
        try:
            with write_failures():
                written = write_catalog(conn, validation.apps(), replace=replace, mark=mark)
        except BaseException:
            conn.rollback()
            rejects.discard()
            raise
        rejects.commit()
        try:
            publish_catalog(hot.client, prefix, read_catalog(conn))
            send_retexted(conn, hot, written.retexted)
        except redis.RedisError as exc:
            raise HotIndexUnavailable(
                f"{NOT_PUBLISHED}: {exc}; import it again once Redis answers"
            ) from exc
        mark.clear()
    return ImportSummary(
        inserted=written.inserted,
        updated=written.updated,
        unchanged=written.unchanged,
        deleted=written.deleted,
        rejected=validation.rejected,
        seconds=time.monotonic() - started,
    )


def send_retexted(conn: psycopg.Connection, hot: HotIndex, ids: tuple[str, ...]) -> None:
    """Send the entities whose search text a catalog write changed to the hot index
    (nothing to do when it holds no generation: the fill that makes one reads them)."""
    if not ids:
        return
    rows = stream_entities(conn, "WHERE id = ANY(%(ids)s)", {"ids": list(ids)})
    with suppress(NoGeneration):
        hot.apply_row_batches(rows)
