"""Opening a listing (gzip, standard input) and telling its format."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from indexer.sources.inputs import detect_format, open_input
from indexer.sources.rejects import UnreadableInput


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"id,name,lat,lng\n1,a,1,2\n", "csv"),
        (b"\xef\xbb\xbfid;lat;lng\n", "csv"),
        (b'{"type": "FeatureCollection", "features": []}', "geojson"),
        (b'{"type": "FeatureCollection", "features": []}\n', "geojson"),
        (b'{\n  "type": "FeatureCollection",\n  "features": [\n', "geojson"),
        (b'{"id": "1", "lat": 1, "lng": 2}\n{"id": "2"', "ndjson"),
        (b'  {"type": "Feature", "geometry": null, "properties": {}}\n', "ndjson"),
        (b"\x00\x00\x00\x0d\x0a\x09OSMHeader\x18", "osm"),
        (b"<?xml version='1.0'?>\n<osm version=\"0.6\">", "osm"),
    ],
)
def test_detect_format(head: bytes, expected: str) -> None:
    assert detect_format(head) == expected


def test_open_input_reads_gzip_transparently(tmp_path: Path) -> None:
    text = "id,lat,lng\n" + "".join(f"{n},1.5,2.5\n" for n in range(20000))
    path = tmp_path / "shops.csv.gz"
    path.write_bytes(gzip.compress(text.encode()))
    opened = open_input(str(path))
    assert opened.compressed
    assert opened.head == text.encode()[: len(opened.head)]
    assert opened.stream.read() == text.encode()


def test_open_input_of_a_missing_file_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(UnreadableInput, match="No such file"):
        open_input(str(tmp_path / "absent.csv"))


def test_open_input_of_a_broken_gzip_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "broken.csv.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(UnreadableInput):
        open_input(str(path))
