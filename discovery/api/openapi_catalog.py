"""The OpenAPI pieces of the mini-app catalog, the users and the usage events.

Bounds and patterns come from the modules that check them.
"""

from __future__ import annotations

from typing import Any

from discovery.api import miniapp_params as miniapps
from discovery.search import params

NULLABLE_STRING = {"type": ["string", "null"]}


def query_param(name: str, schema: dict[str, Any], text: str, required: bool = False) -> dict:
    """One query parameter."""
    return {"name": name, "in": "query", "required": required, "description": text,
            "schema": schema}  # fmt: skip


def path_param(name: str, pattern: str, text: str) -> dict[str, Any]:
    """One path parameter, a string of ``pattern``."""
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": text,
        "schema": {"type": "string", "pattern": pattern},
    }


def error_responses(*statuses: str) -> dict[str, Any]:
    """Error responses by status."""
    texts = {
        "400": "A bad parameter (named in error.param).",
        "401": "No API key.",
        "403": "Unknown API key.",
        "404": "Unknown mini-app.",
        "413": "Body too large, or too many events.",
        "503": "A store the request needs is down.",
    }
    error = {"$ref": "#/components/schemas/Error"}
    return {
        status: {"description": texts[status], "content": {"application/json": {"schema": error}}}
        for status in statuses
    }


def catalog_schemas() -> dict[str, Any]:
    """The components' schemas of the catalog."""
    return {
        "AppRef": {
            "type": "object",
            "required": ["slug", "name", "icon_url"],
            "properties": {
                "slug": {"type": "string"},
                "name": {"type": "string"},
                "icon_url": {"type": "string"},
            },
        },
        "MiniApp": {
            "type": "object",
            "required": [
                "slug",
                "name",
                "icon_url",
                "description",
                "category",
                "rev",
                "updated_at",
            ],  # fmt: skip
            "properties": {
                "slug": {"type": "string"},
                "name": {"type": "string"},
                "icon_url": {"type": "string", "description": "Empty when it has none."},
                "description": {"type": "string"},
                "category": {"type": "string"},
                "rev": {"type": "integer", "description": "The revision of its last change."},
                "updated_at": NULLABLE_STRING,
            },
        },
        "MiniAppAnswer": {
            "type": "object",
            "required": ["app"],
            "properties": {
                "app": {"$ref": "#/components/schemas/MiniApp"},
                "branches": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/Result"},
                    "description": "With lat and lng: its entities, nearest first.",
                },
                "next_cursor": NULLABLE_STRING,
                "source": {"type": "string", "enum": ["redis", "postgis"]},
            },
        },
    }


def mini_app_path() -> dict[str, Any]:
    """GET /v1/mini-apps/{slug}."""
    needs_point = "; only with lat and lng"
    return {
        "get": {
            "summary": "A mini-app of the catalog; with lat and lng, its nearest branches.",
            "description": (
                "The branches are the entities whose mini_app is the slug, by distance, exactly"
                " as GET /v1/nearby with mini_app=SLUG&sort=distance finds them, and paged as it"
                " is. lat and lng go together; radius, limit and cursor need them."
            ),
            "parameters": [
                path_param("slug", miniapps.SLUG_PATTERN, "The mini-app's slug."),
                query_param(
                    "lat",
                    {"type": "number", "minimum": -90, "maximum": 90},
                    "Latitude of the point the branches are near.",
                ),  # fmt: skip
                query_param(
                    "lng",
                    {"type": "number", "minimum": -180, "maximum": 180},
                    "Longitude, with lat.",
                ),  # fmt: skip
                query_param(
                    "radius",
                    {
                        "type": "number",
                        "minimum": params.RADIUS_M[0],
                        "maximum": params.RADIUS_M[1],
                    },  # fmt: skip
                    f"Metres (default {miniapps.DEFAULT_RADIUS_M:g}){needs_point}.",
                ),
                query_param(
                    "limit",
                    {"type": "integer", "minimum": params.LIMIT[0], "maximum": params.LIMIT[1]},
                    f"Branches per page (default 20){needs_point}.",
                ),
                query_param(
                    "cursor",
                    {"type": "string", "pattern": params.CURSOR_PATTERN},
                    f"next_cursor of the previous page of the same query{needs_point}.",
                ),
            ],
            "responses": {
                "200": {
                    "description": "The app, and its branches when asked.",
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/MiniAppAnswer"}
                        }
                    },
                },
                **error_responses("400", "404", "503"),
            },
        }
    }
