"""The OpenAPI pieces of the mini-app catalog, the users and the usage events.

Bounds and patterns come from the modules that check them.
"""

from __future__ import annotations

from typing import Any

from discovery.api import miniapp_params as miniapps
from discovery.api.openapi_parts import NULLABLE_STRING, errors, path_param, query_param
from discovery.api.push import MAX_BODY_BYTES
from discovery.search import params
from indexer.store.events import MAX_EVENTS, USER_PATTERN
from indexer.store.items import MAX_ID_LENGTH

TOO_MANY = "Body too large, or too many events."


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
                **errors("400", "404", "503", e404="Unknown mini-app."),
            },
        }
    }


SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]


def user_param() -> dict[str, Any]:
    """The user id of a path (opaque, never logged)."""
    return path_param("user", USER_PATTERN, "The platform's opaque id of the user.")


def listed_schema(when: str) -> dict[str, Any]:
    """A favourite or a recent: the slug, its catalog name and icon (null without an entry)."""
    return {
        "type": "object",
        "required": ["slug", "name", "icon_url", when],
        "properties": {
            "slug": {"type": "string"},
            "name": NULLABLE_STRING,
            "icon_url": NULLABLE_STRING,
            when: {"type": "string"},
        },
    }


def listing(key: str, when: str, text: str) -> dict[str, Any]:
    """A GET of a user's list ``key``."""
    schema = {
        "type": "object",
        "required": [key],
        "properties": {key: {"type": "array", "items": listed_schema(when)}},
    }
    return {
        "get": {
            "summary": text,
            "security": SECURITY,
            "parameters": [user_param()],
            "responses": {
                "200": {"description": text, "content": {"application/json": {"schema": schema}}},
                **errors("400", "401", "403", "503"),
            },
        }
    }


def no_content(summary: str, *statuses: str, slug: bool = False) -> dict[str, Any]:
    """An operation on a user that answers 204."""
    parameters = [user_param()]
    if slug:
        parameters.append(path_param("slug", miniapps.SLUG_PATTERN, "The mini-app's slug."))
    return {
        "summary": summary,
        "security": SECURITY,
        "parameters": parameters,
        "responses": {
            "204": {"description": "Done."},
            **errors(*statuses, e404="Unknown mini-app."),
        },
    }


def user_paths() -> dict[str, Any]:
    """The user endpoints."""
    errors = ("400", "401", "403", "503")
    return {
        "/v1/users/{user}/favorites/{slug}": {
            "put": no_content(
                "Make a mini-app of the catalog a favourite (also when it is).",
                *errors,
                "404",
                slug=True,
            ),  # fmt: skip
            "delete": no_content(
                "Unset a favourite (also when it is not one).", *errors, slug=True
            ),  # fmt: skip
        },
        "/v1/users/{user}/favorites": listing(
            "favorites", "added_at", "The user's favourites, the last added first."
        ),
        "/v1/users/{user}/recent": listing(
            "recent", "at", "The last 20 distinct mini-apps the user's events named, newest first."
        ),
        "/v1/users/{user}": {
            "delete": no_content(
                "Forget the user: favourites, recents, and the user of their stored events.",
                *errors,
            )
        },
    }


def event_schema(types: list[str]) -> dict[str, Any]:
    """One usage event as the server checks it."""
    name = {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH,
            "pattern": "^[^\\x00]+$"}  # fmt: skip
    return {
        "type": "object",
        "required": ["type", "at"],
        "properties": {
            "type": {"type": "string", "enum": types},
            "entity_id": {**name, "description": "An entity's id; or mini_app."},
            "mini_app": {**name, "description": "A catalog slug; or entity_id."},
            "user": {"type": "string", "pattern": USER_PATTERN},
            "at": {
                "anyOf": [
                    {"type": "string", "format": "date-time"},
                    {"type": "number", "description": "POSIX seconds."},
                ],
                "description": "RFC 3339 or POSIX seconds; not in the future beyond a tolerance.",
            },
        },
    }


def events_path(types: list[str]) -> dict[str, Any]:
    """POST /v1/events."""
    events = {"type": "array", "items": event_schema(types), "maxItems": MAX_EVENTS}
    result = {
        "type": "object",
        "required": ["received", "applied", "errors"],
        "properties": {
            "received": {"type": "integer"},
            "applied": {"type": "integer"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["index", "reason", "param"],
                    "properties": {
                        "index": {"type": "integer"},
                        "reason": {"type": "string"},
                        "param": NULLABLE_STRING,
                    },
                },
            },
        },
    }
    return {
        "post": {
            "summary": "Usage events, a batch at a time.",
            "description": (
                "A JSON array of events, or NDJSON (one a line). Each bad event (an unknown"
                " type, entity or mini-app, not one of entity_id and mini_app, a time in the"
                " future beyond the tolerance, a line that is not JSON) is refused in errors,"
                " with its index, and the others are applied: stored when the answer comes,"
                " counted in the rankings by the next round (within NEARBY_EVENT_ROUND_S"
                " and the time of a round; with 0, before the answer). The answer is 200."
                " A body that is neither is a 400 naming body; more than"
                f" {MAX_EVENTS} events, or over {MAX_BODY_BYTES} bytes, a 413."
            ),
            "security": SECURITY,
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": events},
                    "application/x-ndjson": {"schema": {"type": "string"}},
                },
            },
            "responses": {
                "200": {
                    "description": "What was applied; refused events with reasons.",
                    "content": {"application/json": {"schema": result}},
                },  # fmt: skip
                **errors(
                    "400", "401", "403", "413", "503", e413="Body too large, or too many events."
                ),
            },
        }
    }
