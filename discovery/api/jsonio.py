"""JSON with orjson: responses (the same documents as Flask's encoder, faster), request bodies.

A nearby answer is some 8 KB of JSON; the standard encoder takes a noticeable
share of a request's time to write it.  Types orjson does not write the way
Flask does (datetimes, dataclasses, decimals, …) are handed to Flask's own
``default``, so every response reads as before (non-ASCII text is sent as
UTF-8 rather than escaped).
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from flask import Response
from flask.json.provider import DefaultJSONProvider

_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


class OrjsonProvider(DefaultJSONProvider):
    """Flask's JSON provider, writing with orjson (keys in insertion order)."""

    sort_keys = False

    def encode(self, obj: Any, indent: bool = False) -> bytes:
        """``obj`` as UTF-8 JSON, compact unless ``indent``."""
        option = _OPTIONS | orjson.OPT_INDENT_2 if indent else _OPTIONS
        return orjson.dumps(obj, default=self.default, option=option)

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        """``obj`` as JSON text (indented when ``indent`` is given)."""
        return self.encode(obj, bool(kwargs.get("indent"))).decode()

    def response(self, *args: Any, **kwargs: Any) -> Response:
        """A JSON response, as :meth:`DefaultJSONProvider.response` makes it."""
        obj = self._prepare_response_obj(args, kwargs)
        indent = (self.compact is None and self._app.debug) or self.compact is False
        return Response(self.encode(obj, indent) + b"\n", mimetype=self.mimetype)


#: The deepest nesting a request body may have (orjson's own limit).
MAX_DEPTH = 1024


class BadBody(ValueError):
    """A request body that is not JSON, or nested deeper than :data:`MAX_DEPTH`."""


def loads_body(data: bytes) -> Any:
    """A request body parsed as JSON; BadBody when it is not JSON or nested too deeply.

    orjson refuses two things JSON may hold, that the standard parser reads: a
    lone surrogate escape (``"\\ud800"``) and a number beyond a double. Such a
    body is read by the latter, so that only the item holding one is refused,
    not the whole body.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc):
            raise BadBody(f"the body is nested deeper than {MAX_DEPTH} levels") from exc
        if "surrogate" not in str(exc) and "infinity" not in str(exc):
            raise BadBody("the body must be JSON") from exc
    try:
        return json.loads(data)
    except RecursionError as exc:
        raise BadBody(f"the body is nested deeper than {MAX_DEPTH} levels") from exc
    except ValueError as exc:
        raise BadBody("the body must be JSON") from exc
