"""``nearby events consume STREAM``: apply usage events read from a Redis Stream;
``nearby events apply``: count the stored events now.

Exit status 0 when stopped (SIGTERM, SIGINT, or ``--until-empty`` with
nothing left); 1 when a store did not answer at the start.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

import click
import redis

from indexer.cli.context import Context
from indexer.errors import Unavailable
from indexer.jobs.stream import (
    DEFAULT_BLOCK_MS,
    DEFAULT_CLAIM_IDLE_MS,
    DEFAULT_COUNT,
    StreamConsumer,
)
from indexer.jobs.watch import stop_on_signals
from indexer.store import db
from indexer.store.events import MAX_EVENTS, apply_round


@click.group("events")
def events_group() -> None:
    """Usage events."""


@events_group.command("consume")
@click.argument("stream")
@click.option("--group", default="nearby", show_default=True, help="The consumer group.")
@click.option("--consumer", help="This consumer's name (default: host-pid).")
@click.option("--count", type=click.IntRange(1, MAX_EVENTS), default=DEFAULT_COUNT,
              show_default=True, help="Entries a batch.")  # fmt: skip
@click.option("--block-ms", type=click.IntRange(1, 60_000), default=DEFAULT_BLOCK_MS,
              show_default=True, help="How long a read waits for new entries.")  # fmt: skip
@click.option("--claim-idle-ms", type=click.IntRange(1000), default=DEFAULT_CLAIM_IDLE_MS,
              show_default=True, help="Take others' entries pending this long.")  # fmt: skip
@click.option("--until-empty", is_flag=True, help="Stop once a read finds no new entry.")
@click.pass_obj
def consume(
    context: Context,
    stream: str,
    group: str,
    consumer: str | None,
    count: int,
    block_ms: int,
    claim_idle_ms: int,
    until_empty: bool,
) -> None:
    """Apply the usage events of a Redis Stream, as one consumer of a group."""
    logging.getLogger().setLevel(logging.INFO)  # a refused entry and a stop are logged
    settings = context.settings
    worker = StreamConsumer(
        conn=context.conn(),
        hot=context.hot(),
        stream=stream,
        group=group,
        consumer=consumer or f"{socket.gethostname()}-{os.getpid()}",
        usage=settings.usage,
        count=count,
        block_ms=block_ms,
        claim_idle_ms=claim_idle_ms,
        reconnect=lambda: db.connect(settings.database_url),
    )
    stop = threading.Event()
    try:
        with stop_on_signals(stop):
            summary = worker.run(stop, until_empty=until_empty)
    except redis.RedisError as exc:
        raise Unavailable(f"Redis is not reachable: {exc}") from exc
    click.echo(summary.line())


@events_group.command("apply")
@click.pass_obj
def apply_now(context: Context) -> None:
    """Count the stored usage events now (after the round under way, if any)."""
    try:
        counted = apply_round(context.conn(), context.hot(), wait=True)
    except redis.RedisError as exc:
        raise Unavailable(f"Redis is not reachable: {exc}") from exc
    if counted is None or not counted.events:
        click.echo("no usage events were waiting")
        return
    click.echo(
        f"counted {counted.events:,} usage events: {len(counted.changes):,} entities' masses"
        f" changed; the oldest had waited {counted.waited_s:.2f} s"
    )
