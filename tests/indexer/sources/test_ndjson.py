"""NDJSON listings to records: flat objects, features and bad lines."""

from __future__ import annotations

import json

from indexer.sources.ndjson import read_ndjson
from tests.factories import stream


def test_read_ndjson_objects_features_and_bad_lines() -> None:
    feature = {"type": "Feature", "id": "f", "geometry": {"type": "Point", "coordinates": [2, 1]}}
    lines = [
        json.dumps({"id": "a", "latitude": 1.5, "longitude": 2.5, "colour": "red"}),
        "",
        json.dumps(feature),
        "{not json",
        "[1, 2]",
    ]
    records = list(read_ndjson(stream("\n".join(lines) + "\n")))
    assert [r.position for r in records] == [1, 3, 4, 5]
    assert records[0].fields == {"id": "a", "lat": 1.5, "lng": 2.5}
    assert records[0].attrs == {"colour": "red"}
    assert records[1].fields == {"id": "f", "lat": 1, "lng": 2}
    assert [r.problem for r in records] == [None, None, "unparseable JSON", "not a JSON object"]
