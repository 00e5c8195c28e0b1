"""The import pipeline's parts: default sources, record estimates, validation with progress."""

from __future__ import annotations

import json
from pathlib import Path

from indexer.jobs.imports import Validation, default_source, estimate_records, open_listing
from indexer.jobs.report import RejectLog
from tests.factories import HEADER, write_lines


def test_default_source_drops_listing_suffixes() -> None:
    assert default_source("/x/shops.csv.gz") == "shops"
    assert default_source("Helsinki.osm.pbf") == "Helsinki"
    assert default_source("feed.ndjson") == "feed"
    assert default_source("my.shops.geojson") == "my.shops"
    assert default_source(".csv") == ".csv"


def test_progress_counts_every_record(tmp_path: Path) -> None:
    lines = [HEADER] + [f"{n},s,60.1,24.9,,,1," for n in range(12_345)] + [",empty,1,2,,,,"]
    path = write_lines(tmp_path / "many.csv", lines)
    assert estimate_records(str(path), "csv") == 12_346
    listing = open_listing(str(path), "many", "auto", {})
    logs = {str(path): RejectLog(tmp_path / "many.rejects.csv", "line")}
    steps: list[int] = []
    validation = Validation("many", logs, steps.append)
    assert sum(1 for _ in validation.entities([listing])) == 12_345
    assert steps == [5000, 5000, 2346]
    assert (validation.rejected, logs[str(path)].count) == (1, 1)
    logs[str(path)].discard()
    assert list(tmp_path.iterdir()) == [path]


def test_estimate_records_of_geojson(tmp_path: Path) -> None:
    features = [{"type": "Feature", "id": n, "geometry": None} for n in range(7)]
    path = tmp_path / "f.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    assert estimate_records(str(path), "geojson") == 7
    assert estimate_records("-", "csv") == 0
