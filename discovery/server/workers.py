"""gunicorn workers whose own errors are the API's: ``{"error": {"code", "message", "param"}}``.

A request the HTTP parser refuses never reaches the app: gunicorn (``gthread``,
``sync``) and gevent's WSGI server (``gevent``) answer it themselves, with an
HTML page or an empty body. These workers answer it as every other error:
414 for a request line too long, 431 for headers too large, 400 for anything
else malformed, 500 should the server itself fail.

The limits are the servers': with ``gevent`` a request line of 8,192 bytes or
more, a header line over 65,536 bytes or more than 100 headers; with ``gthread``
and ``sync`` gunicorn's (``--limit-request-line`` 4,094, ``--limit-request-field_size``
8,190, ``--limit-request-fields`` 100).

gunicorn loads its worker class in the master, before a gevent worker patches
the standard library: this module imports nothing of the app (no Flask).
"""

from __future__ import annotations

import http.client
import json
from typing import Any

from gunicorn import util
from gunicorn.http import errors as parse_errors
from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler
from gunicorn.workers.gthread import ThreadWorker
from gunicorn.workers.sync import SyncWorker

#: Each status these workers answer: its reason phrase, code and message.
ERRORS = {
    400: ("Bad Request", "bad_request", "the request is not valid HTTP"),
    403: ("Forbidden", "forbidden", "this request is not allowed"),
    414: ("URI Too Long", "uri_too_long", "the request line is too long"),
    417: ("Expectation Failed", "expectation_failed", "the Expect header is not supported"),
    431: ("Request Header Fields Too Large", "headers_too_large", "the headers are too large"),
    500: ("Internal Server Error", "internal", "internal error"),
    501: ("Not Implemented", "not_implemented", "this transfer coding is not supported"),
}


def error_response(status: int) -> bytes:
    """A whole HTTP response (status line, headers, JSON body) for ``status``; it closes."""
    reason, code, message = ERRORS[status]
    body = json.dumps({"error": {"code": code, "message": message, "param": None}}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body) + 1}\r\n\r\n"
    )
    return head.encode("latin-1") + body + b"\n"


# --- gevent's WSGI server ------------------------------------------------------


class HeadersTooLarge(ValueError):
    """A header line over http.client's limit, or more headers than it takes."""


class JsonErrorHandler(PyWSGIHandler):
    """gevent's request handler, answering the errors it finds itself as JSON."""

    def read_request(self, raw_requestline: str) -> Any:
        """Parse the request; HeadersTooLarge for a header line or count over the limit."""
        try:
            return super().read_request(raw_requestline)
        except http.client.HTTPException as exc:  # "got more than 100 headers"
            raise HeadersTooLarge(str(exc)) from exc
        except ValueError as exc:
            # http.client's header parser reports a line too long as this status.
            if getattr(self.headers, "status", "") == "Line too long":
                raise HeadersTooLarge("a header line is too long") from exc
            raise

    def _handle_client_error(self, ex: Exception) -> tuple[str, bytes]:
        super()._handle_client_error(ex)  # logs it
        status = 431 if isinstance(ex, HeadersTooLarge) else 400
        return str(status), error_response(status)

    def handle_one_request(self) -> Any:
        """gevent's, with the bodies of the errors it answers itself replaced by JSON."""
        result = super().handle_one_request()
        if isinstance(result, tuple):  # (status, whole response): an error, then close
            status = int(result[0])
            return result[0], error_response(status if status in ERRORS else 400)
        return result

    def _send_error_response_if_possible(self, error_code: int) -> None:
        # A body that could not be read (400), or the server failing (500),
        # once the app has run: answered unless the app's answer has begun.
        if self.response_length:
            self.close_connection = True
            return
        reason, _, _ = ERRORS[error_code]
        body = error_response(error_code).split(b"\r\n\r\n", 1)[1]
        headers = [("Content-Type", "application/json"), ("Connection", "close")]
        try:
            self.start_response(f"{error_code} {reason}", headers)
            self.write(body)
        except OSError:
            self.close_connection = True


class GeventWorker(GeventPyWSGIWorker):
    """gunicorn's ``gevent_pywsgi`` worker with JSON errors."""

    wsgi_handler = JsonErrorHandler


# --- gunicorn's own parser -------------------------------------------------------


def parse_error_status(exc: BaseException) -> int:
    """The status gunicorn answers an error of its request parser with (500: not a parse error)."""
    if isinstance(exc, parse_errors.InvalidResponseHeader | parse_errors.InvalidResponseHeaderName):
        return 500  # a header the app sent: the app's fault, not the client's
    statuses = (
        (parse_errors.LimitRequestLine, 414),
        (parse_errors.LimitRequestHeaders, 431),
        (parse_errors.UnsupportedTransferCoding, 501),
        (parse_errors.ExpectationFailed, 417),
        (parse_errors.ForbiddenProxyRequest, 403),
        (parse_errors.ConfigurationProblem, 500),
    )
    for kind, status in statuses:
        if isinstance(exc, kind):
            return status
    return 400 if isinstance(exc, parse_errors.ParseException) else 500


class JsonErrors:
    """``handle_error`` of gunicorn's workers, answering with JSON instead of HTML."""

    log: Any

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """Log the error and answer it, as gunicorn does, with the API's error JSON."""
        status = parse_error_status(exc)
        if status == 500:
            self.log.exception("Error handling request")
        else:
            self.log.warning("Invalid request from ip=%s: %s", (addr or ("",))[0], exc)
        try:
            util.write_nonblock(client, error_response(status))
        except Exception:  # the client may be gone
            self.log.debug("Failed to send error message.")


class ThreadedWorker(JsonErrors, ThreadWorker):
    """gunicorn's ``gthread`` worker with JSON errors."""


class PlainWorker(JsonErrors, SyncWorker):
    """gunicorn's ``sync`` worker with JSON errors."""
