"""What the index's processes publish for scrapes and ``nearby status``: small Redis hashes.

Imports, feed syncs and rebuilds run in processes of their own (the command
line, the feed watcher, a server's worker or what it starts): each records
what it did under the deployment's prefix, and whoever asks (a ``/metrics``
scrape, ``nearby status``) reads it back. The figures are the deployment's,
the same whichever API instance reads them::

    {base}:telemetry:builds           HASH  started, finished.{ok,superseded,failed},
                                            seconds.{sum,count,le.B} of the builds that
                                            became current, current.{gen,since}, last.*
    {base}:telemetry:sources          SET   every source that recorded an import
    {base}:telemetry:source:{source}  HASH  via, last_success, last_failure, last_error,
                                            lag_s, runs.{ok,failed}, rows.{outcome}

``{base}`` is the deployment's prefix without the layout: these outlive a
layout change (``nearby cache prune`` keeps them). Recording never fails what
it records: a Redis error is logged and dropped (a write that Redis refused
has failed anyway).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis

from indexer.logs import redact

log = logging.getLogger(__name__)

#: Upper bounds, in seconds, of the rebuild duration histogram's buckets.
BUILD_BUCKETS_S = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, math.inf)
BUILD_OUTCOMES = ("ok", "superseded", "failed")
#: What an import does with a row (a feed sync is an import of its feed).
ROW_OUTCOMES = ("inserted", "updated", "unchanged", "deleted", "rejected")
#: Longest error text kept for a source's last failure.
MAX_ERROR_CHARS = 300


def telemetry_prefix(hot_prefix: str) -> str:
    """``nearby:l2.r5.7.9.11`` -> ``nearby:telemetry`` (prefixes hold no ':')."""
    return hot_prefix.rpartition(":")[0] + ":telemetry"


def builds_key(hot_prefix: str) -> str:
    """The hash of rebuild counts and the current generation's start."""
    return telemetry_prefix(hot_prefix) + ":builds"


def sources_key(hot_prefix: str) -> str:
    """The set of sources that recorded an import."""
    return telemetry_prefix(hot_prefix) + ":sources"


def source_key(hot_prefix: str, source: str) -> str:
    """The hash of one source's imports."""
    return telemetry_prefix(hot_prefix) + ":source:" + source


def bucket_name(bound_s: float) -> str:
    """A histogram bucket's field: ``le.60`` or ``le.+Inf``."""
    return "le.+Inf" if math.isinf(bound_s) else f"le.{bound_s:g}"


def safely(client: redis.Redis, what: str, write: Callable[[Any], None]) -> None:
    """Run ``write(pipeline)`` and send it; a Redis error is logged, not raised."""
    try:
        pipe = client.pipeline(transaction=False)
        write(pipe)
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("could not record %s: %s", what, type(exc).__name__)


# -- rebuilds ---------------------------------------------------------------


class BuildRecorder:
    """Counts one build of a generation: call :meth:`finished` once, with its outcome."""

    def __init__(self, client: redis.Redis, hot_prefix: str, gen: str) -> None:
        self.client = client
        self.key = builds_key(hot_prefix)
        self.gen = gen
        self.started_s = time.monotonic()
        safely(client, "a build's start", lambda pipe: pipe.hincrby(self.key, "started", 1))

    def finished(self, outcome: str) -> None:
        """Count the build as ``ok`` (it became current), ``superseded`` or ``failed``."""
        seconds = time.monotonic() - self.started_s
        now = time.time()

        def write(pipe: Any) -> None:
            pipe.hincrby(self.key, f"finished.{outcome}", 1)
            last = {"last.gen": self.gen, "last.outcome": outcome, "last.seconds": seconds}
            pipe.hset(self.key, mapping={**last, "last.finished_at": now})
            if outcome != "ok":
                return
            pipe.hset(self.key, mapping={"current.gen": self.gen, "current.since": now})
            pipe.hincrbyfloat(self.key, "seconds.sum", seconds)
            pipe.hincrby(self.key, "seconds.count", 1)
            for bound in BUILD_BUCKETS_S:
                if seconds <= bound:
                    pipe.hincrby(self.key, bucket_name(bound), 1)

        safely(self.client, "a build's end", write)
        log.info("build of generation %s: %s in %.1f s", self.gen, outcome, seconds)


@dataclass(frozen=True)
class BuildStats:
    """Rebuild counts, and when the current generation became current (as recorded)."""

    started: int = 0
    finished: Mapping[str, int] = field(default_factory=dict)
    seconds_sum: float = 0.0
    seconds_count: int = 0
    #: (upper bound, builds at most that long), cumulative, +Inf last.
    buckets: tuple[tuple[float, int], ...] = ()
    current_gen: str | None = None
    current_since: float | None = None
    last_seconds: float | None = None
    last_outcome: str | None = None


def _float(value: str | None) -> float | None:
    return None if value is None else float(value)


def read_builds(client: redis.Redis, hot_prefix: str) -> BuildStats:
    """What :class:`BuildRecorder` recorded."""
    held: dict[str, str] = client.hgetall(builds_key(hot_prefix))
    return BuildStats(
        started=int(held.get("started", 0)),
        finished={name: int(held.get(f"finished.{name}", 0)) for name in BUILD_OUTCOMES},
        seconds_sum=float(held.get("seconds.sum", 0.0)),
        seconds_count=int(held.get("seconds.count", 0)),
        buckets=tuple((b, int(held.get(bucket_name(b), 0))) for b in BUILD_BUCKETS_S),
        current_gen=held.get("current.gen"),
        current_since=_float(held.get("current.since")),
        last_seconds=_float(held.get("last.seconds")),
        last_outcome=held.get("last.outcome"),
    )


# -- imports and feed syncs -------------------------------------------------


def record_import(
    client: redis.Redis,
    hot_prefix: str,
    source: str,
    via: str,
    rows: Mapping[str, int],
    *,
    lag_s: float | None = None,
    now: float | None = None,
) -> None:
    """Record a successful import of ``source`` (``via``: stores, gbfs, ocpi, ocm).

    ``rows`` counts rows by :data:`ROW_OUTCOMES`; ``lag_s``, for a live feed,
    is how old its newest data was when it was read.
    """
    key = source_key(hot_prefix, source)
    moment = time.time() if now is None else now

    def write(pipe: Any) -> None:
        pipe.sadd(sources_key(hot_prefix), source)
        pipe.hset(key, mapping={"via": via, "last_success": moment})
        if lag_s is not None:
            pipe.hset(key, "lag_s", lag_s)
        pipe.hincrby(key, "runs.ok", 1)
        for outcome in ROW_OUTCOMES:
            pipe.hincrby(key, f"rows.{outcome}", int(rows.get(outcome, 0)))

    safely(client, f"an import of {source}", write)


def record_failure(
    client: redis.Redis,
    hot_prefix: str,
    source: str,
    via: str,
    error: str,
    *,
    now: float | None = None,
) -> None:
    """Record a failed import of ``source`` and why."""
    key = source_key(hot_prefix, source)
    moment = time.time() if now is None else now

    def write(pipe: Any) -> None:
        pipe.sadd(sources_key(hot_prefix), source)
        error_text = redact(error)[:MAX_ERROR_CHARS]
        failure = {"via": via, "last_failure": moment, "last_error": error_text}
        pipe.hset(key, mapping=failure)
        pipe.hincrby(key, "runs.failed", 1)

    safely(client, f"a failed import of {source}", write)


@dataclass(frozen=True)
class SourceStats:
    """What the imports of one source recorded."""

    source: str
    via: str = ""
    last_success: float | None = None
    last_failure: float | None = None
    last_error: str = ""
    lag_s: float | None = None
    runs_ok: int = 0
    runs_failed: int = 0
    rows: Mapping[str, int] = field(default_factory=dict)


def source_stats(source: str, held: Mapping[str, str]) -> SourceStats:
    """A source's hash as :class:`SourceStats`."""
    return SourceStats(
        source=source,
        via=held.get("via", ""),
        last_success=_float(held.get("last_success")),
        last_failure=_float(held.get("last_failure")),
        last_error=held.get("last_error", ""),
        lag_s=_float(held.get("lag_s")),
        runs_ok=int(held.get("runs.ok", 0)),
        runs_failed=int(held.get("runs.failed", 0)),
        rows={outcome: int(held.get(f"rows.{outcome}", 0)) for outcome in ROW_OUTCOMES},
    )


def read_sources(client: redis.Redis, hot_prefix: str) -> list[SourceStats]:
    """Every source's record, by name."""
    sources: Iterable[str] = sorted(client.smembers(sources_key(hot_prefix)))
    pipe = client.pipeline(transaction=False)
    for source in sources:
        pipe.hgetall(source_key(hot_prefix, source))
    return [
        source_stats(source, held) for source, held in zip(sources, pipe.execute(), strict=True)
    ]
