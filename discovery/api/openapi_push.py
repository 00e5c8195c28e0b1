"""The OpenAPI entries of the push API: POST /v1/positions and /v1/availability."""

from __future__ import annotations

from typing import Any

from discovery.api import jsonio
from discovery.api.openapi_parts import errors, json_response
from discovery.api.push import MAX_BODY_BYTES
from indexer.store import live


def push_operation(summary: str, item: dict[str, Any]) -> dict[str, Any]:
    """POST /v1/positions or /v1/availability."""
    items = {"type": "array", "items": item, "maxItems": live.MAX_ITEMS}
    body = {
        "anyOf": [
            {"type": "object", "required": ["items"], "properties": {"items": items}},
            items,
        ]
    }
    return {
        "post": {
            "summary": summary,
            "description": (
                "Every item is checked before anything is written. An item that does not"
                " match its schema, names an unknown id, or is older than what the index"
                " holds is refused in errors (with its index) and the others are applied:"
                " the answer is 200. A body that is not JSON, nested deeper than"
                f" {jsonio.MAX_DEPTH} levels, not a list of items or of more than"
                f" {live.MAX_ITEMS} is a 400; one larger than {MAX_BODY_BYTES} bytes"
                " (counted as read, with or without Content-Length) a 413."
            ),
            "security": [{"bearer": []}, {"apiKey": []}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": {
                "200": json_response(
                    "What was applied; refused items with reasons.",
                    "#/components/schemas/PushResult",
                ),
                **errors("400", "401", "403", "413", "503"),
            },
        }
    }


def item_schemas() -> tuple[dict[str, Any], dict[str, Any]]:
    """A pushed position and a pushed availability, as the server checks them."""
    entity_id = {
        "type": "string",
        "minLength": 1,
        "maxLength": live.MAX_ID_LENGTH,
        "pattern": "^[^\\x00\\x1f]+$",
        "description": "An entity id: no NUL or U+001F, nor a lone surrogate.",
    }
    count = {"type": "integer", "minimum": 0, "maximum": live.MAX_COUNT}
    seen_at = {
        "anyOf": [
            {"type": "string", "format": "date-time"},
            {"type": "number", "description": "POSIX seconds."},
        ],
        "description": "RFC 3339, or POSIX seconds; default now; never in the future.",
    }
    position = {
        "type": "object",
        "required": ["id", "lat", "lng"],
        "properties": {
            "id": entity_id,
            "lat": {"type": "number", "minimum": -90, "maximum": 90},
            "lng": {"type": "number", "minimum": -180, "maximum": 180},
            "available": count,
            "seen_at": seen_at,
        },
    }
    availability = {
        "type": "object",
        "required": ["id", "available"],
        "properties": {
            "id": entity_id,
            "available": count,
            "capacity": count,
            "seen_at": seen_at,
        },
    }
    return position, availability
