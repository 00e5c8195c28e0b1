"""The OpenAPI pieces of GET /v1/discover (the pull-down screen in one call).

Bounds and patterns come from the modules that check them.
"""

from __future__ import annotations

from typing import Any

from discovery.api import discover_params as discover
from discovery.api.openapi_catalog import SECURITY, listed_schema
from discovery.api.openapi_parts import NULLABLE_STRING, errors, query_param
from discovery.api.openapi_text import text_param
from discovery.search import params
from indexer.store.events import USER_PATTERN

SOURCE = {"type": "string", "enum": ["redis", "postgis"]}


def mine_schema(when: str) -> dict[str, Any]:
    """A recent or a favourite, with its nearest branch within the radius (or null)."""
    schema = listed_schema(when)
    nearest = {
        "type": "object",
        "required": ["id", "distance_m"],
        "properties": {"id": {"type": "string"}, "distance_m": {"type": "number", "minimum": 0}},
    }
    schema["required"] = [*schema["required"], "nearest"]
    schema["properties"] = {
        **schema["properties"],
        "nearest": {"anyOf": [nearest, {"type": "null"}], "description": "Nearest branch."},
    }
    return schema


def discover_schemas() -> dict[str, Any]:
    """The answer of GET /v1/discover."""
    results = {"type": "array", "items": {"$ref": "#/components/schemas/Result"}}
    return {
        "Discover": {
            "type": "object",
            "required": ["recent", "favorites", "nearby", "popular", "sources"],
            "properties": {
                "recent": {"type": "array", "items": mine_schema("at")},
                "favorites": {"type": "array", "items": mine_schema("added_at")},
                "nearby": {**results, "description": "group=mini_app, by score."},
                "popular": {**results, "description": "group=mini_app, sort=popularity."},
                "sources": {
                    "type": "object",
                    "required": ["nearby", "popular", "nearest"],
                    "properties": {
                        "nearby": SOURCE,
                        "popular": SOURCE,
                        "nearest": {"anyOf": [SOURCE, NULLABLE_STRING]},
                    },
                },
                "popularity_at": {
                    **NULLABLE_STRING,
                    "description": "The time (RFC 3339) whose usage nearby and popular rank by.",
                },
            },
        }
    }


def discover_path() -> dict[str, Any]:
    """GET /v1/discover."""
    radius = {"type": "number", "minimum": params.RADIUS_M[0], "maximum": params.RADIUS_M[1]}
    limit = {"type": "integer", "minimum": params.LIMIT[0], "maximum": params.LIMIT[1]}
    return {
        "get": {
            "summary": "The pull-down screen: recent, favourite, nearby and popular mini-apps.",
            "description": (
                "nearby and popular are GET /v1/nearby's answers with group=mini_app (by score,"
                " and with sort=popularity) for the same point and radius, without the groups'"
                " counts; each recent and"
                " favourite carries its nearest branch within the radius. With user the request"
                " needs an API key; without it recent and favorites are empty."
            ),
            "security": [{}, *SECURITY],
            "parameters": [
                query_param(
                    "lat",
                    {"type": "number", "minimum": -90, "maximum": 90},
                    "Latitude of the person.",
                    required=True,
                ),
                query_param(
                    "lng",
                    {"type": "number", "minimum": -180, "maximum": 180},
                    "Longitude of the person.",
                    required=True,
                ),
                query_param("radius", radius, f"Metres (default {discover.DEFAULT_RADIUS_M:g})."),
                query_param(
                    "limit",
                    limit,
                    f"Mini-apps in nearby and popular (default {discover.DEFAULT_LIMIT}).",
                ),
                query_param(
                    "user",
                    {"type": "string", "pattern": USER_PATTERN},
                    "The platform's opaque id of the user (needs the API key).",
                ),
                text_param(),
            ],  # fmt: skip
            "responses": {
                "200": {
                    "description": "The four lists.",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Discover"}}
                    },
                },
                **errors("400", "401", "403", "503"),
            },
        }
    }
