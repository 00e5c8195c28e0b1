"""The Redis Stream consumer: same figures as HTTP, acknowledgement, claiming, rejects, SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import Result
from flask.testing import FlaskClient

from indexer.jobs.stream import StreamConsumer
from indexer.model import Entity
from indexer.settings import UsageSettings
from indexer.store import db
from tests.conftest import API_KEY, Index
from tests.factories import (
    assert_usage_matches,
    clear_catalog,
    expected_usage,
    random_events,
    seed_usage,
    stored_usage,
    user_traces,
)

AUTH = {"Authorization": f"Bearer {API_KEY}"}
USAGE = UsageSettings()
Nearby = Callable[..., Result]


@pytest.fixture
def stream(index: Index) -> Iterator[str]:
    """A stream name under the run's prefix, deleted afterwards."""
    name = f"{index.settings.redis_prefix}:test-events"
    index.hot.client.delete(name)
    yield name
    index.hot.client.delete(name)


def entry_fields(event: dict[str, Any]) -> dict[str, str]:
    """An event as a stream entry's fields (text)."""
    return {key: str(value) for key, value in event.items()}


def add_events(index: Index, stream: str, events: list[dict[str, Any]]) -> list[str]:
    pipe = index.hot.client.pipeline()
    for event in events:
        pipe.xadd(stream, entry_fields(event))
    return [str(entry_id) for entry_id in pipe.execute()]


def consumer(index: Index, stream: str, name: str = "c1", **kw: Any) -> StreamConsumer:
    return StreamConsumer(
        conn=index.conn, hot=index.hot, stream=stream, group="nearby",
        consumer=name, usage=USAGE, block_ms=50, **kw,
    )  # fmt: skip


def test_the_stream_and_http_store_the_same(
    index: Index, entities: list[Entity], stream: str, client: FlaskClient
) -> None:
    # Times as text, as a stream holds them: repr keeps every bit of a float.
    events = [{**e, "at": repr(e["at"]) if isinstance(e["at"], float) else e["at"]}
              for e in random_events(21, 900, entities)]  # fmt: skip
    add_events(index, stream, events)
    summary = consumer(index, stream, count=250).run(threading.Event(), until_empty=True)
    assert (summary.applied, summary.refused, summary.batches) == (900, 0, 4)
    through_stream = stored_usage(index)
    assert index.hot.client.xlen(stream) == 0
    assert index.hot.client.xpending(stream, "nearby")["pending"] == 0
    clear_catalog(index)
    seed_usage(index)
    for start in range(0, 900, 300):
        answer = client.post("/v1/events", json=events[start : start + 300], headers=AUTH).json
        assert answer["applied"] == 300
    through_http = stored_usage(index)
    assert through_http["recents"] == through_stream["recents"]
    assert through_http["events"] == through_stream["events"]
    expected = expected_usage(events, entities, USAGE.half_life_s, dict(USAGE.weights))
    assert_usage_matches(through_stream, expected)
    assert_usage_matches(through_http, expected)


def test_refused_entries_are_logged_with_their_id(
    index: Index, entities: list[Entity], stream: str, caplog: pytest.LogCaptureFixture
) -> None:
    now = time.time()
    ids = add_events(
        index,
        stream,
        [
            {"type": "open", "entity_id": "u:0", "user": "secret-user", "at": now},
            {"type": "open", "entity_id": "u:nope", "user": "secret-user", "at": now},
            {"type": "tap", "mini_app": "kfc", "at": now},
        ],
    )
    with caplog.at_level(logging.WARNING, logger="indexer.jobs.stream"):
        summary = consumer(index, stream).run(threading.Event(), until_empty=True)
    assert (summary.applied, summary.refused) == (1, 2)
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        f"stream {stream} entry {ids[1]} refused: unknown entity (entity_id)",
        f"stream {stream} entry {ids[2]} refused: type must be one of open, order, booking,"
        " unlock, charge (type)",
    ]
    assert "secret-user" not in caplog.text
    assert index.hot.client.xlen(stream) == 0


def test_a_dead_consumers_entries_are_claimed(
    index: Index, entities: list[Entity], stream: str
) -> None:
    now = time.time()
    add_events(index, stream, [{"type": "open", "entity_id": "u:0", "at": now - n}
                               for n in range(5)])  # fmt: skip
    dead = consumer(index, stream, "dead")
    dead.ensure_group()
    assert len(dead.read(">", None)) == 5  # read, never applied: it died
    assert stored_usage(index)["events"] == []
    time.sleep(0.02)
    alive = consumer(index, stream, "alive", claim_idle_ms=10)
    summary = alive.run(threading.Event(), until_empty=True)
    assert summary.applied == 5
    assert len(stored_usage(index)["events"]) == 5
    assert index.hot.client.xpending(stream, "nearby")["pending"] == 0


def test_own_pending_entries_are_applied_at_the_start(
    index: Index, entities: list[Entity], stream: str
) -> None:
    add_events(index, stream, [{"type": "open", "entity_id": "u:1", "at": time.time()}])
    first = consumer(index, stream)
    first.ensure_group()
    first.read(">", None)
    # The same consumer started again (claims only what is idle for a minute).
    again = consumer(index, stream).run(threading.Event(), until_empty=True)
    assert again.applied == 1


def test_nothing_is_acknowledged_when_postgis_fails(
    index: Index, entities: list[Entity], stream: str
) -> None:
    add_events(index, stream, [{"type": "open", "entity_id": "u:1", "at": time.time()}])
    broken = db.connect(index.settings.database_url)
    broken.close()
    worker = consumer(index, stream)
    worker.conn = broken
    worker.ensure_group()
    with pytest.raises(Exception):  # noqa: B017 - the closed connection's error
        worker.step(pending=False)
    assert index.hot.client.xpending(stream, "nearby")["pending"] == 1
    worker.conn = index.conn
    assert consumer(index, stream).run(threading.Event(), until_empty=True).applied == 1


def test_a_forgotten_users_stream_events_leave_nothing(
    index: Index, entities: list[Entity], stream: str, client: FlaskClient
) -> None:
    add_events(index, stream, [{"type": "open", "entity_id": "u:0", "user": "gone-1",
                                "at": time.time()}])  # fmt: skip
    assert user_traces(index, "gone-1") == [f"redis {stream.encode()!r}"]
    consumer(index, stream).run(threading.Event(), until_empty=True)
    assert user_traces(index, "gone-1") != []
    client.delete("/v1/users/gone-1", headers=AUTH)
    assert user_traces(index, "gone-1") == []


def test_sigterm_stops_the_command_cleanly(
    index: Index, entities: list[Entity], stream: str, cli_env: dict[str, str]
) -> None:
    add_events(index, stream, [{"type": "open", "entity_id": "u:0", "at": time.time()}])
    process = subprocess.Popen(
        [sys.executable, "-m", "indexer", "events", "consume", stream, "--block-ms", "200"],
        env={**os.environ, **cli_env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while index.hot.client.xlen(stream) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert index.hot.client.xlen(stream) == 0, "the consumer applied nothing"
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert out.strip() == "applied 1 · refused 0 in 1 batches"
    assert "stopping on SIGTERM" in err
