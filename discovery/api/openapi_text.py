"""The OpenAPI pieces of text search: ``q`` and GET /v1/suggest.

Bounds come from the modules that check them.
"""

from __future__ import annotations

from typing import Any

from discovery.api.openapi_parts import NULLABLE_STRING, errors, json_response, query_param
from discovery.search import params, suggestions
from indexer.text import MAX_QUERY_CHARS

#: What ``q`` means (README, "Text search").
TEXT_MEANING = (
    "Text the results match: every word must start a word of the entity's name, category or"
    " mini-app name (accents, case and punctuation aside); CJK text must occur within one."
    " A q with no letter or digit once normalised is a 400 too."
)


def text_param(required: bool = False) -> dict[str, Any]:
    """The ``q`` parameter: 1 to MAX_QUERY_CHARS characters."""
    schema = {"type": "string", "minLength": 1, "maxLength": MAX_QUERY_CHARS}
    return query_param("q", schema, TEXT_MEANING, required)


def text_schemas() -> dict[str, Any]:
    """The components' schemas of text search."""
    return {
        "Suggestions": {
            "type": "object",
            "required": ["suggestions", "source"],
            "properties": {
                "suggestions": {
                    "type": "array",
                    "maxItems": suggestions.MOST,
                    "items": {
                        "type": "object",
                        "required": ["text", "kind", "slug", "count", "popularity"],
                        "properties": {
                            "text": {"type": "string"},
                            "kind": {"type": "string", "enum": list(suggestions.KINDS)},
                            "slug": NULLABLE_STRING,
                            "count": {"type": "integer", "minimum": 1},
                            "popularity": {
                                "type": "number",
                                "minimum": 0,
                                "description": "The highest among the entities that carry"
                                " it, their usage at popularity_at included.",
                            },
                        },
                    },
                },
                "source": {"type": "string", "enum": ["postgis"]},
                "popularity_at": {
                    **NULLABLE_STRING,
                    "description": "The time (RFC 3339) whose usage the popularities include.",
                },
            },
        }
    }


def suggest_path() -> dict[str, Any]:
    """GET /v1/suggest."""
    radius = {"type": "number", "minimum": params.RADIUS_M[0], "maximum": params.RADIUS_M[1]}
    return {
        "get": {
            "summary": "Completions of q nearby, those with the most popular matches first.",
            "description": (
                "Mini-app names, categories and entity names that match q by the text rule and"
                " that entities within the radius carry, ordered by the highest popularity among"
                " them, then how many they are, then the text; at most ten."
            ),
            "parameters": [
                text_param(required=True),
                query_param(
                    "lat", {"type": "number", "minimum": -90, "maximum": 90}, "Latitude.", True
                ),
                query_param(
                    "lng", {"type": "number", "minimum": -180, "maximum": 180}, "Longitude.", True
                ),
                query_param(
                    "radius", radius, f"Metres (default {suggestions.DEFAULT_RADIUS_M:.0f})."
                ),
            ],
            "responses": {
                "200": json_response("The completions.", "#/components/schemas/Suggestions"),
                **errors("400", "503"),
            },
        }
    }
