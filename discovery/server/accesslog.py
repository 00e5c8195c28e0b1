"""gunicorn's logger for ``nearby serve``: access lines in the service's own format.

Each access line is one record of logger ``gunicorn.access``, written by the
formatter of ``NEARBY_LOG_FORMAT`` (text, or one JSON object with ``method``,
``path``, ``query``, ``route``, ``status``, ``bytes``, ``duration_ms``,
``source`` and ``request_id``). What is never written: headers (so no
``Authorization`` or ``X-API-Key``), the client's address, and the query
string of anything but a GET or HEAD; a GET's parameters that name a
credential or a user (``key``, ``token``, ``user_id``, …) are redacted.

gunicorn's master loads this class before any worker starts: it imports
nothing of the app (a worker patches the standard library for gevent before
the app's modules are imported).
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from typing import Any
from urllib.parse import unquote_plus

from gunicorn import glogging

from indexer.logs import (
    REDACTED,
    REQUEST_ID,
    formatter_for,
    install_request_ids,
    parse_log_format,
)

#: Query parameters whose values are never logged.
PRIVATE_PARAM = re.compile(
    r"(api[_-]?key|key|token|secret|password|auth.*|user.*|uid|session.*)", re.IGNORECASE
)
READS = ("GET", "HEAD")


def safe_query(method: str, query: str) -> str | None:
    """The query string as it may be logged: none for a write, private values redacted."""
    if method not in READS or not query:
        return None
    parts = []
    for part in query.split("&"):
        name = unquote_plus(part.partition("=")[0])
        parts.append(f"{name}={REDACTED}" if PRIVATE_PARAM.fullmatch(name) else part)
    return "&".join(parts)


def access_fields(resp: Any, environ: dict[str, Any], request_time: timedelta) -> dict[str, Any]:
    """What one access line holds (the request id aside)."""
    method = environ.get("REQUEST_METHOD", "")
    status = str(resp.status or "").split(" ", 1)[0]
    return {
        "method": method,
        "path": environ.get("PATH_INFO", ""),
        "query": safe_query(method, environ.get("QUERY_STRING", "")),
        "route": environ.get("nearby.route"),
        "status": int(status) if status.isdigit() else status,
        "bytes": getattr(resp, "sent", None),
        "duration_ms": round(request_time.total_seconds() * 1000, 3),
        "source": environ.get("nearby.source"),
    }


class AccessLogger(glogging.Logger):
    """gunicorn's logger, with access lines (and, in JSON, its own lines) in our format."""

    def setup(self, cfg: Any) -> None:
        """gunicorn's handlers, with our formatter (the variables were checked by serve)."""
        super().setup(cfg)
        log_format = parse_log_format(os.environ)
        keys = [k.strip() for k in os.environ.get("NEARBY_API_KEYS", "").split(",") if k.strip()]
        formatter = formatter_for(log_format, keys)
        logs = [self.access_log, self.error_log] if log_format == "json" else [self.access_log]
        for log in logs:
            for handler in log.handlers:
                handler.setFormatter(formatter)
        install_request_ids()

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        """Write one access line, with the request's id."""
        if not self.access_log_enabled:
            return
        fields = access_fields(resp, environ, request_time)
        target = fields["path"] + (f"?{fields['query']}" if fields["query"] else "")
        token = REQUEST_ID.set(environ.get("nearby.request_id"))
        try:
            self.access_log.info(
                "%s %s %s %s B %.1f ms", fields["method"], target, fields["status"],
                fields["bytes"], fields["duration_ms"], extra=fields,
            )  # fmt: skip
        finally:
            REQUEST_ID.reset(token)
