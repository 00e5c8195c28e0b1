"""Coercion of the values that sources give: numbers, booleans, counts, times, points, text.

Two manners: the lenient ``as_*`` functions and :func:`lat_lng` give None for a
missing or malformed value (a feed's optional fields), while
:func:`parse_coordinate` and :func:`parse_point` refuse one with the reason
(:class:`~indexer.sources.rejects.InvalidEntity`), for a listing's rejects file.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from indexer.model import normalize_lng
from indexer.sources.rejects import InvalidEntity


def as_float(value: Any) -> float | None:
    """A finite float (numbers or numeric strings), or None."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def as_count(value: Any) -> int | None:
    """A non-negative integer count, or None when missing or malformed."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None


def as_bool(value: Any) -> bool:
    """Feed booleans: true/false, 0/1, and the strings "1", "true" and "yes" (any case)."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def as_text(value: Any) -> str:
    """A value as stripped text; None is empty."""
    return "" if value is None else str(value).strip()


def parse_time(value: Any) -> datetime | None:
    """POSIX seconds or an RFC 3339 string as an aware UTC datetime; None when neither.

    A string of digits is POSIX seconds; an RFC 3339 time without an offset is UTC.
    A time beyond what datetime holds (years 1 to 9999) is None too, not an error.
    """
    if value is None or isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, tz=UTC) if math.isfinite(value) else None
        if isinstance(value, str) and value:
            return _parse_time_text(value.strip())
    except (OverflowError, OSError, ValueError):
        return None
    return None


def _parse_time_text(text: str) -> datetime:
    """POSIX seconds or RFC 3339 as text; ValueError or OverflowError when neither."""
    if text.isascii() and text.isdigit():
        return datetime.fromtimestamp(int(text), tz=UTC)
    # fromisoformat reads "Z" and offsets from Python 3.11 on.
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def objects(value: Any) -> Iterator[Mapping[str, Any]]:
    """The objects of a JSON list (anything else yields nothing)."""
    for item in value if isinstance(value, list) else []:
        if isinstance(item, dict):
            yield item


def slug(text: str) -> str:
    """Lowercase ASCII slug of a name: "Shell Recharge" -> "shell-recharge"."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def lat_lng(lat: Any, lng: Any) -> tuple[float, float] | None:
    """(lat, lng) from numbers or numeric strings, or None when missing or out of range.

    Longitude 180 becomes -180.
    """
    lat_f, lng_f = as_float(lat), as_float(lng)
    if lat_f is None or lng_f is None:
        return None
    if not -90.0 <= lat_f <= 90.0 or not -180.0 <= lng_f <= 180.0:
        return None
    return lat_f, normalize_lng(lng_f)


def parse_coordinate(value: Any, name: str) -> float:
    """Parse a latitude or longitude (number or numeric string), refusing NaN and infinity.

    Raises
    ------
    InvalidEntity
        The value is missing, a boolean, not a number, NaN or infinite.
    """
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
    """Parse and range-check a point; longitude 180 becomes -180.

    Raises
    ------
    InvalidEntity
        A coordinate does not parse (:func:`parse_coordinate`) or is out of range.
    """
    lat = parse_coordinate(lat_value, "latitude")
    lng = parse_coordinate(lng_value, "longitude")
    if not -90.0 <= lat <= 90.0:
        raise InvalidEntity(f"latitude {lat} outside [-90, 90]")
    if not -180.0 <= lng <= 180.0:
        raise InvalidEntity(f"longitude {lng} outside [-180, 180]")
    return lat, normalize_lng(lng)
