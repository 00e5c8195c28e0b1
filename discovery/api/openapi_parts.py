"""The pieces every OpenAPI entry of the API is made of: parameters, responses, errors."""

from __future__ import annotations

from typing import Any

NULLABLE_NUMBER = {"type": ["number", "null"]}
NULLABLE_STRING = {"type": ["string", "null"]}
NULLABLE_INTEGER = {"type": ["integer", "null"]}
ERROR = "#/components/schemas/Error"

#: What each error status means, unless an operation says otherwise.
ERROR_TEXTS = {
    "400": "A bad parameter (named in error.param).",
    "401": "No API key.",
    "403": "Unknown API key.",
    "404": "Unknown entity.",
    "413": "Body too large.",
    "503": "A store the request needs is down.",
}


def query_param(name: str, schema: dict[str, Any], text: str, required: bool = False) -> dict:
    """One query parameter."""
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": text,
        "schema": schema,
    }


def path_param(name: str, pattern: str, text: str) -> dict[str, Any]:
    """One path parameter, a string of ``pattern``."""
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": text,
        "schema": {"type": "string", "pattern": pattern},
    }


def json_response(text: str, ref: str, media: str = "application/json") -> dict[str, Any]:
    """A response whose body is the schema ``ref``."""
    return {"description": text, "content": {media: {"schema": {"$ref": ref}}}}


def errors(*statuses: str, **texts: str) -> dict[str, Any]:
    """Error responses by status; ``texts`` (``e404="Unknown mini-app."``) overrides a meaning."""
    meaning = ERROR_TEXTS | {key.removeprefix("e"): text for key, text in texts.items()}
    return {status: json_response(meaning[status], ERROR) for status in statuses}
