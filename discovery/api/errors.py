"""How the API answers errors: always JSON, never a stack trace or a database message.

A :class:`~indexer.errors.NearbyError` is answered with the status and code
:data:`indexer.errors.ENDINGS` gives it, an HTTP error of Flask's (no route, a
method not allowed) with its own status, anything else as a 500 (and logged).
"""

from __future__ import annotations

import logging

import orjson
from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from indexer.errors import UNEXPECTED, NearbyError, ending

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/json"


def error_body(code: str, message: str, param: str | None = None) -> bytes:
    """The JSON body every error has: {"error": {"code", "message", "param"}}."""
    return orjson.dumps({"error": {"code": code, "message": message, "param": param}}) + b"\n"


def error_answer(error: Exception) -> tuple[int, bytes]:
    """(status, body) of the answer to ``error`` raised while serving a request.

    An error outside the tree is a bug: logged with its traceback, answered
    without a word of it.
    """
    if isinstance(error, NearbyError):
        end = ending(error)
        return end.status, error_body(end.code, error.message, error.param)
    log.exception("unhandled error", exc_info=error)
    return UNEXPECTED.status, error_body(UNEXPECTED.code, "internal error")


def error_response(status: int, body: bytes) -> Response:
    """A Flask response carrying an error body."""
    return Response(body, status, content_type=CONTENT_TYPE)


def init_app(app: Flask) -> None:
    """Answer every error as JSON (see the module)."""

    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, lambda error: error_response(*error_answer(error)))


def http_error(error: HTTPException) -> Response:
    """An HTTP error of Flask's, its own headers (a 405's Allow) kept, its body and type not."""
    code = (error.name or "error").lower().replace(" ", "_")
    response = error_response(error.code or 500, error_body(code, error.description or code))
    for name, value in error.get_headers():
        if name.lower() not in ("content-type", "content-length"):
            response.headers[name] = value
    return response
