"""Live feed imports and the feed watcher: ``nearby import gbfs|chargers``, ``nearby feeds watch``.

Each import of a feed is a snapshot of its source: what the feed no longer
lists is removed (GBFS rotates vehicle ids after every trip). The watcher polls
several feeds, each at its own ``ttl`` within bounds, backs off from a feed
that fails while the others go on, and stops between polls on SIGTERM.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import psycopg
import redis

from indexer import telemetry
from indexer.hot.index import HotIndex
from indexer.progress import format_count
from indexer.settings import IndexSettings
from indexer.sources import chargers, gbfs
from indexer.store import db
from indexer.store.live import is_stale, purge_stale
from indexer.store.writer import HotIndexUnavailable, NothingWritten, WriteSummary, write_entities

if TYPE_CHECKING:
    from indexer.cli.main import Context

log = logging.getLogger("nearby.feeds")

FEED_KINDS = ("gbfs", "ocpi", "ocm")


class FeedInputError(click.ClickException):
    """Unreadable or unusable input: exit status 2, nothing written."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class FeedSpec:
    """One feed to import: its kind, where it is, and optionally its source and language."""

    kind: str
    location: str
    source: str | None = None
    lang: str | None = None


@dataclass(frozen=True)
class Loaded:
    """A parsed feed: its source, entities and rejects, and the ttl it asks for."""

    source: str
    parsed: gbfs.Parsed
    ttl_s: int | None


@dataclass(frozen=True)
class ImportReport:
    """What one import of one feed did."""

    source: str
    written: WriteSummary
    rejected: tuple[gbfs.Rejected, ...]
    stale: int
    ttl_s: int | None
    seconds: float

    @property
    def problems(self) -> int:
        """Records left out: rejected while parsing, or ids owned by another source."""
        return len(self.rejected) + len(self.written.conflicts)

    def rows(self) -> dict[str, int]:
        """Rows by outcome, as :mod:`indexer.telemetry` records them."""
        written = self.written
        return {
            "inserted": written.inserted,
            "updated": written.updated,
            "unchanged": written.unchanged,
            "deleted": written.deleted,
            "rejected": self.problems,
        }


def load_feed(spec: FeedSpec) -> Loaded:
    """Read and parse a feed; GbfsError or ChargerFeedError when it cannot be used."""
    if spec.kind == "gbfs":
        feed_set = gbfs.load_feed_set(spec.location, lang=spec.lang)
        parsed = gbfs.feed_set_to_entities(feed_set, source=spec.source)
        return Loaded(spec.source or feed_set.system_id or "", parsed, feed_set.ttl_s)
    document = gbfs.parse_json(gbfs.read_location(spec.location), spec.location)
    source = spec.source or "ocm"
    if spec.kind == "ocpi" and not spec.source:
        source = chargers.ocpi_default_source(chargers.ocpi_locations(document))
    parsed = chargers.chargers_to_entities(document, spec.kind, source=source)
    return Loaded(source, parsed, None)


def count_stale(settings: IndexSettings, loaded: Loaded, now: datetime) -> int:
    """How many of the feed's entities are already past their staleness limit."""
    return sum(
        is_stale(settings, loaded.source, entity.kind, entity.seen_at, now)
        for entity in loaded.parsed.entities
    )


def import_feed(
    conn: psycopg.Connection,
    hot: HotIndex,
    settings: IndexSettings,
    spec: FeedSpec,
    *,
    now: datetime | None = None,
    known_source: str | None = None,
) -> ImportReport:
    """Import one feed as the full snapshot of its source (entities it lacks are removed).

    The import is recorded for scrapes and ``nearby status``
    (:mod:`indexer.telemetry`), and so is a failure once the source is known
    (``spec.source``, the feed's own, or ``known_source`` from an earlier poll).
    """
    started = time.monotonic()
    source = spec.source or known_source
    try:
        loaded = load_feed(spec)
        source = loaded.source
        written = write_entities(conn, hot, loaded.source, loaded.parsed.entities, replace=True)
    except Exception as exc:
        if source:
            error = f"{type(exc).__name__}: {exc}"
            telemetry.record_failure(hot.client, hot.prefix, source, spec.kind, error)
        raise
    moment = now or datetime.now(UTC)
    report = ImportReport(
        source=loaded.source,
        written=written,
        rejected=tuple(loaded.parsed.rejected),
        stale=count_stale(settings, loaded, moment),
        ttl_s=loaded.ttl_s,
        seconds=time.monotonic() - started,
    )
    telemetry.record_import(
        hot.client, hot.prefix, report.source, spec.kind, report.rows(),
        lag_s=feed_lag_s(loaded, moment), now=moment.timestamp(),
    )  # fmt: skip
    return report


def feed_lag_s(loaded: Loaded, now: datetime) -> float | None:
    """How old the feed's newest data was when it was read (None: it carries no times)."""
    seen = [entity.seen_at for entity in loaded.parsed.entities if entity.seen_at is not None]
    return (now - max(seen)).total_seconds() if seen else None


def summary_line(report: ImportReport) -> str:
    """``lyft_chi: imported 3,055 · updated 0 · … in 1.2 s``."""
    written = report.written
    parts = [
        f"imported {format_count(written.inserted)}",
        f"updated {format_count(written.updated)}",
        f"unchanged {format_count(written.unchanged)}",
        f"removed {format_count(written.deleted)}",
        f"rejected {format_count(report.problems)}",
        f"already stale {format_count(report.stale)}",
    ]
    return f"{report.source}: " + " · ".join(parts) + f" in {report.seconds:.1f} s"


# --- the import commands ----------------------------------------------------


def run_import(context: Context, spec: FeedSpec) -> None:
    """Import ``spec``, print the summary and the rejects; exit 1 when some were rejected."""
    context.ensure_index()
    try:
        report = import_feed(context.conn(), context.hot(), context.settings, spec)
    except (gbfs.GbfsError, chargers.ChargerFeedError) as exc:
        raise FeedInputError(str(exc)) from exc
    except NothingWritten as exc:
        raise click.ClickException(f"{exc}; nothing was written") from exc
    except (redis.RedisError, HotIndexUnavailable) as exc:
        raise click.ClickException(
            f"PostGIS is written; Redis is not: {exc}; the next import, feed sync, server"
            " start or healing check rebuilds it from PostGIS"
        ) from exc
    for rejected in report.rejected[:20]:
        click.echo(f"rejected {rejected.feed} {rejected.native_id}: {rejected.reason}", err=True)
    for entity_id in report.written.conflicts[:20]:
        click.echo(f"rejected {entity_id}: the id belongs to another source", err=True)
    click.echo(summary_line(report))
    if not report.written.hot_applied:
        click.echo(
            "Redis lost its index generation during the import: the next import, feed sync,"
            " server start or healing check rebuilds it from PostGIS",
            err=True,
        )
    if report.problems:
        raise SystemExit(1)


@click.command("gbfs")
@click.argument("location", metavar="PATH_OR_URL")
@click.option("--source", help="Source name (default: the system id).")
@click.option("--lang", help="Language of the discovery file's feeds (default: en or the first).")
@click.pass_obj
def import_gbfs(context: Context, location: str, source: str | None, lang: str | None) -> None:
    """Import a GBFS feed set: gbfs.json (file or URL), a directory, or one feed file."""
    run_import(context, FeedSpec("gbfs", location, source, lang))


@click.command("chargers")
@click.argument("location", metavar="PATH_OR_URL")
@click.option("--format", "fmt", type=click.Choice(chargers.FORMATS), required=True)
@click.option("--source", help="Source name (default: the OCPI party, or 'ocm').")
@click.pass_obj
def import_chargers(context: Context, location: str, fmt: str, source: str | None) -> None:
    """Import chargers: OCPI 2.2.1 locations or Open Charge Map POI JSON."""
    run_import(context, FeedSpec(fmt, location, source))


# --- the watcher -------------------------------------------------------------


@dataclass
class Polled:
    """A watched feed's schedule: when it is next due and how often it failed in a row."""

    spec: FeedSpec
    due: float = 0.0
    failures: int = 0
    last_error: str = field(default="")
    #: The source its last successful poll wrote (a failure is recorded under it).
    source: str | None = None


@dataclass(frozen=True)
class WatchBounds:
    """Bounds on polling: a feed's ttl is clamped to [min_s, max_s]; back-off stops at max."""

    min_s: float = 10.0
    max_s: float = 600.0
    default_s: float = 60.0
    max_backoff_s: float = 900.0


def next_interval(bounds: WatchBounds, ttl_s: int | None) -> float:
    """Seconds until the next poll after a success: the feed's ttl within bounds."""
    wanted = bounds.default_s if ttl_s is None else float(ttl_s)
    return min(max(wanted, bounds.min_s), bounds.max_s)


def backoff(bounds: WatchBounds, failures: int, rng: random.Random) -> float:
    """Seconds until a retry after ``failures`` failures in a row: doubling, jittered, bounded."""
    base = bounds.min_s * 2.0 ** min(failures - 1, 20)
    return min(base, bounds.max_backoff_s) * rng.uniform(0.8, 1.0)


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


#: What a poll may raise and the watcher survives (anything else is a bug).
WATCH_ERRORS = (
    gbfs.GbfsError,
    chargers.ChargerFeedError,
    psycopg.Error,
    redis.RedisError,
    HotIndexUnavailable,
)


class Watcher:
    """Polls feeds until ``stop`` is set; one feed's failures never stop the others."""

    def __init__(
        self,
        specs: Sequence[FeedSpec],
        connect: Callable[[], tuple[psycopg.Connection, HotIndex]],
        settings: IndexSettings,
        bounds: WatchBounds = WatchBounds(),
        *,
        purge_every_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.feeds = [Polled(spec) for spec in specs]
        self.connect = connect
        self.settings = settings
        self.bounds = bounds
        self.purge_every_s = purge_every_s
        self.clock = clock
        self.stop = threading.Event()
        self.rng = random.Random()
        self._stores: tuple[psycopg.Connection, HotIndex] | None = None
        self._next_purge = 0.0

    def stores(self) -> tuple[psycopg.Connection, HotIndex]:
        """PostGIS and Redis, (re)connected when needed."""
        if self._stores is None or self._stores[0].closed or self._stores[0].broken:
            self._stores = self.connect()
        return self._stores

    def poll(self, feed: Polled) -> ImportReport | None:
        """Import one feed now; on failure log it and schedule a retry with back-off."""
        try:
            conn, hot = self.stores()
            report = import_feed(conn, hot, self.settings, feed.spec, known_source=feed.source)
        except WATCH_ERRORS as exc:
            feed.failures += 1
            feed.last_error = str(exc)
            delay = backoff(self.bounds, feed.failures, self.rng)
            feed.due = self.clock() + delay
            log.warning(
                "%s failed (%d in a row), retry in %.0f s: %s",
                feed.spec.location,
                feed.failures,
                delay,
                exc,
            )
            if isinstance(exc, psycopg.OperationalError):
                self._stores = None
            return None
        feed.failures, feed.last_error, feed.source = 0, "", report.source
        feed.due = self.clock() + next_interval(self.bounds, report.ttl_s)
        log.info("%s", summary_line(report))
        return report

    def purge(self) -> None:
        """Reclaim stale entities now and then (search hides them already)."""
        if self.clock() < self._next_purge:
            return
        self._next_purge = self.clock() + self.purge_every_s
        try:
            conn, hot = self.stores()
            purged = purge_stale(conn, hot, self.settings)
        except (psycopg.Error, redis.RedisError, HotIndexUnavailable) as exc:
            log.warning("purge failed: %s", exc)
            return
        if purged:
            log.info("purged %s stale entities", format_count(purged))

    def run_once(self) -> list[ImportReport]:
        """Poll every feed that is due, then purge if it is time."""
        now = self.clock()
        reports = []
        for feed in self.feeds:
            if self.stop.is_set():
                break
            if feed.due <= now:
                report = self.poll(feed)
                reports.extend([report] if report else [])
        self.purge()
        return reports

    def run(self) -> None:
        """Poll until ``stop`` is set, sleeping until the next feed is due."""
        while not self.stop.is_set():
            self.run_once()
            wait = min(feed.due for feed in self.feeds) - self.clock()
            self.stop.wait(max(wait, 0.05))


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Set ``stop`` on SIGTERM and SIGINT; the current poll finishes, then the loop ends."""
    signals = (signal.SIGTERM, signal.SIGINT)
    previous = {sig: signal.getsignal(sig) for sig in signals}

    def handler(signum: int, frame: Any) -> None:
        log.info("stopping on %s", signal.Signals(signum).name)
        stop.set()

    for sig in signals:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def read_specs(feeds_file: str | None, feeds: Sequence[str]) -> list[FeedSpec]:
    """Feeds from ``--feeds FILE`` lines and ``KIND:LOCATION`` arguments."""
    lines = list(feeds)
    if feeds_file:
        try:
            lines = Path(feeds_file).read_text().splitlines() + lines
        except OSError as exc:
            raise FeedInputError(f"{feeds_file}: {exc.strerror or exc}") from exc
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


def register(import_group: click.Group, feeds_group: click.Group) -> None:
    """Add ``import gbfs``, ``import chargers`` and ``feeds watch`` to the CLI."""
    import_group.add_command(import_gbfs)
    import_group.add_command(import_chargers)
    feeds_group.add_command(watch)
