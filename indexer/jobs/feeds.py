"""The import of one live feed, a snapshot of its source: ``nearby import gbfs|chargers``.

Each import of a feed is a snapshot of its source: what the feed no longer
lists is removed (GBFS rotates vehicle ids after every trip).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from indexer import telemetry
from indexer.hot.index import HotIndex
from indexer.progress import format_count
from indexer.settings import IndexSettings
from indexer.sources import chargers, gbfs
from indexer.store.merge import WriteSummary
from indexer.store.stale import is_stale
from indexer.store.writer import write_entities

#: The kinds of feed :func:`load_feed` reads.
FEED_KINDS = ("gbfs", "ocpi", "ocm")


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
