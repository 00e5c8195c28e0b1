"""The read service behind the API: the hot index first, PostGIS when it cannot answer.

Redis being down (connection refused, timeouts) or holding no generation sends
the query to PostGIS and the answer says ``source: "postgis"``; the next query
tries Redis again, so it is used as soon as it is back, without a restart.  No
generation starts a healing rebuild (discovery/search/healing.py).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import redis

from discovery.api.requestlog import error_kind, note_fallback, note_source
from discovery.search.postgis import entity_document, postgis_search
from discovery.search.query import NearbyQuery
from discovery.search.result import SearchResult
from discovery.search.services import Services, services
from indexer.hot.client import NoGeneration

log = logging.getLogger(__name__)


def find_nearby(query: NearbyQuery) -> SearchResult:
    """The exact page for ``query``; ServiceUnavailable when neither store answers."""
    return find_nearby_with(services(), query)


def find_nearby_with(svc: Services, query: NearbyQuery) -> SearchResult:
    """:func:`find_nearby` with the app's services given (no app context needed)."""
    try:
        found = svc.search.search(query)
    except NoGeneration:
        log.warning("Redis holds no index generation: answering from PostGIS")
        note_fallback("no_generation")
        svc.healer.notice_missing()
    except redis.RedisError as exc:
        log.warning("Redis unavailable (%s): answering from PostGIS", type(exc).__name__)
        note_fallback(error_kind(exc), redis_error=error_kind(exc))
    else:
        note_source(found.source)
        return found
    with svc.postgis() as conn:
        found = postgis_search(conn, query)
    note_source(found.source)
    return found


def find_entity(entity_id: str) -> dict[str, Any] | None:
    """One entity's display document from Redis, else PostGIS; None when unknown."""
    try:
        reply = services().search.entity(entity_id)
        if reply[0] == "ok":
            note_source("redis")
            found: dict[str, Any] = json.loads(reply[1])
            return found
        if reply[0] == "nogen":
            note_fallback("no_generation")
            services().healer.notice_missing()
    except redis.RedisError as exc:
        log.warning("Redis unavailable (%s): reading PostGIS", type(exc).__name__)
        note_fallback(error_kind(exc), redis_error=error_kind(exc))
    note_source("postgis")
    with services().postgis() as conn:
        return entity_document(conn, entity_id)
