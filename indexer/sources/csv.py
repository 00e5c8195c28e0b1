"""Store listings in CSV: a header row, then one store a row.

The delimiter is the header's most frequent of ``,`` ``;`` tab and ``|``. Header
names are matched to fields by :data:`~indexer.sources.records.ALIASES` (or a
``--col FIELD=HEADER`` mapping); every other column goes to ``attrs``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import IO, Any

from indexer.sources.records import ALIASES, Record
from indexer.sources.rejects import DECODE_ERRORS, UnreadableInput


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
    for name in ALIASES:
        index = (
            _mapped_column(name, columns, exact) if name in columns else _alias_column(name, folded)
        )
        if index is not None:
            positions[name] = index
    missing = [name for name in ("id", "lat", "lng") if name not in positions]
    if missing:
        raise UnreadableInput(
            f"the header has no column for {', '.join(missing)}; map one with --col FIELD=HEADER"
        )
    return positions


def _mapped_column(name: str, columns: Mapping[str, str], exact: Mapping[str, int]) -> int:
    if columns[name] not in exact:
        raise UnreadableInput(f"no column {columns[name]!r} for {name} in the header")
    return exact[columns[name]]


def _alias_column(name: str, folded: Mapping[str, int]) -> int | None:
    return next((folded[alias] for alias in ALIASES[name] if alias in folded), None)


def _csv_dialect(header_line: str) -> type[csv.Dialect]:
    """The excel dialect with the header's most frequent delimiter among , ; tab and |."""
    delimiter = max(",;\t|", key=header_line.count)

    class Dialect(csv.excel):
        pass

    Dialect.delimiter = delimiter if header_line.count(delimiter) else ","
    return Dialect


def open_csv(stream: IO[bytes]) -> tuple[list[str], Any]:
    """A CSV's header, read now (UTF-8, a BOM allowed; the dialect sniffed from it), and a
    reader of its rows (whose ``line_num`` counts lines); UnreadableInput when it is not text."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    try:
        header_line = text.readline()
        dialect = _csv_dialect(header_line)
        headers = next(csv.reader([header_line], dialect), [])
    except DECODE_ERRORS as exc:
        raise UnreadableInput(f"unreadable CSV: {exc}") from exc
    return headers, csv.reader(text, dialect)


def read_csv(stream: IO[bytes], columns: Mapping[str, str] | None = None) -> Iterator[Record]:
    """Read a CSV header now and return the records of its rows; blank lines are skipped.

    ``position`` is the line on which the row starts (the header is line 1).

    Raises
    ------
    UnreadableInput
        The header cannot be read or lacks a column for the id, lat or lng
        (later rows raise it while iterating).
    """
    headers, rows = open_csv(stream)
    positions = match_columns(headers, columns or {})
    return _csv_records(rows, headers, positions)


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
