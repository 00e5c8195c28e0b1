"""Usage events as a platform sends them, checked one by one before any is applied.

An event is ``{type, entity_id or mini_app, user (optional, opaque), at}``:
``type`` one of the configured types (``NEARBY_EVENT_WEIGHTS``), ``entity_id``
an entity PostGIS holds or ``mini_app`` a slug the catalog holds (one of the
two), ``user`` text of at most :data:`MAX_USER_LENGTH` characters, ``at`` RFC
3339 or POSIX seconds (a number, or digits as text), at most
``NEARBY_EVENT_FUTURE_S`` ahead of now. Each bad event is reported with its
index, reason and field; the good ones are applied
(:func:`indexer.store.usage.apply_usage`), and the entities whose usage changed
go to the hot index at once (their new masses patched into the members Redis
holds, :func:`masses_to_hot`), as a live feed's moves do. The HTTP endpoint and
the stream consumer check with the same code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
import redis
from psycopg.rows import dict_row

from indexer.hot.client import NoGeneration
from indexer.hot.index import HotIndex, row_columns
from indexer.hot.pending import leave_mark
from indexer.model import text_problem
from indexer.settings import UsageSettings
from indexer.sources.values import parse_time
from indexer.store.catalog import known_slugs
from indexer.store.errors import HotIndexUnavailable
from indexer.store.items import MAX_ID_LENGTH, MAX_ITEMS, ItemProblem, taking_turns
from indexer.store.live import apply_to_hot
from indexer.store.usage import MAX_EXPONENT, MassChange, UsageEvent, apply_usage, exponent

#: The most events one call takes (the HTTP endpoint's limit too).
MAX_EVENTS = MAX_ITEMS
#: Longest user id; ids are opaque to us (and never logged).
MAX_USER_LENGTH = 128
#: A user id: visible ASCII that needs no escaping in a URL path segment.
USER_PATTERN = r"^[A-Za-z0-9._~:@+=-]{1,128}$"
_USER = re.compile(USER_PATTERN)
#: POSIX seconds as text (a stream's fields are text).
_SECONDS = re.compile(r"[0-9]{1,12}(?:\.[0-9]*)?")
#: The rows of entities whose masses could not be patched, as the hot index takes them.
ROWS_SQL = f"SELECT {row_columns()} FROM entities e WHERE e.id = ANY(%s)"


class Malformed:
    """An event that could not be read at all (an NDJSON line that is not JSON)."""


@dataclass(frozen=True, slots=True)
class EventError:
    """Why event ``index`` of a batch was not applied; ``param`` names the field."""

    index: int
    reason: str
    param: str | None = None


@dataclass
class EventBatch:
    """The events of a batch, checked: those to apply and those refused."""

    received: int
    events: list[UsageEvent] = field(default_factory=list)
    errors: list[EventError] = field(default_factory=list)


def check_user(value: Any) -> str | None:
    """A user id (None when absent): 1-128 characters of :data:`USER_PATTERN`."""
    if value is None:
        return None
    if not isinstance(value, str) or not _USER.fullmatch(value):
        raise ItemProblem("user", "user must be 1-128 letters, digits or ._~:@+=-")
    return value


def check_at(value: Any, now_s: float, future_s: float, half_life_s: float) -> float:
    """``at`` in POSIX seconds: RFC 3339 or seconds, not beyond now + ``future_s``."""
    if isinstance(value, str) and _SECONDS.fullmatch(value):
        value = float(value)
    moment = parse_time(value) if isinstance(value, str | int | float) else None
    if moment is None:
        raise ItemProblem("at", "at must be an RFC 3339 time or POSIX seconds")
    at_s = moment.timestamp()
    if at_s > now_s + future_s:
        raise ItemProblem("at", "at is in the future")
    if exponent(at_s, half_life_s) > MAX_EXPONENT:
        raise ItemProblem("at", "at is beyond the range of the usage masses")
    return at_s


def check_name(item: Mapping[str, Any], name: str, limit: int) -> str:
    """``entity_id`` or ``mini_app``: non-empty text PostgreSQL can hold, of bounded length."""
    value = item.get(name)
    if not isinstance(value, str) or not value:
        raise ItemProblem(name, f"{name} must be a non-empty string")
    if len(value) > limit:
        raise ItemProblem(name, f"{name} is longer than {limit} characters")
    problem = text_problem(value)
    if problem is not None:
        raise ItemProblem(name, f"{name} {problem}")
    return value


def check_event(index: int, item: Any, usage: UsageSettings, now_s: float) -> UsageEvent:
    """An event checked but for whether what it names exists, or ItemProblem."""
    if isinstance(item, Malformed):
        raise ItemProblem("event", "event is not JSON")
    if not isinstance(item, Mapping):
        raise ItemProblem("event", "event must be an object")
    kind = item.get("type")
    weight = usage.weights.get(kind) if isinstance(kind, str) else None
    if weight is None:
        raise ItemProblem("type", f"type must be one of {', '.join(usage.weights)}")
    names = [name for name in ("entity_id", "mini_app") if item.get(name) is not None]
    if len(names) != 1:
        raise ItemProblem("entity_id", "give one of entity_id and mini_app")
    named = check_name(item, names[0], MAX_ID_LENGTH)
    entity_id, slug = (named, "") if names[0] == "entity_id" else (None, named)
    return UsageEvent(
        item=index,
        type=str(kind),
        entity_id=entity_id,
        mini_app=slug,
        user=check_user(item.get("user")),
        at_s=check_at(item.get("at"), now_s, usage.future_s, usage.half_life_s),
        weight=weight,
    )


def entity_apps(conn: psycopg.Connection, ids: Sequence[str]) -> dict[str, str]:
    """The mini-app of each of ``ids`` that PostGIS holds (unknown ids left out)."""
    if not ids:
        return {}
    with conn.cursor() as cur:
        cur.execute("SELECT id, mini_app FROM entities WHERE id = ANY(%s)", (list(ids),))
        return dict(cur.fetchall())


def resolve(event: UsageEvent, apps: Mapping[str, str], slugs: set[str]) -> UsageEvent | EventError:
    """The event with its entity's mini-app, or why what it names does not exist."""
    if event.entity_id is not None:
        if event.entity_id not in apps:
            return EventError(event.item, "unknown entity", "entity_id")
        return event._replace(mini_app=apps[event.entity_id])
    if event.mini_app not in slugs:
        return EventError(event.item, "unknown mini-app", "mini_app")
    return event


def check_events(
    conn: psycopg.Connection, items: Sequence[Any], usage: UsageSettings, now_s: float
) -> EventBatch:
    """Check a batch: each event alone, then what they name in one look-up per table."""
    if len(items) > MAX_EVENTS:
        raise ValueError(f"at most {MAX_EVENTS} events a batch")
    batch = EventBatch(len(items))
    shaped: list[UsageEvent] = []
    for index, item in taking_turns(enumerate(items)):
        try:
            shaped.append(check_event(index, item, usage, now_s))
        except ItemProblem as problem:
            batch.errors.append(EventError(index, problem.reason, problem.param))
    with conn.transaction():
        apps = entity_apps(conn, list({e.entity_id for e in shaped if e.entity_id is not None}))
        slugs = known_slugs(conn, (e.mini_app for e in shaped if e.entity_id is None))
    for event in taking_turns(shaped, 256):
        resolved = resolve(event, apps, slugs)
        if isinstance(resolved, EventError):
            batch.errors.append(resolved)
        else:
            batch.events.append(resolved)
    batch.errors.sort(key=lambda error: error.index)
    return batch


def apply_events(
    conn: psycopg.Connection,
    hot: HotIndex,
    items: Sequence[Any],
    usage: UsageSettings,
    now_s: float,
) -> EventBatch:
    """Check a batch of raw events and apply the good ones (PostGIS, then the hot index);
    what was applied and refused.

    Should Redis fail once PostGIS holds the events, a mark is left (the next
    write or server start rebuilds the hot index) and HotIndexUnavailable raised.
    """
    batch = check_events(conn, items, usage, now_s)
    changes = apply_usage(conn, batch.events, usage.half_life_s)
    if changes:
        try:
            masses_to_hot(conn, hot, changes)
        except HotIndexUnavailable:
            leave_mark(conn, "events")
            raise
    return batch


def masses_to_hot(conn: psycopg.Connection, hot: HotIndex, changes: Sequence[MassChange]) -> bool:
    """Send new masses to Redis: patched into the members held (masses.lua), and the
    whole rows of the entities the script could not patch (an earlier write of
    theirs still on its way, a rebuild that has not reached them), read again
    from PostGIS. False when Redis holds no generation to write to."""
    try:
        whole = hot.apply_masses(changes)
    except NoGeneration:
        return False
    except redis.RedisError as exc:
        raise HotIndexUnavailable(f"Redis could not be updated: {exc}") from exc
    if not whole:
        return True
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        cur.execute(ROWS_SQL, (whole,))
        rows = cur.fetchall()
    return apply_to_hot(hot, rows)
