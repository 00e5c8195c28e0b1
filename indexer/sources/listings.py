"""Store listings: reading CSV, GeoJSON and NDJSON files into records, and records into entities.

Reading is streamed: a reader yields one :class:`Record` at a time, so memory
does not grow with the file. gzip is recognised by its magic bytes and read
transparently; ``-`` reads standard input. A problem with the input as a whole
(unreadable, not UTF-8, broken JSON, a CSV without coordinate columns) raises
:class:`UnreadableInput`; a problem with one record becomes a reason to reject
that record alone (:func:`record_to_entity`).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import sys
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import IO, Any

import opening_hours

from indexer.model import Entity, InvalidEntity, normalize_lng

FORMATS = ("csv", "geojson", "ndjson", "osm")
#: The fields of a listing and the names they go by, first match wins. Headers
#: and keys match case-insensitively; anything else goes to ``attrs``.
ALIASES: Mapping[str, tuple[str, ...]] = {
    "id": ("id",),
    "name": ("name",),
    "lat": ("lat", "latitude"),
    "lng": ("lng", "lon", "long", "longitude"),
    "category": ("category",),
    "mini_app": ("mini_app", "brand:wikidata", "brand"),
    "popularity": ("popularity",),
    "opening_hours": ("opening_hours",),
}
#: How much of the input format detection looks at.
HEAD_BYTES = 64 * 1024
#: What a reader may raise while decoding that means the input is unreadable.
DECODE_ERRORS = (OSError, EOFError, UnicodeDecodeError, zlib.error, csv.Error, ValueError)


class UnreadableInput(Exception):
    """The input cannot be read as a listing at all; nothing of it may be written."""


# Not frozen: one is made per input row, and a frozen dataclass's __init__ costs
# three times as much. Nothing changes a record once read.
@dataclass(slots=True)
class Record:
    """One record of a listing as read, before validation.

    ``position`` is the line (CSV, NDJSON) or feature (GeoJSON) number, from 1;
    ``fields`` holds the known fields by their canonical name (raw values);
    ``reduced`` says a polygon or line was replaced by its representative point;
    ``problem`` is a reason to reject found while reading (e.g. a broken geometry);
    ``raw`` is what the input held, for the rejects file.
    """

    position: int
    fields: Mapping[str, Any]
    attrs: dict[str, Any] = field(default_factory=dict)
    reduced: bool = False
    problem: str | None = None
    raw: Any = None


# -- opening the input ---------------------------------------------------------------


class _Prefixed(io.RawIOBase):
    """A stream that gives back ``head`` first, then the rest of ``stream``."""

    def __init__(self, head: bytes, stream: IO[bytes]) -> None:
        self._head = memoryview(head)
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            count = min(len(buffer), len(self._head))
            buffer[:count] = self._head[:count]
            self._head = self._head[count:]
            return count
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._stream.close()
        super().close()


@dataclass(frozen=True)
class Input:
    """An opened listing: its decompressed byte stream and the bytes it starts with."""

    stream: IO[bytes]
    head: bytes
    path: str
    compressed: bool


def open_input(path: str) -> Input:
    """Open ``path`` (``-`` for standard input), decompressing gzip transparently.

    Raises
    ------
    UnreadableInput
        The file cannot be opened or its start cannot be decompressed.
    """
    try:
        stream: IO[bytes] = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
        head = stream.read(2)
        compressed = head == b"\x1f\x8b"
        stream = io.BufferedReader(_Prefixed(head, stream))
        if compressed:
            stream = io.BufferedReader(gzip.GzipFile(fileobj=stream, mode="rb"))
        head = stream.read(HEAD_BYTES)
    except DECODE_ERRORS as exc:
        raise UnreadableInput(f"{path}: {exc}") from exc
    return Input(io.BufferedReader(_Prefixed(head, stream)), head, path, compressed)


def detect_format(head: bytes) -> str:
    """Tell the format of a listing from its first bytes: csv, geojson, ndjson or osm."""
    if b"OSMHeader" in head[:32] or (head.lstrip().startswith(b"<") and b"<osm" in head):
        return "osm"
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if not text.startswith(b"{"):
        return "csv"
    first_line, newline, _ = text.partition(b"\n")
    if not newline:
        return "geojson"
    try:
        value = json.loads(first_line)
    except ValueError:
        return "geojson"  # one object over several lines
    is_collection = isinstance(value, dict) and value.get("type") == "FeatureCollection"
    return "geojson" if is_collection else "ndjson"


# -- CSV -----------------------------------------------------------------------------


def parse_column_map(options: Iterable[str]) -> dict[str, str]:
    """Parse ``FIELD=HEADER`` options into ``{field: header}``.

    Raises
    ------
    ValueError
        An option has no ``=`` or names a field that listings do not have.
    """
    columns: dict[str, str] = {}
    for option in options:
        name, sep, header = option.partition("=")
        name = name.strip()
        if not sep or not header:
            raise ValueError(f"expected FIELD=HEADER, got {option!r}")
        if name not in ALIASES:
            raise ValueError(f"unknown field {name!r}; fields are {', '.join(ALIASES)}")
        columns[name] = header
    return columns


def match_columns(headers: Sequence[str], columns: Mapping[str, str]) -> dict[str, int]:
    """Find each field's position in ``headers``: a ``--col`` mapping first, then the aliases.

    Raises
    ------
    UnreadableInput
        A mapped header is absent, or no column gives the id, lat or lng.
    """
    exact = {header: index for index, header in reversed(list(enumerate(headers)))}
    folded = {header.strip().lower(): index for header, index in exact.items()}
    positions: dict[str, int] = {}
    for name, aliases in ALIASES.items():
        if name in columns:
            if columns[name] not in exact:
                raise UnreadableInput(f"no column {columns[name]!r} for {name} in the header")
            positions[name] = exact[columns[name]]
            continue
        found = [folded[alias] for alias in aliases if alias in folded]
        if found:
            positions[name] = found[0]
    missing = [name for name in ("id", "lat", "lng") if name not in positions]
    if missing:
        raise UnreadableInput(
            f"the header has no column for {', '.join(missing)}; map one with --col FIELD=HEADER"
        )
    return positions


def _csv_dialect(header_line: str) -> type[csv.Dialect]:
    """The excel dialect with the header's most frequent delimiter among , ; tab and |."""
    delimiter = max(",;\t|", key=header_line.count)

    class Dialect(csv.excel):
        pass

    Dialect.delimiter = delimiter if header_line.count(delimiter) else ","
    return Dialect


def read_csv(stream: IO[bytes], columns: Mapping[str, str] | None = None) -> Iterator[Record]:
    """Read a CSV header now and return the records of its rows; blank lines are skipped.

    ``position`` is the line on which the row starts (the header is line 1).

    Raises
    ------
    UnreadableInput
        The header cannot be read or lacks a column for the id, lat or lng
        (later rows raise it while iterating).
    """
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    try:
        header_line = text.readline()
        dialect = _csv_dialect(header_line)
        headers = next(csv.reader([header_line], dialect), [])
    except DECODE_ERRORS as exc:
        raise UnreadableInput(f"unreadable CSV: {exc}") from exc
    positions = match_columns(headers, columns or {})
    return _csv_records(csv.reader(text, dialect), headers, positions)


def _csv_records(rows: Any, headers: Sequence[str], positions: dict[str, int]) -> Iterator[Record]:
    try:
        yield from _csv_rows(rows, headers, positions)
    except DECODE_ERRORS as exc:
        raise UnreadableInput(f"unreadable CSV: {exc}") from exc


def _csv_rows(rows: Any, headers: Sequence[str], positions: dict[str, int]) -> Iterator[Record]:
    known = set(positions.values())
    extra = [(index, header) for index, header in enumerate(headers) if index not in known]
    fields = list(positions.items())
    width = len(headers)
    line = 1
    for row in rows:
        start, line = line + 1, rows.line_num + 1
        if not row:
            continue
        problem = None
        values = row
        if len(row) != width:
            problem = f"{len(row)} fields, the header has {width}"
            values = (row + [""] * width)[:width]
        yield Record(
            position=start,
            fields={name: values[index] for name, index in fields},
            attrs={header: values[index] for index, header in extra if values[index] != ""}
            if extra
            else {},
            problem=problem,
            raw=row,
        )


# -- records to entities ---------------------------------------------------------------


def entity_id(source: str, native_id: Any) -> str:
    """The entity id of a listed id: ``{source}:{id}``, or the id itself if it has a namespace.

    An id that already holds a ``:`` (``osm:node/5``) is taken as a full id.
    """
    text = "" if native_id is None else str(native_id).strip()
    if not text or ":" in text:
        return text
    return f"{source}:{text}"


def parse_coordinate(value: Any, name: str) -> float:
    """Parse a latitude or longitude (number or numeric string), refusing NaN and infinity."""
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        if value is None or (isinstance(value, str) and not value.strip()):
            raise InvalidEntity("missing coordinates") from exc
        raise InvalidEntity(f"unparseable {name} {value!r}") from exc
    if value.__class__ is bool:
        raise InvalidEntity(f"unparseable {name} {value!r}")
    if not math.isfinite(number):
        raise InvalidEntity(f"{name} is NaN or infinite")
    return number


def parse_point(lat_value: Any, lng_value: Any) -> tuple[float, float]:
    """Parse and range-check a point; longitude 180 becomes -180."""
    lat = parse_coordinate(lat_value, "latitude")
    lng = parse_coordinate(lng_value, "longitude")
    if not -90.0 <= lat <= 90.0:
        raise InvalidEntity(f"latitude {lat} outside [-90, 90]")
    if not -180.0 <= lng <= 180.0:
        raise InvalidEntity(f"longitude {lng} outside [-180, 180]")
    return lat, normalize_lng(lng)


def parse_popularity(value: Any) -> float:
    """Parse a popularity: empty is 0; negative, NaN or infinite is refused."""
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        if value is None or (isinstance(value, str) and not value.strip()):
            return 0.0
        raise InvalidEntity(f"unparseable popularity {value!r}") from exc
    if not math.isfinite(number):
        raise InvalidEntity("popularity is NaN or infinite")
    if number < 0:
        raise InvalidEntity(f"negative popularity {number}")
    return number


@lru_cache(maxsize=65536)
def _valid_hours(text: str) -> bool:
    # Listings repeat a few hour strings many times; parsing costs ~20 µs each.
    return bool(opening_hours.validate(text))


def parse_opening_hours(value: Any) -> str | None:
    """Return OSM ``opening_hours`` text if it parses; empty is None."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    if not _valid_hours(text):
        raise InvalidEntity(f"unparseable opening_hours {text!r}")
    return text


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def record_to_entity(record: Record, source: str) -> Entity:
    """Validate a record and make the store it lists.

    Raises
    ------
    InvalidEntity
        With the reason to reject it: an empty id, missing, unparseable or out-of-range
        coordinates, a negative popularity, unparseable opening hours, and the like.
    """
    fields = record.fields
    if record.problem:
        raise InvalidEntity(record.problem)
    identifier = entity_id(source, fields.get("id"))
    if not identifier:
        raise InvalidEntity("empty id")
    lat, lng = parse_point(fields.get("lat"), fields.get("lng"))
    # Every rule of check_entity holds by now (the id, parse_point's finite and
    # in-range point, parse_popularity's): an import checks each row only once.
    return Entity(
        id=identifier,
        kind="store",
        lat=lat,
        lng=lng,
        name=_text(fields.get("name")),
        category=_text(fields.get("category")),
        mini_app=_text(fields.get("mini_app")),
        popularity=parse_popularity(fields.get("popularity")),
        opening_hours=parse_opening_hours(fields.get("opening_hours")),
        attrs=record.attrs,
    )
