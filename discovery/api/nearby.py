"""The read API: GET /v1/nearby, GET /v1/entities/<id>, GET /openapi.json."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import orjson
from flask import Blueprint, Flask, Response, jsonify, request

from discovery.api.catalog_cache import app_of, catalog_of
from discovery.api.current import services
from discovery.api.openapi import openapi_document
from discovery.search.finder import find_entity, find_nearby
from discovery.search.hot import SearchResult
from discovery.search.params import parse_nearby
from discovery.search.query import NearbyQuery
from discovery.search.ranking import Hit, encode_cursor
from discovery.search.services import Services
from indexer.hot import layout
from indexer.rules import SCORE_FORMULA, distance_term, popularity_term

bp = Blueprint("nearby", __name__)

JSON = "application/json"
GEOJSON = "application/geo+json"
_dumps = orjson.dumps
#: What a result shows besides its ranking figures (the display document's fields).
RESULT_FIELDS = (*layout.DISPLAY_FIELDS, "updated_at", "seen_at")
#: Catalog entries by slug: what a group=mini_app result shows of its mini-app.
Apps = Mapping[str, Mapping[str, Any]]
NO_APPS: Apps = {}


def result_of(hit: Hit, query: NearbyQuery, apps: Apps = NO_APPS) -> dict[str, Any]:
    """One result as JSON: the entity's fields, its distance and score (and explain terms);
    with group=mini_app, its mini-app's catalog entry (None without one) and its count
    (when the query counts)."""
    doc = hit.document()
    item = {name: doc.get(name) for name in RESULT_FIELDS}
    item["distance_m"] = hit.distance_m
    item["score"] = hit.score
    item["popularity_now"] = hit.popularity
    if query.group:
        if hit.group_count is not None:
            item["count"] = hit.group_count
        item["app"] = app_of(apps, doc.get("mini_app") or "")
    if query.explain:
        item["explain"] = {
            "distance_term": distance_term(hit.distance_m, query.scale_m),
            "popularity_term": popularity_term(hit.popularity, query.popularity_weight),
        }
    return item


def popularity_time(query: NearbyQuery) -> str | None:
    """The time the popularities ranked by are those of (RFC 3339; None: listed alone)."""
    if not query.popularity_at_s:
        return None
    return datetime.fromtimestamp(query.popularity_at_s, UTC).isoformat()


def explain_of(query: NearbyQuery, result: SearchResult) -> dict[str, Any]:
    """The parameters a query ran with, and what answering it read."""
    return {
        "lat": query.lat,
        "lng": query.lng,
        "radius_m": query.radius_m,
        "sort": query.sort,
        "scale_m": query.scale_m,
        "popularity_weight": query.popularity_weight,
        "limit": query.limit,
        "kinds": list(query.kinds),
        "category": list(query.categories),
        "mini_app": list(query.mini_apps),
        "available": query.available,
        "open_now": query.open_now,
        "group": query.group,
        "q": text_terms(query),
        "score": SCORE_FORMULA,
        "read": result.stats,
    }


def text_terms(query: NearbyQuery) -> dict[str, list[str]] | None:
    """What ``q`` asks once normalised: words that start a word, pieces of CJK words."""
    if query.text is None:
        return None
    return {"prefixes": list(query.text.prefixes), "substrings": list(query.text.substrings)}


def next_cursor(query: NearbyQuery, result: SearchResult, key: bytes) -> str | None:
    """The cursor of the page after this one (None: this is the last)."""
    return encode_cursor(result.hits[-1], query, key) if result.more and result.hits else None


def body_of(
    query: NearbyQuery, result: SearchResult, cursor_key: bytes, apps: Apps = NO_APPS
) -> dict[str, Any]:
    """The JSON body of a nearby answer (its next cursor signed with ``cursor_key``)."""
    results = [result_of(hit, query, apps) for hit in result.hits]
    cursor = next_cursor(query, result, cursor_key)
    body: dict[str, Any] = {
        "results": results,
        "next_cursor": cursor,
        "source": result.source,
        "popularity_at": popularity_time(query),
    }
    if query.explain:
        body["explain"] = explain_of(query, result)
    return body


def result_json(hit: Hit, query: NearbyQuery, apps: Apps = NO_APPS) -> bytes:
    """:func:`result_of` as JSON; a document stored as JSON is written as it is.

    A stored document holds :data:`RESULT_FIELDS` in that order, so the result
    is the document with its figures appended: no parsing, no dict (but for a
    group's result, whose mini-app is read from it).
    """
    raw = hit.raw
    if raw is None or query.explain:
        return _dumps(result_of(hit, query, apps))
    figures = b'%s,"distance_m":%s,"score":%s,"popularity_now":%s' % (
        raw[:-1], _dumps(hit.distance_m), _dumps(hit.score), _dumps(hit.popularity)
    )  # fmt: skip
    if hit.group_count is None:
        return figures + b"}"
    app = app_of(apps, hit.document().get("mini_app") or "")
    return b'%s,"count":%d,"app":%s}' % (figures, hit.group_count, _dumps(app))


def body_json(
    query: NearbyQuery, result: SearchResult, cursor_key: bytes, apps: Apps = NO_APPS
) -> bytes:
    """:func:`body_of` as JSON (the same keys, in the same order), written piece by piece."""
    if query.explain:
        return _dumps(body_of(query, result, cursor_key, apps))
    results = b",".join([result_json(hit, query, apps) for hit in result.hits])
    cursor = next_cursor(query, result, cursor_key)
    return (
        b'{"results":[' + results + b'],"next_cursor":' + _dumps(cursor)
        + b',"source":' + _dumps(result.source)
        + b',"popularity_at":' + _dumps(popularity_time(query)) + b"}"
    )  # fmt: skip


def feature_collection(body: dict[str, Any]) -> dict[str, Any]:
    """The same answer as a GeoJSON FeatureCollection (lng before lat)."""
    features = [
        {
            "type": "Feature",
            "id": item["id"],
            "geometry": {"type": "Point", "coordinates": [item["lng"], item["lat"]]},
            "properties": item,
        }
        for item in body["results"]
    ]
    collection = {"type": "FeatureCollection", "features": features}
    collection.update({key: value for key, value in body.items() if key != "results"})
    return collection


def wants_geojson() -> bool:
    """True when the client prefers GeoJSON to JSON.

    Most requests name no GeoJSON at all: they are told apart without parsing
    the Accept header (a noticeable share of a request's time).
    """
    if "geo+json" not in request.headers.get("Accept", "").lower():
        return False
    best = request.accept_mimetypes.best_match(["application/json", GEOJSON])
    return best == GEOJSON and request.accept_mimetypes[GEOJSON] > 0


def query_args(query_string: str) -> dict[str, list[str]]:
    """The parameters of a WSGI ``QUERY_STRING`` (latin-1 text of the request's bytes),
    each with its list of values; bytes that are not UTF-8 read as U+FFFD."""
    text = query_string.encode("latin-1").decode("utf-8", "replace")
    return parse_qs(text, keep_blank_values=True)


def run_nearby(svc: Services, query_string: str) -> tuple[NearbyQuery, SearchResult]:
    """The query a nearby request's parameters ask, and its answer."""
    args, key = query_args(query_string), svc.settings.cursor_key
    query = parse_nearby(
        args,
        svc.settings.ranking,
        svc.stale,
        time.time(),
        key,
        svc.settings.index.usage.half_life_s,
    )
    return query, find_nearby(svc, query)


def nearby_json(svc: Services, query_string: str) -> bytes:
    """The JSON body of the answer to a nearby request with these parameters.

    Both paths that answer GET /v1/nearby (this blueprint's view and
    :mod:`discovery.api.fastpath`) answer with it.
    """
    query, found = run_nearby(svc, query_string)
    return body_json(query, found, svc.settings.cursor_key, apps_for(svc, query)) + b"\n"


def apps_for(svc: Services, query: NearbyQuery) -> Apps:
    """The catalog's entries when the answer shows them (group=mini_app), else none."""
    return catalog_of(svc).entries() if query.group else NO_APPS


@bp.get("/v1/nearby")
def nearby() -> Response:
    """Entities around a point, ranked by score or distance."""
    svc = services()
    query_string = request.environ.get("QUERY_STRING", "")
    if wants_geojson():
        query, found = run_nearby(svc, query_string)
        body = body_of(query, found, svc.settings.cursor_key, apps_for(svc, query))
        response = jsonify(feature_collection(body))
        response.mimetype = GEOJSON
        return response
    return Response(nearby_json(svc, query_string), content_type=JSON)


@bp.get("/v1/entities/<path:entity_id>")
def entity(entity_id: str) -> Response:
    """One entity by id."""
    return jsonify(find_entity(services(), entity_id))


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3.1 document of the whole API."""
    return jsonify(openapi_document())


def init_app(app: Flask) -> None:
    """Register the read API."""
    app.register_blueprint(bp)
