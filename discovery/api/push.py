"""Pushed updates: ``POST /v1/positions`` and ``POST /v1/availability``.

For operators that push instead of publishing a feed. A write needs an API key
(``Authorization: Bearer KEY`` or ``X-API-Key: KEY``) from ``NEARBY_API_KEYS``:
401 without one, 403 with one we do not know. The body is ``{"items": [...]}``
or a bare list; each bad item is reported with its index and reason, and the
good ones are applied. A body larger than MAX_BODY_BYTES (read, whatever its
Content-Length says) is a 413; one that is not JSON, or nested deeper than
:data:`discovery.api.jsonio.MAX_DEPTH`, a 400.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
import redis
from flask import Blueprint, Flask, Response, jsonify, request

from discovery.api.current import services
from discovery.api.jsonio import BadBody, loads_body
from discovery.api.requestlog import note_postgres_error, note_push, note_redis_error
from indexer.errors import BadInput, Forbidden, TooLarge, Unauthorized, Unavailable
from indexer.hot.index import HotIndex
from indexer.store.live import MAX_ITEMS, PushResult, push_availability, push_positions
from indexer.store.writer import HotIndexUnavailable

bp = Blueprint("push", __name__, url_prefix="/v1")

#: 10,000 items of about 120 bytes each, with room to spare.
MAX_BODY_BYTES = 4 * 1024 * 1024
#: The body is read in parts of this size.
READ_BYTES = 64 * 1024

Pusher = Callable[[psycopg.Connection, HotIndex, Sequence[Any]], PushResult]


def api_key() -> str | None:
    """The key the request carries, if any."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("X-API-Key") or None


def require_key() -> None:
    """Unauthorized without a key, Forbidden with one we do not know."""
    key = api_key()
    if key is None:
        raise Unauthorized("this write needs an API key (Authorization: Bearer KEY)")
    keys = services().settings.api_keys
    # Compare against every key in constant time, so timing tells nothing.
    matches = [hmac.compare_digest(key.encode(), known.encode()) for known in keys]
    if not any(matches):
        raise Forbidden("this API key is not valid")


def read_body() -> bytes:
    """The request's body, at most MAX_BODY_BYTES of it; TooLarge beyond.

    The limit holds for the bytes read, not only for what Content-Length
    says: a chunked body has none, and is read no further than the limit.
    """
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise TooLarge(f"the body is larger than {MAX_BODY_BYTES} bytes")
    stream = request.stream
    parts: list[bytes] = []
    size = 0
    while size <= MAX_BODY_BYTES:
        part = stream.read(min(READ_BYTES, MAX_BODY_BYTES + 1 - size))
        if not part:
            return b"".join(parts)
        parts.append(part)
        size += len(part)
    raise TooLarge(f"the body is larger than {MAX_BODY_BYTES} bytes")


def read_items() -> list[Any]:
    """The items of the body: ``{"items": [...]}`` or a list, at most MAX_ITEMS."""
    if not request.is_json:
        raise BadInput("the body must be JSON (Content-Type: application/json)", "body")
    try:
        body = loads_body(read_body())
    except BadBody as exc:
        raise BadInput(str(exc), "body") from exc
    items = body.get("items") if isinstance(body, dict) else body
    if not isinstance(items, list):
        raise BadInput('expected a list of items, or {"items": [...]}', "items")
    if len(items) > MAX_ITEMS:
        raise BadInput(f"at most {MAX_ITEMS} items a request", "items")
    return items


def result_body(result: PushResult) -> dict[str, Any]:
    """The answer: counts, then each refused item with its index, reason and field."""
    return {
        "received": result.received,
        "applied": result.applied,
        "moved": result.moved,
        "errors": [
            {"index": e.index, "id": e.id, "reason": e.reason, "param": e.param}
            for e in result.errors
        ],
    }


def handle(push: Pusher) -> Response:
    """Authorise, read the items, apply them, and answer with the result."""
    require_key()
    items = read_items()
    found = services()
    try:
        with found.postgis() as conn:
            result = push(conn, found.hot, items)
        if result.hot_missing:  # PostGIS has the items; a rebuild brings them to Redis
            found.healer.notice_missing()
    except HotIndexUnavailable as exc:
        note_redis_error(exc.__cause__ or exc)
        raise Unavailable("saved, but the hot index could not be updated") from exc
    except (psycopg.OperationalError, redis.ConnectionError, redis.TimeoutError) as exc:
        if isinstance(exc, psycopg.Error):
            note_postgres_error(exc)
        else:
            note_redis_error(exc)
        raise Unavailable("the index is not reachable") from exc
    note_push(push.__name__.removeprefix("push_"), result.applied)
    return jsonify(result_body(result))


@bp.post("/positions")
def positions() -> Response:
    """Move bikes: items ``{id, lat, lng, available?, seen_at?}``."""
    return handle(push_positions)


@bp.post("/availability")
def availability() -> Response:
    """Set free points: items ``{id, available, capacity?}``."""
    return handle(push_availability)


def init_app(app: Flask) -> None:
    """Register the push endpoints."""
    app.register_blueprint(bp)
