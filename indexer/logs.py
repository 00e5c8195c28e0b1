"""Logging for every process: one format (text or JSON lines), the request id on each line.

Configured once where a process starts (:func:`configure_logging`, called by
the app factory and by the command line), never at import.
``NEARBY_LOG_FORMAT`` picks ``text`` (the default) or ``json``: one JSON
object a line with time, level, logger, message, request_id and the record's
extra fields.

The API sets :data:`REQUEST_ID` while it serves a request. It is a context
variable, so each thread and each gevent greenlet sees its own (greenlets run
in contexts of their own); every record made meanwhile carries it, whichever
handler writes it. Known secrets (the API keys) and credentials in URLs are
replaced in every line a formatter of ours writes, should one reach a message.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

from indexer.settings import ConfigError

#: The id of the request being served, or None outside a request.
REQUEST_ID: ContextVar[str | None] = ContextVar("nearby_request_id", default=None)

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
#: A secret shorter than this is not searched for in lines (it would mangle them).
MIN_SECRET_CHARS = 8
REDACTED = "[redacted]"

# What every LogRecord holds; any other attribute is an extra field.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "request_id",
    "taskName",
}


def parse_log_format(env: Mapping[str, str]) -> str:
    """NEARBY_LOG_FORMAT: ``text`` (default) or ``json``; ConfigError otherwise."""
    value = env.get("NEARBY_LOG_FORMAT", "text").strip().lower() or "text"
    if value not in LOG_FORMATS:
        raise ConfigError("NEARBY_LOG_FORMAT", f"expected text or json, got {value!r}")
    return value


#: A URL's query parameter that carries a credential (an Open Charge Map
#: location holds ``key=...``): its value is never written.
SECRET_PARAM = re.compile(
    r"([?&](?:api[_-]?key|key|token|access[_-]?token|secret|password|auth)=)[^&#\s\"']*",
    re.IGNORECASE,
)


def redact(line: str, secrets: Iterable[str] = ()) -> str:
    """``line`` with every secret in it, and credentials in URLs, replaced."""
    for secret in secrets:
        if secret in line:
            line = line.replace(secret, REDACTED)
    if "=" in line:
        line = SECRET_PARAM.sub(r"\1" + REDACTED, line)
    return line


def usable_secrets(secrets: Iterable[str]) -> tuple[str, ...]:
    """The secrets long enough to search for, longest first (a key inside another)."""
    return tuple(sorted({s for s in secrets if len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True))


class JsonFormatter(logging.Formatter):
    """One JSON object a record: time, level, logger, message, request_id, extra fields."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = usable_secrets(secrets)

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return redact(json.dumps(line, ensure_ascii=False, default=str), self.secrets)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger [request id] message`` ("-" outside a request)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__(TEXT_FORMAT)
        self.secrets = usable_secrets(secrets)

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of text (a traceback follows on lines of its own)."""
        held = getattr(record, "request_id", None)
        record.request_id = held or "-"
        try:
            return redact(super().format(record), self.secrets)
        finally:
            record.request_id = held  # other handlers see the record as it was


def formatter_for(log_format: str, secrets: Iterable[str] = ()) -> logging.Formatter:
    """The formatter of ``log_format`` (``text`` or ``json``)."""
    return JsonFormatter(secrets) if log_format == "json" else TextFormatter(secrets)


class StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record comes (not the one at set-up)."""

    @property
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, _value: IO[str]) -> None:
        pass


def install_request_ids() -> None:
    """Make every log record carry ``request_id`` (:data:`REQUEST_ID` when it was made)."""
    base = logging.getLogRecordFactory()
    if getattr(base, "nearby_request_ids", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        record.request_id = REQUEST_ID.get()
        return record

    factory.nearby_request_ids = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def configure_logging(
    log_format: str, *, secrets: Iterable[str] = (), level: int = logging.INFO
) -> None:
    """Log to stderr in ``log_format``; replaces what an earlier call installed."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "nearby", False):
            root.removeHandler(handler)
    handler = StderrHandler()
    handler.nearby = True  # type: ignore[attr-defined]
    handler.setFormatter(formatter_for(log_format, secrets))
    root.addHandler(handler)
    root.setLevel(level)
    install_request_ids()
