"""The feed commands: ``nearby import gbfs|chargers`` and ``nearby feeds watch``.

Exit status of an import: 0 all imported; 1 some records rejected (the others
committed), or a store failed; 2 unreadable or unusable input (nothing written).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import click
import psycopg

from indexer.cli.context import NOT_CLEAN, Context
from indexer.errors import BadInput
from indexer.hot.index import HotIndex
from indexer.jobs.failures import write_failures
from indexer.jobs.feeds import FEED_KINDS, FeedSpec, import_feed, summary_line
from indexer.jobs.watch import WatchBounds, Watcher, stop_on_signals
from indexer.sources import chargers
from indexer.store import db
from indexer.store.errors import REPAIRED_BY

log = logging.getLogger("nearby.feeds")

#: Rejected records an import lists at most.
SHOWN_REJECTS = 20


def import_and_report(context: Context, spec: FeedSpec) -> None:
    """Import ``spec``, print the summary and the rejects; exit 1 when some were rejected."""
    context.ensure_index()
    with write_failures():
        report = import_feed(context.conn(), context.hot(), context.settings, spec)
    for rejected in report.rejected[:SHOWN_REJECTS]:
        click.echo(f"rejected {rejected.feed} {rejected.native_id}: {rejected.reason}", err=True)
    for entity_id in report.written.conflicts[:SHOWN_REJECTS]:
        click.echo(f"rejected {entity_id}: the id belongs to another source", err=True)
    click.echo(summary_line(report))
    if report.written.no_generation:
        click.echo(f"Redis lost its index generation during the import: {REPAIRED_BY}", err=True)
    if report.problems:
        raise click.exceptions.Exit(NOT_CLEAN)


@click.command("gbfs")
@click.argument("location", metavar="PATH_OR_URL")
@click.option("--source", help="Source name (default: the system id).")
@click.option("--lang", help="Language of the discovery file's feeds (default: en or the first).")
@click.pass_obj
def import_gbfs(context: Context, location: str, source: str | None, lang: str | None) -> None:
    """Import a GBFS feed set: gbfs.json (file or URL), a directory, or one feed file."""
    import_and_report(context, FeedSpec("gbfs", location, source, lang))


@click.command("chargers")
@click.argument("location", metavar="PATH_OR_URL")
@click.option("--format", "fmt", type=click.Choice(chargers.FORMATS), required=True)
@click.option("--source", help="Source name (default: the OCPI party, or 'ocm').")
@click.pass_obj
def import_chargers(context: Context, location: str, fmt: str, source: str | None) -> None:
    """Import chargers: OCPI 2.2.1 locations or Open Charge Map POI JSON."""
    import_and_report(context, FeedSpec(fmt, location, source))


def parse_feed_line(line: str) -> FeedSpec | None:
    """``KIND LOCATION [SOURCE [LANG]]`` or ``KIND:LOCATION``; None for blanks and comments."""
    text = line.split("#", 1)[0].strip()
    if not text:
        return None
    words = text.split()
    if len(words) == 1:
        kind, sep, location = words[0].partition(":")
        if not sep or kind not in FEED_KINDS:
            kind, location = "gbfs", words[0]
        return FeedSpec(kind, location)
    if words[0] not in FEED_KINDS or len(words) > 4:
        raise click.BadParameter(f"expected KIND LOCATION [SOURCE [LANG]], got {line.strip()!r}")
    return FeedSpec(words[0], words[1], *(words[2:] or []))


def read_specs(feeds_file: str | None, feeds: Sequence[str]) -> list[FeedSpec]:
    """Feeds from ``--feeds FILE`` lines and ``KIND:LOCATION`` arguments."""
    lines = list(feeds)
    if feeds_file:
        try:
            lines = Path(feeds_file).read_text().splitlines() + lines
        except OSError as exc:
            raise BadInput(f"{feeds_file}: {exc.strerror or exc}") from exc
    specs = [spec for spec in map(parse_feed_line, lines) if spec is not None]
    if not specs:
        raise click.UsageError("name at least one feed (arguments or --feeds FILE)")
    return specs


@click.command("watch")
@click.argument("feeds", nargs=-1, metavar="[KIND:]PATH_OR_URL...")
@click.option("--feeds", "feeds_file", help="File of feeds: KIND LOCATION [SOURCE [LANG]] a line.")
@click.option(
    "--min-interval", default=10.0, show_default=True, help="Poll no feed more often (s)."
)
@click.option(
    "--max-interval", default=600.0, show_default=True, help="Poll at least this often (s)."
)
@click.option("--default-interval", default=60.0, show_default=True, help="Without a ttl (s).")
@click.option("--once", is_flag=True, help="Poll every feed once and exit.")
@click.pass_obj
def watch(
    context: Context,
    feeds: tuple[str, ...],
    feeds_file: str | None,
    min_interval: float,
    max_interval: float,
    default_interval: float,
    once: bool,
) -> None:
    """Keep the index in step with live feeds (gbfs, ocpi, ocm), each at its own ttl."""
    logging.getLogger().setLevel(logging.INFO)  # each cycle's work is logged
    specs = read_specs(feeds_file, feeds)
    if not 0 < min_interval <= max_interval:
        raise click.BadParameter("need 0 < --min-interval <= --max-interval")
    bounds = WatchBounds(min_interval, max_interval, default_interval, max(max_interval, 900.0))

    def connect() -> tuple[psycopg.Connection, HotIndex]:
        return db.connect(context.settings.database_url), context.hot()

    watcher = Watcher(specs, connect, context.settings, bounds)
    with stop_on_signals(watcher.stop):
        if once:
            watcher.run_once()
        else:
            watcher.run()
    failing = [feed for feed in watcher.feeds if feed.failures]
    log.info("stopped; %d of %d feeds failing", len(failing), len(watcher.feeds))
