"""Log lines: text or JSON, the request id on each, secrets never written."""

from __future__ import annotations

import json
import logging

import pytest
from click.testing import CliRunner

from discovery.cli import cli
from discovery.settings import ApiSettings
from indexer.logs import (
    REQUEST_ID,
    JsonFormatter,
    TextFormatter,
    configure_logging,
    parse_log_format,
    redact,
)
from indexer.settings import ConfigError


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    """A record made as a logger makes it (through the record factory)."""
    made = logging.getLogger("nearby.test").makeRecord(
        "nearby.test", logging.WARNING, __file__, 1, message, args, None, extra=extra
    )
    return made


def test_the_log_format_is_validated() -> None:
    assert parse_log_format({}) == "text"
    assert parse_log_format({"NEARBY_LOG_FORMAT": " JSON "}) == "json"
    with pytest.raises(ConfigError, match="NEARBY_LOG_FORMAT"):
        parse_log_format({"NEARBY_LOG_FORMAT": "xml"})
    with pytest.raises(ConfigError, match="NEARBY_LOG_FORMAT"):
        ApiSettings.from_env({"NEARBY_LOG_FORMAT": "logfmt"})


def test_the_command_line_refuses_a_bad_log_format(cli_env: dict[str, str]) -> None:
    result = CliRunner().invoke(cli, ["status"], env={**cli_env, "NEARBY_LOG_FORMAT": "xml"})
    assert result.exit_code == 2 and "NEARBY_LOG_FORMAT" in result.output


def test_a_json_line_has_the_fields_and_the_extras() -> None:
    configure_logging("text")  # installs the record factory
    token = REQUEST_ID.set("rid-1")
    try:
        made = record("synced %s", "divvy", rows=3, lag_s=1.5)
    finally:
        REQUEST_ID.reset(token)
    line = json.loads(JsonFormatter().format(made))
    assert line.pop("time").endswith("+00:00")
    assert line == {
        "level": "WARNING", "logger": "nearby.test", "message": "synced divvy",
        "request_id": "rid-1", "rows": 3, "lag_s": 1.5,
    }  # fmt: skip


def test_a_json_line_carries_the_traceback_in_one_line() -> None:
    try:
        raise ValueError("bad thing")
    except ValueError:
        made = logging.getLogger("nearby.test").makeRecord(
            "nearby.test", logging.ERROR, __file__, 1, "failed", (), __import__("sys").exc_info()
        )
    text = JsonFormatter().format(made)
    assert "\n" not in text
    assert json.loads(text)["exception"].endswith("ValueError: bad thing")


def test_secrets_are_replaced_in_every_line() -> None:
    keys = ["push-key-0123", "short"]
    made = record("key %s in %s", "push-key-0123", "https://x/?output=json&key=abc&api_key=def")
    text = TextFormatter(keys).format(made)
    assert text.endswith(
        "key [redacted] in https://x/?output=json&key=[redacted]&api_key=[redacted]"
    )
    assert "push-key-0123" not in JsonFormatter(keys).format(made)
    # A key too short to search for is left (it would mangle lines).
    assert TextFormatter(keys).format(record("a short word")).endswith(" a short word")
    assert redact("?token=t1&page=2") == "?token=[redacted]&page=2"


def test_a_text_line_outside_a_request_shows_a_dash() -> None:
    configure_logging("text")
    text = TextFormatter().format(record("hello"))
    assert text.endswith(" WARNING nearby.test [-] hello")


def test_configuring_twice_keeps_one_handler() -> None:
    configure_logging("json")
    configure_logging("text")
    ours = [h for h in logging.getLogger().handlers if getattr(h, "nearby", False)]
    assert len(ours) == 1 and isinstance(ours[0].formatter, TextFormatter)
