"""Query parameters of GET /v1/nearby, parsed into a NearbyQuery.

Every problem is a BadInput naming the parameter: missing, given twice,
given empty (left out, a parameter takes its default; given, it must say
something), not a number, NaN or infinite, out of range, not one of the
allowed values, or not a parameter at all. The OpenAPI document
(:mod:`discovery.api.openapi`) states the same rules, from the same constants.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from discovery.search.query import NearbyQuery, StaleLimits
from discovery.search.ranking import resume
from discovery.settings import RankingSettings
from indexer.errors import BadInput
from indexer.model import KINDS
from indexer.rules import SORTS
from indexer.settings import DEFAULT_HALF_LIFE_S
from indexer.text import TextQuery, parse_query, query_problem

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
        "q",
    }
)
RADIUS_M = (10.0, 50_000.0)
SCALE_M = (1.0, 200_000.0)
POPULARITY_WEIGHT = (0.0, 10.0)
LIMIT = (1, 100)
#: Control characters (Unicode Cc): never part of a value.
_CONTROL = r"\x00-\x1f\x7f-\x9f"
#: ``category`` and ``mini_app``: one value or several, comma-separated, each
#: taken as it is (no control character, no comma, not empty).
LIST_PATTERN = rf"^[^{_CONTROL},]+(?:,[^{_CONTROL},]+)*$"
#: ``kinds``: one kind or several, comma-separated.
KINDS_PATTERN = rf"^(?:{'|'.join(KINDS)})(?:,(?:{'|'.join(KINDS)}))*$"
_LIST = re.compile(LIST_PATTERN)
_KINDS = re.compile(KINDS_PATTERN)
#: A cursor is URL-safe base64 without padding.
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"
FLAGS = ("true", "false", "1", "0")
#: A number as JSON writes one (a leading "+" and a bare "5." or ".5" allowed too);
#: not Python's float() syntax: no "nan", "inf", "1_000" or spaces.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_TRUE = {"true": True, "1": True, "false": False, "0": False}


def single(args: Mapping[str, Sequence[str]], name: str) -> str | None:
    """The one value of ``name``, None when absent; given twice, or empty, is an error."""
    values = args.get(name) or []
    if len(values) > 1:
        raise BadInput(f"{name} is given more than once", name)
    if values and values[0] == "":
        raise BadInput(f"{name} is empty (leave it out for its default)", name)
    return values[0] if values else None


def number(
    text: str | None, name: str, bounds: tuple[float, float], default: float | None
) -> float:
    """A finite float within ``bounds`` (inclusive)."""
    if text is None:
        if default is None:
            raise BadInput(f"{name} is required", name)
        return default
    if not _NUMBER.fullmatch(text):
        raise BadInput(f"{name} must be a number, got {text[:40]!r}", name)
    value = float(text)
    if not math.isfinite(value) or not bounds[0] <= value <= bounds[1]:
        raise BadInput(f"{name} must be a number in [{bounds[0]:g}, {bounds[1]:g}]", name)
    return value


def integer(text: str | None, name: str, bounds: tuple[int, int], default: int) -> int:
    """An integer within ``bounds`` (inclusive)."""
    if text is None:
        return default
    if not re.fullmatch(r"[+-]?[0-9]{1,9}", text):
        raise BadInput(f"{name} must be an integer, got {text[:40]!r}", name)
    value = int(text)
    if not bounds[0] <= value <= bounds[1]:
        raise BadInput(f"{name} must be an integer in [{bounds[0]}, {bounds[1]}]", name)
    return value


def flag(text: str | None, name: str) -> bool:
    """true/false (or 1/0); absent is false."""
    if text is None:
        return False
    value = _TRUE.get(text)
    if value is None:
        raise BadInput(f"{name} must be true or false", name)
    return value


def choice(text: str | None, name: str, allowed: Sequence[str], default: str | None) -> str | None:
    """One of ``allowed``."""
    if text is None:
        return default
    if text not in allowed:
        raise BadInput(f"{name} must be one of {', '.join(allowed)}", name)
    return text


def slugs(text: str | None, name: str, pattern: re.Pattern[str] = _LIST) -> tuple[str, ...]:
    """A comma-separated list of values (sorted, without repeats); empty when absent.

    The whole text must match ``pattern`` (:data:`LIST_PATTERN`, :data:`KINDS_PATTERN`).
    """
    if text is None:
        return ()
    if not pattern.fullmatch(text):
        hint = f" (one or more of {', '.join(KINDS)})" if pattern is _KINDS else ""
        raise BadInput(f"{name} has a bad value {text[:40]!r}{hint}", name)
    return tuple(sorted(set(text.split(","))))


def text_query(text: str | None) -> TextQuery | None:
    """``q`` parsed; None when absent (given empty, :func:`single` refused it)."""
    if text is None:
        return None
    problem = query_problem(text)
    if problem is not None:
        raise BadInput(f"q {problem}", "q")
    return parse_query(text)


def popularity_moment(now_s: float) -> float:
    """``now_s`` to the microsecond, as an answer states it (RFC 3339): the time a
    query's popularity is computed at, which a client can read back exactly."""
    return datetime.fromtimestamp(now_s, UTC).timestamp()


def check_names(args: Mapping[str, Sequence[str]]) -> None:
    """Refuse any parameter we do not know (first one, alphabetically)."""
    unknown = sorted(set(args) - PARAMETERS)
    if unknown:
        raise BadInput(f"unknown parameter {unknown[0][:40]!r}", unknown[0])


def parse_nearby(
    args: Mapping[str, Sequence[str]],
    ranking: RankingSettings,
    stale: StaleLimits,
    now_s: float,
    cursor_key: bytes,
    half_life_s: float = float(DEFAULT_HALF_LIFE_S),
) -> NearbyQuery:
    """A validated NearbyQuery from the request's parameters (each a list of values),
    its popularity computed at ``now_s`` (with the usage half-life ``half_life_s``).

    A cursor must be one signed with ``cursor_key`` for the same query; its page
    ranks by the popularity of its first page's time.
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
        kinds=slugs(get["kinds"], "kinds", _KINDS),
        categories=slugs(get["category"], "category"),
        mini_apps=slugs(get["mini_app"], "mini_app"),
        available=flag(get["available"], "available"),
        open_now=flag(get["open_now"], "open_now"),
        group=choice(get["group"], "group", ("mini_app",), None),
        sort=choice(get["sort"], "sort", SORTS, "score") or "score",
        scale_m=number(get["scale"], "scale", SCALE_M, radius_m * ranking.scale_fraction),
        popularity_weight=number(
            get["popularity_weight"],
            "popularity_weight",
            POPULARITY_WEIGHT,
            ranking.popularity_weight,
        ),
        limit=integer(get["limit"], "limit", LIMIT, 20),
        explain=flag(get["explain"], "explain"),
        text=text_query(get["q"]),
        now_s=now_s,
        stale=stale,
        popularity_at_s=popularity_moment(now_s),
        half_life_s=half_life_s,
    )
    cursor = get["cursor"]
    if cursor is not None:
        try:
            query = resume(query, cursor, cursor_key)
        except ValueError as exc:
            raise BadInput(str(exc), "cursor") from exc
    return query
