"""Usage events as a platform sends them, checked one by one before any is applied.

An event is ``{type, entity_id or mini_app, user (optional, opaque), at}``:
``type`` one of the configured types (``NEARBY_EVENT_WEIGHTS``), ``entity_id``
an entity PostGIS holds or ``mini_app`` a slug the catalog holds (one of the
two), ``user`` text of at most :data:`MAX_USER_LENGTH` characters, ``at`` RFC
3339 or POSIX seconds (a number, or digits as text), at most
``NEARBY_EVENT_FUTURE_S`` ahead of now. Each bad event is reported with its
index, reason and field; the good ones are stored (:func:`take_events`) and
counted by the next round (:func:`apply_round`), whose entities' new masses go
to the hot index at once (patched into the members Redis holds,
:func:`masses_to_hot`), as a live feed's moves do; :func:`apply_events` counts
a batch before it returns. The HTTP endpoint and
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
from indexer.store.errors import HotIndexUnavailable
from indexer.store.items import MAX_ID_LENGTH, MAX_ITEMS, ItemProblem, taking_turns
from indexer.store.live import apply_to_hot
from indexer.store.usage import (
    MAX_EXPONENT,
    MassChange,
    UsageEvent,
    exponent,
    look_up_names,
    store_usage,
)
from indexer.store.usage_rounds import Round, round_lock, take_round

#: The most events one call takes (the HTTP endpoint's limit too).
MAX_EVENTS = MAX_ITEMS
#: Longest user id; ids are opaque to us (and never logged).
MAX_USER_LENGTH = 128
#: A user id: visible ASCII that needs no escaping in a URL path segment.
USER_PATTERN = r"^[A-Za-z0-9._~:@+=-]{1,128}$"
_USER = re.compile(USER_PATTERN)
#: POSIX seconds as text (a stream's fields are text).
_SECONDS = re.compile(r"[0-9]{1,12}(?:\.[0-9]*)?")
#: Events checked between two turns for the worker's other requests (about half a
#: millisecond of checking).
TURN_EVENTS = 256
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


def check_name(value: Any, name: str, limit: int) -> str:
    """``entity_id`` or ``mini_app``: non-empty text PostgreSQL can hold, of bounded length."""
    if not isinstance(value, str) or not value:
        raise ItemProblem(name, f"{name} must be a non-empty string")
    if len(value) > limit:
        raise ItemProblem(name, f"{name} is longer than {limit} characters")
    if value.isascii() and "\x00" not in value:
        return value  # the common case, without encoding the text to look for surrogates
    problem = text_problem(value)
    if problem is not None:
        raise ItemProblem(name, f"{name} {problem}")
    return value


def check_event(index: int, item: Any, usage: UsageSettings, now_s: float) -> UsageEvent:
    """An event checked but for whether what it names exists, or ItemProblem."""
    if type(item) is not dict and not isinstance(item, Mapping):
        if isinstance(item, Malformed):
            raise ItemProblem("event", "event is not JSON")
        raise ItemProblem("event", "event must be an object")
    kind = item.get("type")
    weight = usage.weights.get(kind) if isinstance(kind, str) else None
    if weight is None:
        raise ItemProblem("type", f"type must be one of {', '.join(usage.weights)}")
    entity_id, slug = item.get("entity_id"), item.get("mini_app")
    if (entity_id is None) == (slug is None):
        raise ItemProblem("entity_id", "give one of entity_id and mini_app")
    if entity_id is not None:
        entity_id, slug = check_name(entity_id, "entity_id", MAX_ID_LENGTH), ""
    else:
        slug = check_name(slug, "mini_app", MAX_ID_LENGTH)
    user = item.get("user")
    if user is not None:
        user = check_user(user)
    at_s = check_at(item.get("at"), now_s, usage.future_s, usage.half_life_s)
    return UsageEvent(index, str(kind), entity_id, slug, user, at_s, weight)


def shape_events(
    items: Sequence[Any], usage: UsageSettings, now_s: float, errors: list[EventError]
) -> list[UsageEvent]:
    """Each event checked alone (:func:`check_event`); the refused go to ``errors``."""
    if len(items) > MAX_EVENTS:
        raise ValueError(f"at most {MAX_EVENTS} events a batch")
    shaped: list[UsageEvent] = []
    for index, item in taking_turns(enumerate(items), TURN_EVENTS):
        try:
            shaped.append(check_event(index, item, usage, now_s))
        except ItemProblem as problem:
            errors.append(EventError(index, problem.reason, problem.param))
    return shaped


def unknown(item: int, by_entity: bool) -> EventError:
    """Why an event whose entity or mini-app does not exist is refused."""
    if by_entity:
        return EventError(item, "unknown entity", "entity_id")
    return EventError(item, "unknown mini-app", "mini_app")


def check_events(
    conn: psycopg.Connection, items: Sequence[Any], usage: UsageSettings, now_s: float
) -> EventBatch:
    """Check a batch without storing it: each event alone, then what they name (one
    statement), each good event with its mini-app."""
    batch = EventBatch(len(items))
    shaped = shape_events(items, usage, now_s, batch.errors)
    apps = look_up_names(conn, shaped)
    for event in shaped:
        app = apps[event.item]
        if app is None:
            batch.errors.append(unknown(event.item, event.entity_id is not None))
        else:
            batch.events.append(event._replace(mini_app=app))
    batch.errors.sort(key=lambda error: error.index)
    return batch


def take_events(
    conn: psycopg.Connection, items: Sequence[Any], usage: UsageSettings, now_s: float
) -> EventBatch:
    """Check a batch of raw events and store the good ones for the next round
    (:mod:`indexer.store.usage_rounds`; what they name is looked up as they are
    stored, in one statement): what was taken and refused."""
    batch = EventBatch(len(items))
    shaped = shape_events(items, usage, now_s, batch.errors)
    refused = store_usage(conn, shaped, usage.half_life_s)
    if refused:
        gone = {item for item, _ in refused}
        batch.errors += [unknown(item, by_entity) for item, by_entity in refused]
        shaped = [event for event in shaped if event.item not in gone]
    batch.events = shaped
    batch.errors.sort(key=lambda error: error.index)
    return batch


def apply_events(
    conn: psycopg.Connection,
    hot: HotIndex,
    items: Sequence[Any],
    usage: UsageSettings,
    now_s: float,
) -> EventBatch:
    """Check a batch of raw events, store the good ones and count them at once (a round
    of its own, after the one under way: PostGIS, then the hot index); what was
    applied and refused (see :func:`apply_round` when Redis fails)."""
    batch = take_events(conn, items, usage, now_s)
    if batch.events:
        apply_round(conn, hot, wait=True)
    return batch


def receive_events(
    conn: psycopg.Connection,
    hot: HotIndex,
    items: Sequence[Any],
    usage: UsageSettings,
    now_s: float,
) -> EventBatch:
    """A batch as the HTTP endpoint and the stream consumer take it: stored for the next
    round (:func:`take_events`), or counted before it returns when rounds are off
    (``NEARBY_EVENT_ROUND_S`` 0, :func:`apply_events`)."""
    if usage.round_s <= 0:
        return apply_events(conn, hot, items, usage, now_s)
    return take_events(conn, items, usage, now_s)


def apply_round(
    conn: psycopg.Connection, hot: HotIndex, *, wait: bool, spacing_s: float = 0.0
) -> Round | None:
    """A round (:func:`~indexer.store.usage_rounds.take_round`), its new masses then sent
    to the hot index, the rounds' lock held throughout (so that rounds reach Redis in
    the order they were made); None when another process held the lock and ``wait``
    is false, or the last round began less than ``spacing_s`` ago.

    Should Redis fail once PostGIS holds the round, a mark is left (the next
    write or server start rebuilds the hot index) and HotIndexUnavailable raised.
    """
    with round_lock(conn, wait=wait) as held:
        counted = take_round(conn, spacing_s) if held else None
        if counted is not None and counted.changes:
            try:
                masses_to_hot(conn, hot, counted.changes)
            except HotIndexUnavailable:
                leave_mark(conn, "events")
                raise
    return counted


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
