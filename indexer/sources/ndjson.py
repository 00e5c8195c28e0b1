"""Store listings in NDJSON: one JSON value a line, a flat object or a GeoJSON Feature.

A flat object's keys are matched to fields by
:data:`~indexer.sources.records.ALIASES` (or a ``--col`` mapping); the rest go to
``attrs``. A Feature is read as in :mod:`~indexer.sources.geojson`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping
from typing import IO, Any

from indexer.sources.geojson import feature_to_record
from indexer.sources.records import Record, keyed_fields
from indexer.sources.rejects import DECODE_ERRORS, UnreadableInput


def object_to_record(value: Any, position: int, columns: Mapping[str, str] | None = None) -> Record:
    """Turn one NDJSON value into a record: a GeoJSON Feature or a flat object."""
    if isinstance(value, dict) and value.get("type") == "Feature":
        return feature_to_record(value, position, columns)
    if not isinstance(value, dict):
        return Record(position, {}, problem="not a JSON object", raw=value)
    fields, attrs = keyed_fields(value, columns or {})
    return Record(position, fields, attrs, raw=value)


def read_ndjson(stream: IO[bytes], columns: Mapping[str, str] | None = None) -> Iterator[Record]:
    """Yield the records of newline-delimited JSON, one a non-blank line.

    ``position`` is the line number, from 1. A line that is not JSON is a record
    with a problem, not an unreadable file.
    """
    text = io.TextIOWrapper(stream, encoding="utf-8-sig")
    try:
        for position, line in enumerate(text, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError:
                yield Record(position, {}, problem="unparseable JSON", raw=line.rstrip("\n"))
                continue
            yield object_to_record(value, position, columns)
    except DECODE_ERRORS as exc:
        raise UnreadableInput(f"unreadable NDJSON: {exc}") from exc
