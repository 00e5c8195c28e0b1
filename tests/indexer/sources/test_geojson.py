"""GeoJSON listings to records: geometries to points, features, streamed collections."""

from __future__ import annotations

import json

import pytest
import shapely

from indexer.sources.geojson import feature_to_record, geometry_to_point, read_geojson
from indexer.sources.rejects import InvalidEntity, UnreadableInput
from tests.factories import stream

#: An L-shaped ring, lng-lat: its centroid lies outside it.
L_SHAPE = [[0, 0], [4, 0], [4, 1], [1, 1], [1, 4], [0, 4], [0, 0]]


def test_geometry_to_point_of_a_point() -> None:
    assert geometry_to_point({"type": "Point", "coordinates": [24.9, 60.1]}) == (60.1, 24.9, False)


@pytest.mark.parametrize(
    "geometry",
    [
        {"type": "Polygon", "coordinates": [L_SHAPE]},
        {"type": "LineString", "coordinates": [[10, 10], [10, 12], [14, 12]]},
        {"type": "MultiPoint", "coordinates": [[1, 2], [3, 4]]},
    ],
)
def test_geometry_to_point_reduces_shapes_to_their_representative_point(geometry: dict) -> None:
    point = shapely.geometry.shape(geometry).representative_point()
    assert geometry_to_point(geometry) == (point.y, point.x, True)
    assert shapely.geometry.shape(geometry).intersects(point)


@pytest.mark.parametrize(
    ("geometry", "reason"),
    [
        (None, "missing coordinates"),
        ({"type": "Point", "coordinates": []}, "missing coordinates"),
        ({"type": "Point", "coordinates": [1]}, "unparseable coordinates [1]"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1]]]}, "unparseable Polygon geometry"),
    ],
)
def test_geometry_to_point_refuses(geometry: object, reason: str) -> None:
    with pytest.raises(InvalidEntity, match=f"^{reason.replace('[', '.').replace(']', '.')}$"):
        geometry_to_point(geometry)


def test_feature_to_record() -> None:
    feature = {
        "type": "Feature",
        "id": "node/5",
        "geometry": {"type": "Point", "coordinates": [24.5, 60.25]},
        "properties": {"name": "Kahvila", "brand": "Fazer", "category": "cafe", "floor": 2},
    }
    record = feature_to_record(feature, 3)
    assert record.position == 3
    assert record.fields == {
        "id": "node/5",
        "name": "Kahvila",
        "category": "cafe",
        "mini_app": "Fazer",
        "lat": 60.25,
        "lng": 24.5,
    }
    assert record.attrs == {"floor": 2}
    assert not record.reduced


def test_read_geojson_streams_features() -> None:
    features = [
        {"type": "Feature", "id": n, "geometry": {"type": "Point", "coordinates": [n, n]}}
        for n in range(3)
    ]
    text = json.dumps({"type": "FeatureCollection", "bbox": [0, 0, 2, 2], "features": features})
    records = list(read_geojson(stream(text)))
    assert [(r.position, r.fields["id"], r.fields["lat"]) for r in records] == [
        (1, 0, 0.0),
        (2, 1, 1.0),
        (3, 2, 2.0),
    ]


def test_read_geojson_truncated_is_unreadable() -> None:
    text = '{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": '
    with pytest.raises(UnreadableInput):
        list(read_geojson(stream(text)))
