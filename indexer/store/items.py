"""The items an operator pushes, checked one by one before anything is written."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from indexer.hot.layout import SEP
from indexer.model import text_problem
from indexer.sources.values import parse_time

#: The most items one call takes (the HTTP endpoints' limit too).
MAX_ITEMS = 10_000
#: Longest id accepted; ids are ``{source}:{native id}``.
MAX_ID_LENGTH = 512
#: A pushed ``seen_at`` may run ahead of our clock by this much (clock skew).
FUTURE_SKEW = timedelta(minutes=5)
#: Counts above this are surely mistakes (and would overflow the integer column).
MAX_COUNT = 100_000
#: Items a long loop over a batch handles between two turns it gives to the
#: process's other requests (see :func:`taking_turns`).
TURN_ITEMS = 64

T = TypeVar("T")


def taking_turns(items: Iterable[T], every: int = TURN_ITEMS) -> Iterator[T]:
    """``items``, with a pause of no time after each ``every`` of them.

    A server worker checks a batch of 10,000 items in a few hundred
    milliseconds of pure Python, and another request of the same worker (a
    query, under gevent a greenlet that waits for this one to block; under
    threads one that waits for the interpreter lock) would wait all that time:
    ``time.sleep(0)`` (gevent's sleep once patched) lets it run between two
    slices of the loop.
    """
    for n, item in enumerate(items, 1):
        yield item
        if not n % every:
            time.sleep(0)


@dataclass(frozen=True, slots=True)
class ItemError:
    """Why item ``index`` of a batch was not applied; ``param`` names the field."""

    index: int
    id: str | None
    reason: str
    param: str | None = None


@dataclass(frozen=True, slots=True)
class Position:
    """A checked position update."""

    index: int
    id: str
    lat: float
    lng: float
    available: int | None
    seen_at: datetime


@dataclass(frozen=True, slots=True)
class Availability:
    """A checked availability update."""

    index: int
    id: str
    available: int
    capacity: int | None
    seen_at: datetime


class ItemProblem(ValueError):
    """One field of one item is wrong."""

    def __init__(self, param: str, reason: str) -> None:
        super().__init__(reason)
        self.param = param
        self.reason = reason


def check_id(item: Mapping[str, Any]) -> str:
    """The item's id: non-empty text PostgreSQL can hold, of bounded length, without U+001F."""
    value = item.get("id")
    if not isinstance(value, str) or not value:
        raise ItemProblem("id", "id must be a non-empty string")
    if len(value) > MAX_ID_LENGTH:
        raise ItemProblem("id", f"id is longer than {MAX_ID_LENGTH} characters")
    if SEP in value:
        raise ItemProblem("id", "id must not contain U+001F")
    problem = text_problem(value)
    if problem is not None:
        raise ItemProblem("id", f"id {problem}")
    return value


def shown_id(item: Any) -> str | None:
    """The id an error names: the item's id when it is text, lone surrogates as U+FFFD."""
    value = item.get("id") if isinstance(item, Mapping) else None
    if not isinstance(value, str):
        return None
    try:
        value.encode()
    except UnicodeEncodeError:  # a lone surrogate: the answer, UTF-8, could not hold it
        return "".join("\ufffd" if "\ud800" <= char <= "\udfff" else char for char in value)
    return value


def check_number(item: Mapping[str, Any], name: str, low: float, high: float) -> float:
    """A finite JSON number within [low, high] (booleans and strings refused)."""
    value = item.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ItemProblem(name, f"{name} must be a number")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any double
        number = math.inf
    if not math.isfinite(number) or not low <= number <= high:
        raise ItemProblem(name, f"{name} must be within [{low:g}, {high:g}]")
    return number


def check_count(item: Mapping[str, Any], name: str, *, required: bool) -> int | None:
    """A non-negative integer count (None when absent and not required)."""
    value = item.get(name)
    if value is None and not required:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ItemProblem(name, f"{name} must be an integer")
    if not 0 <= value <= MAX_COUNT:
        raise ItemProblem(name, f"{name} must be within [0, {MAX_COUNT}]")
    return value


def check_seen_at(item: Mapping[str, Any], now: datetime) -> datetime:
    """``seen_at`` (RFC 3339 or POSIX seconds), default ``now``; not in the future."""
    value = item.get("seen_at")
    if value is None:
        return now
    seen = parse_time(value) if isinstance(value, str | int | float) else None
    if seen is None:
        raise ItemProblem("seen_at", "seen_at must be an RFC 3339 time or POSIX seconds")
    if seen > now + FUTURE_SKEW:
        raise ItemProblem("seen_at", "seen_at is in the future")
    return seen


def check_position(index: int, item: Any, now: datetime) -> Position:
    """A position item checked, or ItemProblem."""
    if not isinstance(item, Mapping):
        raise ItemProblem("item", "item must be an object")
    lng = check_number(item, "lng", -180.0, 180.0)
    return Position(
        index=index,
        id=check_id(item),
        lat=check_number(item, "lat", -90.0, 90.0),
        lng=-180.0 if lng == 180.0 else lng,
        available=check_count(item, "available", required=False),
        seen_at=check_seen_at(item, now),
    )


def check_availability(index: int, item: Any, now: datetime) -> Availability:
    """An availability item checked, or ItemProblem."""
    if not isinstance(item, Mapping):
        raise ItemProblem("item", "item must be an object")
    available = check_count(item, "available", required=True) or 0
    capacity = check_count(item, "capacity", required=False)
    if capacity is not None and available > capacity:
        raise ItemProblem("available", f"available {available} exceeds capacity {capacity}")
    return Availability(index, check_id(item), available, capacity, check_seen_at(item, now))


def check_items(
    items: Sequence[Any], check: Callable[[int, Any, datetime], Any], now: datetime
) -> tuple[list[Any], list[ItemError]]:
    """Split ``items`` into checked values and errors; a repeated id is an error."""
    good: list[Any] = []
    errors: list[ItemError] = []
    seen: set[str] = set()
    for index, item in taking_turns(enumerate(items)):
        try:
            value = check(index, item, now)
        except ItemProblem as problem:
            errors.append(ItemError(index, shown_id(item), problem.reason, problem.param))
            continue
        if value.id in seen:
            errors.append(ItemError(index, value.id, "id repeated in this batch", "id"))
            continue
        seen.add(value.id)
        good.append(value)
    return good, errors
