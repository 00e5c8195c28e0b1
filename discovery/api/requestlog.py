"""Each request's id and record: the outermost WSGI layer, in front of the fast path and Flask.

Every request gets an id: the client's ``X-Request-Id`` when it is well formed
(1-128 letters, digits and ``._:-``), else a fresh one. It comes back in the
``X-Request-Id`` response header and is on every log line written while the
request is served (:data:`indexer.logs.REQUEST_ID`, a context variable: each
greenlet has its own). While serving, the code below notes in the request's
:class:`RequestRecord` what the metrics count: the route template, where an
answer came from, a fallback to PostGIS and why, a store's error, pushed
updates. When the answer is made, :class:`discovery.api.metrics.ApiMetrics`
counts it, once per request, whichever path answered (the fast path or
Flask).

A user id is never logged: once a request under ``/v1/users/<user>`` is
served, this layer rewrites its path in the WSGI environ (``PATH_INFO``, and
the raw request URI) with the id replaced by ``[redacted]``, so that what logs
the request afterwards (gunicorn's access line, :mod:`discovery.server.accesslog`)
never sees it.

This layer also answers ``GET /metrics``: on the API's own port, or, when a
metrics port is set, on that port only, where nothing else answers.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

from flask import Flask, request

from discovery.api.errors import error_body
from discovery.search.services import Notes
from indexer.logs import REDACTED, REQUEST_ID

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_WELL_FORMED = re.compile(r"[A-Za-z0-9._:-]{1,128}")
#: The route of a request that no route matched.
UNMATCHED = "unmatched"
#: A path that names a user: the id is its third segment.
_USER_PATH = re.compile(r"^(/v1/users/)[^/?]+")
#: The environ's keys that hold the request's path, as logged.
PATH_KEYS = ("PATH_INFO", "RAW_URI", "REQUEST_URI")
#: The only route the fast path answers (anything else reaches Flask, which names its route).
FAST_ROUTE = "/v1/nearby"


@dataclass(slots=True)
class RequestRecord:
    """What serving one request noted for the metrics (filled in as it goes)."""

    request_id: str
    route: str | None = None
    #: ``redis`` or ``postgis``: where a nearby answer came from.
    source: str | None = None
    #: Why the answer came from PostGIS: ``no_generation`` or a Redis error kind.
    fallback: str | None = None
    redis_error: str | None = None
    postgres_error: str | None = None
    #: ``primary`` or ``replica``: the server a PostgreSQL read went to.
    read_from: str | None = None
    #: (``positions`` or ``availability``, items applied) of a push.
    pushed: tuple[str, int] | None = None
    status: str = "500"


_RECORD: ContextVar[RequestRecord | None] = ContextVar("nearby_request", default=None)


class RequestIds:
    """New request ids: 32 hex digits, a random half per process and a counter.

    Unique across processes (the random half is drawn again after a fork), and
    cheaper than drawing 16 random bytes a request.
    """

    def __init__(self) -> None:
        self.pid = -1
        self.prefix = ""
        self.counter: Iterator[int] = itertools.count()

    def new(self) -> str:
        """A fresh id."""
        if os.getpid() != self.pid:
            self.pid, self.prefix = os.getpid(), os.urandom(8).hex()
            self.counter = itertools.count()
        return f"{self.prefix}{next(self.counter):016x}"


_IDS = RequestIds()


def request_id_of(header: str | None) -> str:
    """The client's id when well formed, else a new one (32 hex digits)."""
    if header is not None and _WELL_FORMED.fullmatch(header):
        return header
    return _IDS.new()


def error_kind(exc: BaseException) -> str:
    """An exception's kind as a label: ``ConnectionError`` -> ``connection_error``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()


class RequestNotes(Notes):
    """A search's notes, taken in the current request's record (none outside a request)."""

    def source(self, source: str) -> None:
        """The answer came from ``source`` (``redis`` or ``postgis``)."""
        record = _RECORD.get()
        if record is not None:
            record.source = source

    def no_generation(self) -> None:
        """The answer comes from PostGIS: Redis holds no generation."""
        record = _RECORD.get()
        if record is not None:
            record.fallback = "no_generation"

    def not_answered(self) -> None:
        """The answer comes from PostGIS: the hot index could not answer this query."""
        record = _RECORD.get()
        if record is not None:
            record.fallback = "not_answered"

    def redis_failed(self, exc: BaseException) -> None:
        """The answer comes from PostGIS: Redis failed."""
        record = _RECORD.get()
        if record is not None:
            record.fallback = record.redis_error = error_kind(exc)

    def postgres_failed(self, exc: BaseException) -> None:
        """PostgreSQL failed while serving the request."""
        note_postgres_error(exc)

    def read_from(self, server: str) -> None:
        """A PostgreSQL read went to ``server`` (``primary`` or ``replica``)."""
        record = _RECORD.get()
        if record is not None:
            record.read_from = server


def note_redis_error(exc: BaseException) -> None:
    """Redis failed while serving the request."""
    record = _RECORD.get()
    if record is not None:
        record.redis_error = error_kind(exc)


def note_postgres_error(exc: BaseException) -> None:
    """PostgreSQL failed (or its pool timed out) while serving the request."""
    record = _RECORD.get()
    if record is not None:
        record.postgres_error = error_kind(exc)


def note_push(via: str, applied: int) -> None:
    """A push (``positions`` or ``availability``) applied ``applied`` items."""
    record = _RECORD.get()
    if record is not None:
        record.pushed = (via, applied)


def note_route() -> None:
    """Flask's route template of the current request (before it is dispatched)."""
    record = _RECORD.get()
    if record is not None:
        rule = request.url_rule
        record.route = rule.rule if rule is not None else UNMATCHED


def loggable_path(path: str) -> str:
    """The path as it may be logged: a user id in it replaced by ``[redacted]``."""
    return _USER_PATH.sub(rf"\g<1>{REDACTED}", path)


def redact_paths(environ: dict[str, Any]) -> None:
    """Rewrite the request's paths in ``environ`` as :func:`loggable_path` gives them."""
    for key in PATH_KEYS:
        path = environ.get(key)
        if isinstance(path, str) and path.startswith("/v1/users/"):
            environ[key] = loggable_path(path)


def json_error(status: str, code: str, message: str) -> tuple[str, list[tuple[str, str]], bytes]:
    """An error in the API's shape, for answers made outside Flask."""
    body = error_body(code, message)
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    return status, headers, body


class Counts(Protocol):
    """What counts the requests and shows the counts (:class:`discovery.api.metrics.ApiMetrics`)."""

    def count(self, record: RequestRecord, seconds: float) -> None:
        """Count one answered request."""

    def exposition(self) -> tuple[str, bytes]:
        """(content type, body) of a scrape."""


class RequestLayer:
    """The outermost WSGI callable: request ids, the request's record, counting, /metrics."""

    def __init__(
        self,
        wsgi_app: WsgiApp,
        metrics: Counts,
        metrics_port: int | None,
    ) -> None:
        self.wsgi_app = wsgi_app
        self.metrics = metrics
        #: The port /metrics answers on alone (gunicorn's SERVER_PORT is the
        #: listener's own, whatever the Host header says); None: the API's.
        self.metrics_port = None if metrics_port is None else str(metrics_port)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Serve one request with its id set and its record kept, then count it."""
        started = time.perf_counter()
        rid = request_id_of(environ.get("HTTP_X_REQUEST_ID"))
        record = RequestRecord(rid)
        environ["nearby.request_id"] = rid
        record_token, id_token = _RECORD.set(record), REQUEST_ID.set(rid)

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            record.status = status[:3]
            headers.append(("X-Request-Id", rid))
            return start_response(status, headers, exc_info)

        try:
            return self.route(environ, start, record)
        finally:
            _RECORD.reset(record_token)
            REQUEST_ID.reset(id_token)
            if record.route is None:
                path = environ.get("PATH_INFO")
                record.route = FAST_ROUTE if path == FAST_ROUTE else UNMATCHED
            environ["nearby.route"] = record.route
            environ["nearby.source"] = record.source
            redact_paths(environ)
            self.metrics.count(record, time.perf_counter() - started)

    def route(
        self, environ: dict[str, Any], start: StartResponse, record: RequestRecord
    ) -> Iterable[bytes]:
        """/metrics where it answers, a 404 for anything else on the metrics port, else the API."""
        path = environ.get("PATH_INFO")
        on_metrics_port = self.metrics_port is not None and (
            environ.get("SERVER_PORT") == self.metrics_port
        )
        if path == "/metrics" and (on_metrics_port or self.metrics_port is None):
            record.route = "/metrics"
            return self.scrape(environ, start)
        if on_metrics_port:
            record.route = UNMATCHED
            status, headers, body = json_error("404 NOT FOUND", "not_found", "only /metrics here")
            start(status, headers)
            return [body]
        return self.wsgi_app(environ, start)

    def scrape(self, environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
        """The metrics in Prometheus' text format."""
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            status, headers, body = json_error(
                "405 METHOD NOT ALLOWED", "method_not_allowed", "use GET"
            )
            start(status, [*headers, ("Allow", "GET, HEAD")])
            return [body]
        content_type, body = self.metrics.exposition()
        start("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body] if environ.get("REQUEST_METHOD") == "GET" else []


def init_app(app: Flask) -> None:
    """Note Flask's route template of each request for the metrics."""
    app.before_request(note_route)
