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
                        "required": ["text", "kind", "slug", "popularity", "distance_m", "id"],
                        "properties": {
                            "text": {"type": "string"},
                            "kind": {"type": "string", "enum": list(suggestions.KINDS)},
                            "slug": NULLABLE_STRING,
                            "popularity": {
                                "type": "number",
                                "minimum": 0,
                                "description": "Its best carrier's (the highest among the"
                                " entities that carry it, usage at popularity_at included).",
                            },
                            "distance_m": {
                                "type": "number",
                                "minimum": 0,
                                "description": "The distance of its best carrier (the"
                                " nearest of the most popular).",
                            },
                            "id": {"type": "string", "description": "Its best carrier's id."},
                        },
                    },
                },
                "source": {"type": "string", "enum": ["redis", "postgis"]},
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
                " that entities within the radius carry, in the order of each one's best carrier"
                " under sort=popularity (the highest popularity, then the nearest, then the id),"
                " then mini-app before category before name; at most ten."
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
