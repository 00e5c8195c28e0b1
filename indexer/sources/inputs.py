"""Opening a store listing and telling its format.

gzip is recognised by its magic bytes and read transparently; ``-`` reads
standard input. The format is told from the first bytes of the (decompressed)
input: OSM PBF or XML, a GeoJSON FeatureCollection, NDJSON, else CSV.
"""

from __future__ import annotations

import gzip
import io
import json
import sys
from dataclasses import dataclass
from typing import IO, Any

from indexer.sources.rejects import DECODE_ERRORS, UnreadableInput

FORMATS = ("csv", "geojson", "ndjson", "osm")
#: How much of the input format detection looks at.
HEAD_BYTES = 64 * 1024


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
