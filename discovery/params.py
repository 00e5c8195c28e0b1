"""Query parameters of GET /v1/nearby, parsed into a NearbyQuery.

Every problem is a BadParameter naming the parameter: missing, given twice,
not a number, NaN or infinite, out of range, not one of the allowed values,
or not a parameter at all.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace

from discovery.errors import BadParameter
from discovery.query import NearbyQuery, StaleLimits
from discovery.ranking import decode_cursor
from discovery.settings import RankingSettings
from indexer.model import KINDS

PARAMETERS = frozenset(
    {
        "lat",
        "lng",
        "radius",
        "kinds",
        "category",
        "mini_app",
        "available",
        "open_now",
        "group",
        "sort",
        "scale",
        "popularity_weight",
        "limit",
        "cursor",
        "explain",
    }
)
RADIUS_M = (10.0, 50_000.0)
SCALE_M = (1.0, 200_000.0)
POPULARITY_WEIGHT = (0.0, 10.0)
LIMIT = (1, 100)
#: Slugs of categories and mini-apps: what listings may hold, nothing odd.
_SLUG = re.compile(r"^[^\x00-\x1f,]{1,128}$")
_TRUE = {"true": True, "1": True, "false": False, "0": False}


def single(args: Mapping[str, Sequence[str]], name: str) -> str | None:
    """The one value of ``name``, None when absent; given twice is an error."""
    values = args.get(name) or []
    if len(values) > 1:
        raise BadParameter(f"{name} is given more than once", name)
    return values[0] if values else None


def number(
    text: str | None, name: str, bounds: tuple[float, float], default: float | None
) -> float:
    """A finite float within ``bounds`` (inclusive)."""
    if text is None or text == "":
        if default is None:
            raise BadParameter(f"{name} is required", name)
        return default
    try:
        value = float(text)
    except ValueError as exc:
        raise BadParameter(f"{name} must be a number, got {text[:40]!r}", name) from exc
    if not math.isfinite(value) or not bounds[0] <= value <= bounds[1]:
        raise BadParameter(f"{name} must be a number in [{bounds[0]:g}, {bounds[1]:g}]", name)
    return value


def integer(text: str | None, name: str, bounds: tuple[int, int], default: int) -> int:
    """An integer within ``bounds`` (inclusive)."""
    if text is None or text == "":
        return default
    if not re.fullmatch(r"[+-]?\d{1,9}", text.strip()):
        raise BadParameter(f"{name} must be an integer, got {text[:40]!r}", name)
    value = int(text)
    if not bounds[0] <= value <= bounds[1]:
        raise BadParameter(f"{name} must be an integer in [{bounds[0]}, {bounds[1]}]", name)
    return value


def flag(text: str | None, name: str) -> bool:
    """true/false (or 1/0); absent is false."""
    if text is None or text == "":
        return False
    value = _TRUE.get(text.strip().lower())
    if value is None:
        raise BadParameter(f"{name} must be true or false", name)
    return value


def choice(text: str | None, name: str, allowed: Sequence[str], default: str | None) -> str | None:
    """One of ``allowed``."""
    if text is None or text == "":
        return default
    if text not in allowed:
        raise BadParameter(f"{name} must be one of {', '.join(allowed)}", name)
    return text


def slugs(text: str | None, name: str, allowed: Sequence[str] | None = None) -> tuple[str, ...]:
    """A comma-separated list of values (sorted, without repeats); empty when absent."""
    if text is None or text == "":
        return ()
    values = sorted({part.strip() for part in text.split(",")})
    for value in values:
        if not _SLUG.match(value) or (allowed is not None and value not in allowed):
            hint = f": one of {', '.join(allowed)}" if allowed else ""
            raise BadParameter(f"{name} has a bad value {value[:40]!r}{hint}", name)
    return tuple(values)


def check_names(args: Mapping[str, Sequence[str]]) -> None:
    """Refuse any parameter we do not know (first one, alphabetically)."""
    unknown = sorted(set(args) - PARAMETERS)
    if unknown:
        raise BadParameter(f"unknown parameter {unknown[0][:40]!r}", unknown[0])


def parse_nearby(
    args: Mapping[str, Sequence[str]],
    ranking: RankingSettings,
    stale: StaleLimits,
    now_s: float,
    cursor_key: bytes,
) -> NearbyQuery:
    """A validated NearbyQuery from the request's parameters (each a list of values).

    A cursor must be one signed with ``cursor_key`` for the same query.
    """
    check_names(args)
    get: dict[str, str | None] = dict.fromkeys(PARAMETERS)
    for name in args:
        get[name] = single(args, name)
    radius_m = number(get["radius"], "radius", RADIUS_M, 1000.0)
    query = NearbyQuery(
        lat=number(get["lat"], "lat", (-90.0, 90.0), None),
        lng=number(get["lng"], "lng", (-180.0, 180.0), None),
        radius_m=radius_m,
        kinds=slugs(get["kinds"], "kinds", KINDS),
        categories=slugs(get["category"], "category"),
        mini_apps=slugs(get["mini_app"], "mini_app"),
        available=flag(get["available"], "available"),
        open_now=flag(get["open_now"], "open_now"),
        group=choice(get["group"], "group", ("mini_app",), None),
        sort=choice(get["sort"], "sort", ("score", "distance"), "score") or "score",
        scale_m=number(get["scale"], "scale", SCALE_M, radius_m * ranking.scale_fraction),
        popularity_weight=number(
            get["popularity_weight"],
            "popularity_weight",
            POPULARITY_WEIGHT,
            ranking.popularity_weight,
        ),
        limit=integer(get["limit"], "limit", LIMIT, 20),
        explain=flag(get["explain"], "explain"),
        now_s=now_s,
        stale=stale,
    )
    cursor = get["cursor"]
    if cursor:
        try:
            query = replace(query, after=decode_cursor(cursor, query, cursor_key))
        except ValueError as exc:
            raise BadParameter(str(exc), "cursor") from exc
    return query
