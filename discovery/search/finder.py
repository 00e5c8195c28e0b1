"""The read service behind the API: the hot index first, PostGIS when it cannot answer.

Redis being down (connection refused, timeouts) or holding no generation sends
the query to PostGIS and the answer says ``source: "postgis"``; the next query
tries Redis again, so it is used as soon as it is back, without a restart.  No
generation starts a healing rebuild (discovery/search/healing.py).  What each
search noticed goes to the services' :class:`~discovery.search.services.Notes`.

A query the hot index does not answer (:func:`postgis_only`) goes to PostGIS
at once: that is neither a Redis failure nor a missing index.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import redis

from discovery.search.nearby_script import NotAnswered
from discovery.search.postgis import entity_document, postgis_search
from discovery.search.query import NearbyQuery
from discovery.search.result import SearchResult
from discovery.search.services import Services
from indexer.errors import BadInput, NotFound
from indexer.hot.client import NoGeneration
from indexer.model import text_problem

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The orders the hot index ranks by: all of them.
HOT_SORTS = ("score", "distance", "popularity")


def postgis_only(query: NearbyQuery) -> bool:
    """Whether only PostGIS answers ``query``: the hot index ranks only by :data:`HOT_SORTS`."""
    return query.sort not in HOT_SORTS


def find_nearby(services: Services, query: NearbyQuery) -> SearchResult:
    """The exact page for ``query``; Unavailable when neither store answers."""
    if postgis_only(query):
        return from_postgis(services, query)
    found = from_hot_index(services, lambda: services.search.search(query))
    if found is None:
        return from_postgis(services, query)
    services.notes.source(found.source)
    return found


def from_hot_index(services: Services, ask: Callable[[], T]) -> T | None:
    """What ``ask`` gets from the hot index; None (what happened noted) when Redis is down,
    holds no index (a healing rebuild is started) or cannot answer: PostGIS must."""
    notes = services.notes
    try:
        return ask()
    except NoGeneration:
        log.warning("Redis holds no index generation: answering from PostGIS")
        notes.no_generation()
        services.healer.notice_missing()
    except redis.RedisError as exc:
        log.warning("Redis unavailable (%s): answering from PostGIS", type(exc).__name__)
        notes.redis_failed(exc)
    except NotAnswered as exc:
        log.info("the hot index cannot answer (%s): answering from PostGIS", exc)
        notes.not_answered()
    return None


def from_postgis(services: Services, query: NearbyQuery) -> SearchResult:
    """The exact page for ``query`` from PostGIS (its replica when it keeps up)."""
    found = services.read(lambda conn: postgis_search(conn, query))
    services.notes.source(found.source)
    return found


def find_entity(services: Services, entity_id: str) -> dict[str, Any]:
    """One entity's display document from Redis, else PostGIS.

    BadInput for an id no entity can have, NotFound for one no entity has,
    Unavailable when the store that must answer does not.
    """
    problem = text_problem(entity_id)
    if problem is not None:  # PostgreSQL text cannot hold it
        raise BadInput(f"id {problem}", "id")
    doc = hot_entity(services, entity_id)
    if doc is None:
        services.notes.source("postgis")
        doc = services.read(lambda conn: entity_document(conn, entity_id))
    if doc is None:
        raise NotFound(f"no entity {entity_id[:200]!r}")
    return doc


def hot_entity(services: Services, entity_id: str) -> dict[str, Any] | None:
    """The entity's display document from Redis; None when Redis cannot say (PostGIS may)."""
    notes = services.notes
    try:
        reply = services.search.entity(entity_id)
    except redis.RedisError as exc:
        log.warning("Redis unavailable (%s): reading PostGIS", type(exc).__name__)
        notes.redis_failed(exc)
        return None
    if reply[0] == "ok":
        notes.source("redis")
        found: dict[str, Any] = json.loads(reply[1])
        return found
    if reply[0] == "nogen":
        notes.no_generation()
        services.healer.notice_missing()
    return None
