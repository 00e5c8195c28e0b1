"""The ``nearby`` command line: the index's commands (db, import, cache, feeds).

``discovery.cli`` adds ``serve`` and is the console script's entry point.
Exit status: 0 all good; 1 the outcome is not clean (rows rejected, differences
found, a store that did not answer); 2 bad usage or unusable input (nothing
written). Every :class:`indexer.errors.NearbyError` a command raises ends as
:data:`indexer.errors.ENDINGS` says (:class:`indexer.cli.context.NearbyGroup`).
"""

from __future__ import annotations

import logging
import os
import time

import click
import psycopg
import redis

from indexer.cli.catalog import mini_apps
from indexer.cli.context import NOT_CLEAN, Context, NearbyGroup, pass_context
from indexer.cli.events import events_group
from indexer.cli.feeds import import_chargers, import_gbfs, watch
from indexer.cli.imports import stores
from indexer.cli.status import status_command
from indexer.errors import NearbyError, Unavailable
from indexer.hot.heal import ensure_index
from indexer.hot.index import RebuildSuperseded
from indexer.logs import configure_logging, parse_log_format
from indexer.progress import format_count, progress_bar
from indexer.settings import ConfigError, IndexSettings
from indexer.store import db
from indexer.store.fresh import drop_leftover_loads

#: What ``cache rebuild --if-needed`` says when it does not rebuild.
NOTHING_TO_REBUILD = "nothing to rebuild: the hot index is current, or another process builds it"


@click.group(cls=NearbyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def cli(ctx: click.Context) -> None:
    """nearby: find the mini-apps around a point."""
    try:
        settings = IndexSettings.from_env()
        log_format = parse_log_format(os.environ)
    except ConfigError as exc:
        raise click.UsageError(f"bad configuration: {exc}") from exc
    # A command prints what it did; its library's log shows only what went
    # wrong (long-running commands, such as feeds watch, log their work too).
    configure_logging(log_format, level=logging.WARNING)
    ctx.obj = Context(settings)
    ctx.call_on_close(ctx.obj.close)


@cli.group("db")
def db_group() -> None:
    """The PostGIS schema."""


@db_group.command("upgrade")
@pass_context
def db_upgrade(context: Context) -> None:
    """Apply the schema's migrations (harmless when already applied)."""
    try:
        db.upgrade(context.settings.database_url)
    except Exception as exc:  # alembic wraps driver errors in several types
        raise NearbyError(f"migration failed: {exc}") from exc
    click.echo("database is at the latest schema")
    # A fresh deployment gets its (empty) hot index here, so that queries are
    # answered from Redis from the first write on.
    try:
        healed = ensure_index(context.conn(), context.hot())
    except redis.RedisError as exc:
        click.echo(
            f"warning: Redis is not reachable ({exc}): the first import, feed sync or server"
            " start builds the hot index once it is",
            err=True,
        )
        return
    click.echo(str(healed) if healed else "the hot index is current")


@cli.group("import")
def import_group() -> None:
    """Load stores, bikes and chargers into the index."""


@cli.group("cache")
def cache_group() -> None:
    """The Redis hot index: rebuild it from PostGIS, or check it against PostGIS."""


def rebuild_hot_index(context: Context) -> int:
    """Rebuild with a progress bar and a summary line; return the entity count."""
    conn = context.conn()
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM entities")
        total = (cur.fetchone() or (0,))[0]
    started = time.monotonic()
    with progress_bar("rebuilding", total) as advance:
        count = context.hot().rebuild(
            conn, advance, context.replica(), context.settings.replica_max_lag_s
        )
    seconds = time.monotonic() - started
    gen = context.hot().generation()
    click.echo(f"rebuilt {format_count(count)} entities in {seconds:.1f} s (generation {gen})")
    return count


@cache_group.command("rebuild")
@click.option(
    "--if-needed",
    is_flag=True,
    help="Only if Redis holds no generation (and none is building) or a write died"
    " between PostGIS and Redis.",
)
@pass_context
def cache_rebuild(context: Context, if_needed: bool) -> None:
    """Rebuild the hot index from PostGIS; queries go on meanwhile."""
    try:
        if not if_needed:
            rebuild_hot_index(context)
            return
        healed = ensure_index(context.conn(), context.hot())
        click.echo(str(healed) if healed else NOTHING_TO_REBUILD)
    except redis.RedisError as exc:
        raise Unavailable(f"Redis is not reachable: {exc}") from exc
    except RebuildSuperseded as exc:
        raise NearbyError(str(exc)) from exc


@cache_group.command("verify")
@click.option("--limit", default=100, show_default=True, help="Differences to print at most.")
@pass_context
def cache_verify(context: Context, limit: int) -> None:
    """Compare the hot index with PostGIS; exit 1 when they differ."""
    try:
        differences = context.hot().verify(context.conn())
    except redis.RedisError as exc:
        raise Unavailable(f"Redis is not reachable: {exc}") from exc
    for difference in differences[:limit]:
        click.echo(str(difference))
    if len(differences) > limit:
        click.echo(f"… and {format_count(len(differences) - limit)} more")
    click.echo(f"{format_count(len(differences))} differences")
    if differences:
        raise click.exceptions.Exit(NOT_CLEAN)


@cache_group.command("prune")
@pass_context
def cache_prune(context: Context) -> None:
    """Delete what older layouts, builds and loads that died left behind."""
    try:
        dropped = context.hot().drop_other_layouts()
        stale = context.hot().drop_stale_generations()
    except redis.RedisError as exc:
        raise Unavailable(f"Redis is not reachable: {exc}") from exc
    click.echo(f"deleted {format_count(dropped)} keys of other layouts")
    click.echo(f"deleted {format_count(stale)} keys of stale generations")
    try:
        loads = drop_leftover_loads(context.conn())
    except psycopg.Error as exc:
        raise Unavailable(f"PostGIS could not be cleaned: {exc}") from exc
    click.echo(f"dropped {format_count(loads)} load tables of imports that died")


@cli.group("feeds")
def feeds_group() -> None:
    """Live feeds of bikes and chargers."""


import_group.add_command(stores)
import_group.add_command(import_gbfs)
import_group.add_command(import_chargers)
import_group.add_command(mini_apps)
feeds_group.add_command(watch)
cli.add_command(status_command)
cli.add_command(events_group)
