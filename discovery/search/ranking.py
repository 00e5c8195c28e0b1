"""The ranking: hits, their total order, grouping, pages, cursors and the brute-force reference.

Distance, score, order keys and filters are :mod:`indexer.rules`'; this module
applies them to hits.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import math
import struct
from collections.abc import Iterable
from typing import Any, NamedTuple

import orjson

from discovery.search.query import NearbyQuery
from indexer.rules import (
    Candidate,
    SortKey,
    admits,
    distance_m,
    lead_of,
    order_key,
    score_of,
)


class Hit(NamedTuple):
    """One ranked result: the entity's id, its exact distance and score, and what it shows.

    A named tuple: a page makes a few dozen, and a frozen dataclass costs three
    times as much to make.
    """

    id: str
    distance_m: float
    score: float
    popularity: float
    #: The display document, when it came parsed (None: see ``raw``).
    doc: dict[str, Any] | None = None
    #: With group=mini_app: how many of the mini-app's entities are in the radius.
    group_count: int | None = None
    #: The display document as JSON text, when it came so (from the hot index):
    #: parsed only when something needs its fields.
    raw: bytes | None = None

    def document(self) -> dict[str, Any]:
        """What the entity shows: its display document."""
        if self.raw is not None:
            parsed: dict[str, Any] = orjson.loads(self.raw)
            return parsed
        return self.doc or {}


def lead(hit: Hit, sort: str) -> float:
    """What ``sort`` ranks ``hit`` by first (:func:`indexer.rules.lead_of`)."""
    return lead_of(sort, hit.score, hit.popularity)


def sort_key(hit: Hit, sort: str) -> SortKey:
    """The key that orders hits best first under ``sort`` (one of indexer.rules.SORTS)."""
    return order_key(sort, lead(hit, sort), hit.distance_m, hit.id.encode())


def rank(hits: Iterable[Hit], sort: str) -> list[Hit]:
    """Hits in the total order of ``sort``."""
    return sorted(hits, key=lambda hit: sort_key(hit, sort))


def after(hit: Hit, cursor_key: SortKey | None, sort: str) -> bool:
    """True when ``hit`` comes strictly after the cursor's key (always, without a cursor)."""
    return cursor_key is None or sort_key(hit, sort) > cursor_key


def hit_of(query: NearbyQuery, candidate: Candidate) -> Hit:
    """The exact distance and score of a candidate for ``query``."""
    distance = distance_m(query.lat, query.lng, candidate.lat, candidate.lng)
    score = score_of(distance, candidate.popularity, query.scale_m, query.popularity_weight)
    return Hit(candidate.id, distance, score, candidate.popularity, candidate.doc)


def group_hits(hits: Iterable[Hit], query: NearbyQuery) -> list[Hit]:
    """One hit per mini-app (its best), carrying the mini-app's count (unless the query
    wants none); empty mini-apps left out."""
    best: dict[str, Hit] = {}
    counts: dict[str, int] = {}
    for hit in hits:
        app = hit.document().get("mini_app") or ""
        if not app:
            continue
        counts[app] = counts.get(app, 0) + 1
        held = best.get(app)
        if held is None or sort_key(hit, query.sort) < sort_key(held, query.sort):
            best[app] = hit
    if not query.counts:
        return rank(best.values(), query.sort)
    grouped = [h._replace(group_count=counts[app]) for app, h in best.items()]
    return rank(grouped, query.sort)


def page(ranked: list[Hit], query: NearbyQuery) -> tuple[list[Hit], bool]:
    """The hits after the query's cursor, at most ``limit``, and whether more follow."""
    rest = [hit for hit in ranked if after(hit, query.after, query.sort)]
    return rest[: query.limit], len(rest) > query.limit


def brute_force(query: NearbyQuery, candidates: Iterable[Candidate]) -> tuple[list[Hit], bool]:
    """The reference answer: scan everything, filter (open_now included), rank, group, page."""
    hits = []
    for candidate in candidates:
        hit = hit_of(query, candidate)
        if hit.distance_m <= query.radius_m and admits(query, candidate):
            hits.append(hit)
    ranked = group_hits(hits, query) if query.group else rank(hits, query.sort)
    return page(ranked, query)


# --- cursors -----------------------------------------------------------------
#
# A cursor is the query's fingerprint, the last item's sort key (its lead,
# distance and id) and the time its popularity was computed at (so that every
# page of a list ranks by the same popularities), signed with HMAC-SHA256
# under the deployment's cursor key (NEARBY_CURSOR_SECRET): a cursor not made
# by this deployment, truncated or altered by a single bit, is refused before
# any field of it is read.

_CURSOR = struct.Struct(">8sddd")
#: Bytes of the HMAC a cursor ends with.
_MAC_BYTES = 16


def fingerprint(query: NearbyQuery) -> bytes:
    """8 bytes that identify what a query asks (not its page size or cursor)."""
    return hashlib.blake2b(query.identity().encode(), digest_size=8).digest()


def _mac(key: bytes, raw: bytes) -> bytes:
    return hmac.new(key, raw, hashlib.sha256).digest()[:_MAC_BYTES]


def encode_cursor(hit: Hit, query: NearbyQuery, key: bytes) -> str:
    """An opaque cursor after ``hit``: the query's fingerprint and the hit's sort key, signed."""
    head = _CURSOR.pack(
        fingerprint(query), lead(hit, query.sort), hit.distance_m, query.popularity_at_s
    )
    raw = head + hit.id.encode()
    return base64.urlsafe_b64encode(raw + _mac(key, raw)).decode().rstrip("=")


def resume(query: NearbyQuery, text: str, key: bytes) -> NearbyQuery:
    """``query`` from after cursor ``text``: its sort key and popularity time (ValueError
    as :func:`decode_cursor` says)."""
    after_key, popularity_at_s = decode_cursor(text, query, key)
    return dataclasses.replace(query, after=after_key, popularity_at_s=popularity_at_s)


def decode_cursor(text: str, query: NearbyQuery, key: bytes) -> tuple[SortKey, float]:
    """The sort key and popularity time a cursor holds; ValueError if it is not one we
    signed, or from another query."""
    try:
        signed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError("cursor is not valid") from exc
    raw, mac = signed[:-_MAC_BYTES], signed[-_MAC_BYTES:]
    if len(raw) <= _CURSOR.size or not hmac.compare_digest(mac, _mac(key, raw)):
        raise ValueError("cursor is not valid")
    mark, first, distance, popularity_at_s = _CURSOR.unpack_from(raw)
    if mark != fingerprint(query):
        raise ValueError("cursor belongs to another query")
    if not (math.isfinite(first) and math.isfinite(distance) and math.isfinite(popularity_at_s)):
        raise ValueError("cursor is not valid")
    return order_key(query.sort, first, distance, raw[_CURSOR.size :]), popularity_at_s
