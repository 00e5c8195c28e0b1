"""``POST /v1/events``: usage events, a batch at a time.

The body is a JSON array of events (``Content-Type: application/json``) or one
event a line (``application/x-ndjson``), at most
:data:`~indexer.store.events.MAX_EVENTS` of them and
:data:`~discovery.api.push.MAX_BODY_BYTES` bytes (413 beyond either). It needs
an API key, as the pushes do. Each bad event (an NDJSON line that is not JSON
included) is reported with its index and reason, and the good ones are applied
in one transaction (:mod:`indexer.store.events`); a body that is not JSON or
NDJSON, or not a list of events, is a 400 naming ``body``. The good events
are stored when the answer comes, and counted in the rankings by the next round
(within ``NEARBY_EVENT_ROUND_S`` and the time of a round; with 0, before the
answer).
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import psycopg
from flask import Blueprint, Flask, Response, jsonify, request

from discovery.api.current import services
from discovery.api.jsonio import BadBody, loads_body
from discovery.api.push import read_body, require_key
from discovery.api.requestlog import note_postgres_error
from indexer.errors import BadInput, TooLarge, Unavailable
from indexer.store.events import MAX_EVENTS, EventBatch, Malformed, receive_events

bp = Blueprint("events", __name__, url_prefix="/v1")

NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl")


def ndjson_events(body: bytes) -> list[Any]:
    """The events of an NDJSON body: one a non-blank line, a line not JSON as Malformed."""
    events: list[Any] = []
    for line in body.splitlines():
        if not line.strip():
            continue
        try:
            events.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            events.append(Malformed())
    return events


def read_events() -> list[Any]:
    """The events of the body (see the module)."""
    mimetype = request.mimetype
    if mimetype in NDJSON_TYPES:
        events = ndjson_events(read_body())
    elif request.is_json:
        try:
            events = loads_body(read_body())
        except BadBody as exc:
            raise BadInput(str(exc), "body") from exc
        if not isinstance(events, list):
            raise BadInput("expected a JSON array of events", "body")
    else:
        raise BadInput(
            "the body must be JSON (application/json) or NDJSON (application/x-ndjson)", "body"
        )
    if len(events) > MAX_EVENTS:
        raise TooLarge(f"at most {MAX_EVENTS} events a request", "body")
    return events


def result_body(batch: EventBatch) -> dict[str, Any]:
    """The answer: counts, then each refused event with its index, reason and field."""
    return {
        "received": batch.received,
        "applied": len(batch.events),
        "errors": [{"index": e.index, "reason": e.reason, "param": e.param} for e in batch.errors],
    }


@bp.post("/events")
def post_events() -> Response:
    """Take a batch of usage events."""
    require_key()
    events = read_events()
    svc = services()
    usage = svc.settings.index.usage
    try:
        with svc.postgis() as conn:
            batch = receive_events(conn, svc.hot, events, usage, time.time())
    except psycopg.OperationalError as exc:
        note_postgres_error(exc)
        raise Unavailable("the index is not reachable") from exc
    return jsonify(result_body(batch))


def init_app(app: Flask) -> None:
    """Register the events endpoint."""
    app.register_blueprint(bp)
