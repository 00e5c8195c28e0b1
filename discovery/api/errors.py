"""The API's errors: one tree, mapped to status codes in one place.

Each error carries a message safe for clients; what went wrong inside (driver
messages, tracebacks) goes to the log only.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error the client may see: a status, a code, a safe message, maybe a parameter."""

    status = 500
    code = "internal"

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class BadParameter(ApiError):
    """A query parameter or body field is missing, malformed or out of range."""

    status = 400
    code = "bad_parameter"


class Unauthorized(ApiError):
    """No API key was given for a write."""

    status = 401
    code = "unauthorized"


class Forbidden(ApiError):
    """The API key given is not one of ours."""

    status = 403
    code = "forbidden"


class NotFound(ApiError):
    """No such entity (or route)."""

    status = 404
    code = "not_found"


class PayloadTooLarge(ApiError):
    """The request body is larger than allowed."""

    status = 413
    code = "too_large"


class ServiceUnavailable(ApiError):
    """A store the request needs is down."""

    status = 503
    code = "unavailable"


def error_response(status: int, code: str, message: str, param: str | None = None) -> Response:
    """The JSON body every error has: {"error": {"code", "message", "param"}}."""
    response = jsonify({"error": {"code": code, "message": message, "param": param}})
    response.status_code = status
    return response


def init_app(app: Flask) -> None:
    """Answer every error as JSON, never with a stack trace or a database message."""

    @app.errorhandler(ApiError)
    def api_error(error: ApiError) -> Response:
        return error_response(error.status, error.code, error.message, error.param)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        code = (error.name or "error").lower().replace(" ", "_")
        response = error_response(error.code or 500, code, error.description or code)
        # The error's own headers (a 405's Allow) stay; its body and type do not.
        for name, value in error.get_headers():
            if name.lower() not in ("content-type", "content-length"):
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "internal", "internal error")
