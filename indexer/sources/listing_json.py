"""Store listings in JSON: GeoJSON FeatureCollections (streamed) and NDJSON.

A Feature's geometry gives the point; a polygon or line is reduced to its
representative point (``Record.reduced``). Other keys are matched to fields by
:data:`indexer.sources.listings.ALIASES` (or a ``--col`` mapping); the rest go to ``attrs``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping
from typing import IO, Any

from indexer.model import InvalidEntity
from indexer.sources.listings import ALIASES, DECODE_ERRORS, Record, UnreadableInput


def _keyed_fields(
    values: Mapping[str, Any], columns: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split an object's keys into known fields (by mapping, then alias) and attrs."""
    folded = {str(key).lower(): key for key in reversed(list(values))}
    fields: dict[str, Any] = {}
    used: set[str] = set()
    for name, aliases in ALIASES.items():
        candidates = [columns[name]] if name in columns else [folded.get(a) for a in aliases]
        for key in candidates:
            if key is not None and key in values and values[key] not in (None, ""):
                fields[name] = values[key]
                used.add(key)
                break
    attrs = {key: value for key, value in values.items() if key not in used and value != ""}
    return fields, attrs


def feature_to_record(
    feature: Any, position: int, columns: Mapping[str, str] | None = None
) -> Record:
    """Turn one GeoJSON Feature into a record; a polygon or line gives its representative point."""
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        return Record(position, {}, problem="not a GeoJSON Feature", raw=feature)
    properties = feature.get("properties") or {}
    fields, attrs = _keyed_fields(properties, columns or {})
    if feature.get("id") not in (None, "") and "id" not in (columns or {}):
        fields["id"] = feature["id"]
        attrs.pop("id", None)
    for name in ("lat", "lng"):
        fields.pop(name, None)
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


def object_to_record(value: Any, position: int, columns: Mapping[str, str] | None = None) -> Record:
    """Turn one NDJSON value into a record: a GeoJSON Feature or a flat object."""
    if isinstance(value, dict) and value.get("type") == "Feature":
        return feature_to_record(value, position, columns)
    if not isinstance(value, dict):
        return Record(position, {}, problem="not a JSON object", raw=value)
    fields, attrs = _keyed_fields(value, columns or {})
    return Record(position, fields, attrs, raw=value)


def read_ndjson(stream: IO[bytes], columns: Mapping[str, str] | None = None) -> Iterator[Record]:
    """Yield the records of newline-delimited JSON, one a non-blank line.

    A line that is not JSON is a record with a problem, not an unreadable file.
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
