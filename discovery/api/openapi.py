"""The OpenAPI 3.1 document of the whole API (served at /openapi.json).

Built from small pieces so that the parameter bounds come from
:mod:`discovery.search.params`; tests validate it and check responses against it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from discovery.api.openapi_catalog import catalog_schemas, events_path, mini_app_path, user_paths
from discovery.api.openapi_discover import discover_path, discover_schemas
from discovery.api.openapi_parts import (
    NULLABLE_INTEGER,
    NULLABLE_STRING,
    errors,
    json_response,
    query_param,
)
from discovery.api.openapi_push import item_schemas, push_operation
from discovery.api.openapi_text import suggest_path, text_param, text_schemas
from discovery.search import params
from indexer.rules import SORTS
from indexer.settings import DEFAULT_EVENT_WEIGHTS


def nearby_parameters() -> list[dict[str, Any]]:
    """Every parameter of GET /v1/nearby (none may be given empty: leave it out)."""
    boolean = {"type": "string", "enum": list(params.FLAGS)}
    slugs = {"type": "string", "pattern": params.LIST_PATTERN}
    return [
        query_param("lat", {"type": "number", "minimum": -90, "maximum": 90}, "Latitude.", True),
        query_param("lng", {"type": "number", "minimum": -180, "maximum": 180}, "Longitude.", True),
        query_param(
            "radius",
            {"type": "number", "minimum": params.RADIUS_M[0], "maximum": params.RADIUS_M[1]},
            "Radius in metres (default 1000).",
        ),
        query_param(
            "kinds",
            {"type": "string", "pattern": params.KINDS_PATTERN},
            "Comma-separated: store, bike, charger.",
        ),
        query_param(
            "category",
            slugs,
            "Comma-separated categories, each as it is (no control characters).",
        ),
        query_param("mini_app", slugs, "Comma-separated mini-apps, as category."),
        query_param("available", boolean, "Only bikes/chargers with at least one free."),
        query_param("open_now", boolean, "Only entities open now in their own time zone."),
        query_param("group", {"type": "string", "enum": ["mini_app"]}, "One result per mini-app."),
        query_param(
            "sort",
            {"type": "string", "enum": list(SORTS)},
            "Order: score (descending), distance, or popularity (descending); ties by"
            " distance, then id.",
        ),
        query_param(
            "scale",
            {"type": "number", "minimum": params.SCALE_M[0], "maximum": params.SCALE_M[1]},
            "Metres at which the distance term halves (default: half the radius).",
        ),
        query_param(
            "popularity_weight",
            {"type": "number", "minimum": 0, "maximum": params.POPULARITY_WEIGHT[1]},
            "Weight w of ln(1 + popularity).",
        ),
        query_param(
            "limit",
            {"type": "integer", "minimum": params.LIMIT[0], "maximum": params.LIMIT[1]},
            "Results per page (default 20).",
        ),
        query_param(
            "cursor",
            {"type": "string", "pattern": params.CURSOR_PATTERN},
            "next_cursor of the previous page of the same query: signed by the server, so any"
            " other text (truncated, altered, made up, or from another query) is a 400.",
        ),
        query_param("explain", boolean, "Add the ranking terms and the parameters used."),
        text_param(),
    ]


def entity_schema() -> dict[str, Any]:
    """An entity as /v1/entities/<id> shows it."""
    return {
        "type": "object",
        "required": ["id", "kind", "lat", "lng", "popularity"],
        "properties": {
            "id": {"type": "string"},
            "kind": {"type": "string", "enum": ["store", "bike", "charger"]},
            "name": NULLABLE_STRING,
            "mini_app": NULLABLE_STRING,
            "category": NULLABLE_STRING,
            "lat": {"type": "number"},
            "lng": {"type": "number"},
            "popularity": {"type": "number", "minimum": 0},
            "available": NULLABLE_INTEGER,
            "capacity": NULLABLE_INTEGER,
            "opening_hours": NULLABLE_STRING,
            "tz": NULLABLE_STRING,
            "source": NULLABLE_STRING,
            "attrs": {"type": ["object", "null"]},
            "updated_at": NULLABLE_STRING,
            "seen_at": NULLABLE_STRING,
        },
    }


def result_schema() -> dict[str, Any]:
    """One nearby result: the entity plus its distance, score and optional extras."""
    schema = entity_schema()
    schema["required"] = [*schema["required"], "distance_m", "score", "popularity_now"]
    schema["properties"] = {
        **schema["properties"],
        "distance_m": {"type": "number", "minimum": 0},
        "score": {"type": "number", "minimum": 0},
        "popularity_now": {
            "type": "number",
            "minimum": 0,
            "description": "The popularity ranked by: the listed one plus the usage at"
            " the answer's popularity_at.",
        },
        "count": {"type": "integer", "minimum": 1, "description": "With group=mini_app."},
        "app": {
            "description": "With group=mini_app: the mini-app's catalog entry, null without one.",
            "anyOf": [{"$ref": "#/components/schemas/AppRef"}, {"type": "null"}],
        },
        "explain": {
            "type": "object",
            "required": ["distance_term", "popularity_term"],
            "properties": {
                "distance_term": {"type": "number"},
                "popularity_term": {"type": "number"},
            },
        },
    }
    return schema


def schemas() -> dict[str, Any]:
    """The components' schemas."""
    nearby_common = {
        "next_cursor": NULLABLE_STRING,
        "source": {"type": "string", "enum": ["redis", "postgis"]},
        "popularity_at": {
            **NULLABLE_STRING,
            "description": "The time (RFC 3339) whose usage the popularities include.",
        },
        "explain": {"type": "object"},
    }
    return {
        "Entity": entity_schema(),
        "Result": result_schema(),
        "Nearby": {
            "type": "object",
            "required": ["results", "next_cursor", "source"],
            "properties": {
                "results": {"type": "array", "items": {"$ref": "#/components/schemas/Result"}},
                **nearby_common,
            },
        },
        "NearbyGeoJSON": {
            "type": "object",
            "required": ["type", "features", "next_cursor", "source"],
            "properties": {
                "type": {"const": "FeatureCollection"},
                "features": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["type", "geometry", "properties"],
                        "properties": {
                            "type": {"const": "Feature"},
                            "id": {"type": "string"},
                            "geometry": {
                                "type": "object",
                                "properties": {
                                    "type": {"const": "Point"},
                                    "coordinates": {
                                        "type": "array",
                                        "items": {"type": "number"},
                                        "minItems": 2,
                                        "maxItems": 2,
                                    },
                                },
                            },
                            "properties": {"$ref": "#/components/schemas/Result"},
                        },
                    },
                },
                **nearby_common,
            },
        },
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message", "param"],
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "param": NULLABLE_STRING,
                    },
                }
            },
        },
        "Health": {"type": "object", "required": ["status"]},
        **catalog_schemas(),
        **discover_schemas(),
        **text_schemas(),
        "PushResult": {
            "type": "object",
            "required": ["received", "applied", "moved", "errors"],
            "properties": {
                "received": {"type": "integer"},
                "applied": {"type": "integer"},
                "moved": {"type": "integer"},
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "index": {"type": "integer"},
                            "id": NULLABLE_STRING,
                            "reason": {"type": "string"},
                            "param": NULLABLE_STRING,
                        },
                    },
                },
            },
        },
    }


def paths() -> dict[str, Any]:
    """Every path of the API."""
    health = "#/components/schemas/Health"
    position, availability = item_schemas()
    return {
        "/v1/nearby": {
            "get": {
                "summary": "Entities around a point, ranked exactly by score or distance.",
                "parameters": nearby_parameters(),
                "responses": {
                    "200": {
                        "description": "A page (GeoJSON on Accept: application/geo+json).",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Nearby"}},
                            "application/geo+json": {
                                "schema": {"$ref": "#/components/schemas/NearbyGeoJSON"}
                            },
                        },
                    },
                    **errors("400", "503"),
                },
            }
        },
        "/v1/entities/{id}": {
            "get": {
                "summary": "One entity by id.",
                "parameters": [
                    {
                        "name": "id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^[^\\x00]+$"},
                        "description": "The entity's id (no NUL: PostgreSQL text holds none).",
                    }
                ],
                "responses": {
                    "200": json_response("The entity.", "#/components/schemas/Entity"),
                    **errors("400", "404", "503"),
                },
            }
        },
        "/v1/mini-apps/{slug}": mini_app_path(),
        "/v1/suggest": suggest_path(),
        "/v1/discover": discover_path(),
        **user_paths(),
        "/v1/events": events_path(list(DEFAULT_EVENT_WEIGHTS)),
        "/v1/positions": push_operation("Push positions of bikes (and chargers).", position),
        "/v1/availability": push_operation("Push free counts of bikes and chargers.", availability),
        "/healthz": {
            "get": {"summary": "Alive.", "responses": {"200": json_response("Alive.", health)}}
        },
        "/readyz": {
            "get": {
                "summary": "PostGIS and Redis reachable.",
                "responses": {
                    "200": json_response("Both reachable.", health),
                    "503": json_response("One is not.", health),
                },
            }
        },
    }


@cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "nearby",
            "version": "1.0.0",
            "description": "Stores, bikes and chargers near a point, by distance and popularity.",
        },
        "paths": paths(),
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }
