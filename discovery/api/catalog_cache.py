"""The mini-app catalog as an API process keeps it: a copy, looked at again once a second.

Each process holds the whole catalog (it is small) and, at most once every
:data:`CHECK_EVERY_S`, reads the revision that Redis's ``{prefix}:apps`` carries
(one HGET); only when it differs does it read the entries. When Redis holds no
such key (a fresh Redis, ``FLUSHALL``), the catalog is read from PostGIS and put
back (:func:`indexer.store.catalog.restore_catalog`); when Redis is down, the
revision is read from PostGIS instead. When neither answers the copy held is
kept (an empty catalog before the first read): a nearby answer then shows slugs
without names, and what needs the catalog itself is a 503.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any
from weakref import WeakKeyDictionary

import psycopg
import redis

from discovery.search.services import Services
from indexer.errors import NearbyError, Unavailable
from indexer.store.catalog import (
    REVISION,
    Catalog,
    held_catalog,
    held_revision,
    read_catalog,
    restore_catalog,
)

log = logging.getLogger(__name__)

#: Seconds between two looks at the catalog's revision: an import shows in every
#: process within this long.
CHECK_EVERY_S = 1.0
EMPTY = Catalog(-1, {})


def postgis_revision(conn: psycopg.Connection) -> int:
    """The catalog's revision as PostGIS holds it."""
    with conn.cursor() as cur:
        cur.execute(REVISION)
        return int((cur.fetchone() or (0,))[0])


class CatalogCache:
    """One process's copy of the catalog (see the module)."""

    def __init__(self, services: Services, check_every_s: float = CHECK_EVERY_S) -> None:
        self.services = services
        self.prefix = services.settings.index.redis_prefix
        self.check_every_s = check_every_s
        self._catalog: Catalog | None = None
        self._next_check = 0.0
        self._lock = threading.Lock()

    def current(self) -> Catalog:
        """The catalog, looked at again when the last look is older than ``check_every_s``.

        Unavailable when no store has answered yet.
        """
        held = self._catalog
        if held is not None and time.monotonic() < self._next_check:
            return held
        with self._lock:
            if self._catalog is None or time.monotonic() >= self._next_check:
                self._next_check = time.monotonic() + self.check_every_s
                self._catalog = self._refreshed(self._catalog)
        if self._catalog is None:
            raise Unavailable("the mini-app catalog cannot be read: PostGIS and Redis are down")
        return self._catalog

    def entries(self) -> Mapping[str, Mapping[str, Any]]:
        """The entries by slug; none when no store has answered yet."""
        try:
            return self.current().apps
        except Unavailable:
            return EMPTY.apps

    def _refreshed(self, held: Catalog | None) -> Catalog | None:
        try:
            return self._from_redis(held)
        except redis.RedisError as exc:
            log.warning("Redis unavailable (%s): reading the catalog from PostGIS",
                        type(exc).__name__)  # fmt: skip
        except (NearbyError, psycopg.Error) as exc:
            log.warning("the catalog could not be read (%s): keeping the copy held", exc)
            return held
        try:
            return self._from_postgis(held)
        except (NearbyError, psycopg.Error) as exc:
            log.warning("the catalog could not be read (%s): keeping the copy held", exc)
            return held

    def _from_redis(self, held: Catalog | None) -> Catalog:
        client = self.services.redis
        rev = held_revision(client, self.prefix)
        if rev is None:
            found = self.services.read(read_catalog)
            restore_catalog(client, self.prefix, found)
            return found
        if held is not None and rev == held.rev:
            return held
        return held_catalog(client, self.prefix) or self.services.read(read_catalog)

    def _from_postgis(self, held: Catalog | None) -> Catalog:
        if held is not None and self.services.read(postgis_revision) == held.rev:
            return held
        return self.services.read(read_catalog)


_CACHES: WeakKeyDictionary[Services, CatalogCache] = WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def catalog_of(services: Services) -> CatalogCache:
    """The catalog cache of an app's services (made on first use)."""
    found = _CACHES.get(services)
    if found is None:
        with _CACHES_LOCK:
            found = _CACHES.setdefault(services, CatalogCache(services))
    return found


def app_of(entries: Mapping[str, Mapping[str, Any]], slug: str) -> dict[str, Any] | None:
    """What a nearby result shows of its mini-app: name and icon, or None when the
    catalog has no entry for the slug (or the entity names none)."""
    entry = entries.get(slug) if slug else None
    if entry is None:
        return None
    return {"slug": slug, "name": entry["name"], "icon_url": entry["icon_url"]}
