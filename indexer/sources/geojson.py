"""Store listings in GeoJSON: a FeatureCollection, streamed feature by feature.

A Feature's geometry gives the point; a polygon or line is reduced to its
representative point (``Record.reduced``). Its properties are matched to fields
by :data:`~indexer.sources.records.ALIASES` (or a ``--col`` mapping); the rest go
to ``attrs``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import IO, Any

from indexer.sources.records import Record, keyed_fields
from indexer.sources.rejects import DECODE_ERRORS, InvalidEntity, UnreadableInput


def feature_to_record(
    feature: Any, position: int, columns: Mapping[str, str] | None = None
) -> Record:
    """Turn one GeoJSON Feature into a record; a polygon or line gives its representative point."""
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        return Record(position, {}, problem="not a GeoJSON Feature", raw=feature)
    columns = columns or {}
    fields, attrs = keyed_fields(feature.get("properties") or {}, columns)
    if feature.get("id") not in (None, "") and "id" not in columns:
        fields["id"] = feature["id"]
        attrs.pop("id", None)
    fields.pop("lat", None)
    fields.pop("lng", None)
    try:
        lat, lng, reduced = geometry_to_point(feature.get("geometry"))
    except InvalidEntity as exc:
        return Record(position, fields, attrs, problem=str(exc), raw=feature)
    fields["lat"], fields["lng"] = lat, lng
    return Record(position, fields, attrs, reduced=reduced, raw=feature)


def geometry_to_point(geometry: Any) -> tuple[Any, Any, bool]:
    """Return ``(lat, lng, reduced)`` of a GeoJSON geometry; ``reduced`` for a non-point.

    Raises
    ------
    InvalidEntity
        The geometry is missing, empty or cannot be read.
    """
    if not isinstance(geometry, dict) or not geometry.get("coordinates"):
        if isinstance(geometry, dict) and geometry.get("type") == "GeometryCollection":
            return _shape_point(geometry)
        raise InvalidEntity("missing coordinates")
    if geometry.get("type") == "Point":
        coordinates = geometry["coordinates"]
        if not isinstance(coordinates, list) or len(coordinates) < 2:
            raise InvalidEntity(f"unparseable coordinates {coordinates!r}")
        return coordinates[1], coordinates[0], False
    return _shape_point(geometry)


def _shape_point(geometry: Mapping[str, Any]) -> tuple[float, float, bool]:
    import shapely.geometry

    try:
        shape = shapely.geometry.shape(geometry)
        if shape.is_empty:
            raise InvalidEntity("missing coordinates")
        # representative_point lies inside a polygon (a centroid may not) and on a line.
        point = shape.representative_point()
    except (ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise InvalidEntity(f"unparseable {geometry.get('type')} geometry") from exc
    except Exception as exc:  # shapely.errors.GEOSException and kin
        raise InvalidEntity(f"unparseable {geometry.get('type')} geometry") from exc
    return point.y, point.x, True


def read_geojson(stream: IO[bytes], columns: Mapping[str, str] | None = None) -> Iterator[Record]:
    """Yield the records of a GeoJSON FeatureCollection, streamed feature by feature.

    ``position`` is the feature's number in ``features``, from 1.
    """
    import ijson

    try:
        features = ijson.items(stream, "features.item", use_float=True)
        for position, feature in enumerate(features, start=1):
            yield feature_to_record(feature, position, columns)
    except (ijson.JSONError, *DECODE_ERRORS) as exc:
        raise UnreadableInput(f"unreadable GeoJSON: {exc}") from exc
