"""Keeping the hot index whole without anyone running a command.

Redis can come back empty (a restart without persistence, a failover, FLUSHALL),
a deployment starts with nothing, and a write can die between its PostGIS
commit and its Redis writes (its mark stays: :mod:`indexer.hot.pending`).  Every
write, feed sync, ``nearby db upgrade`` and the API's healing (through
``nearby cache rebuild --if-needed``) call :func:`ensure_index`, which rebuilds
the hot index from PostGIS when it must:

- Redis holds no generation: a build is marked only if, at that moment, none
  is current and none is building (one step in Redis), so that of the
  processes that find the index missing at once, one builds and the others go
  on (their writes reach the building generation);
- a mark whose writer is gone: a build in place of any that runs (the one
  running may be the dead writer's own, whose lease would hold others off for
  up to 30 s); the marks are deleted once the new generation is current, as
  its snapshot was taken after they were read.

The build runs in the calling process: the CLI's, the feed watcher's, or the
one the API starts for it (discovery/search/healing.py), never in a request.
:func:`healing_rebuild` logs each start, finish and failure.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from indexer.hot.fill import fill_generation
from indexer.hot.index import HotIndex
from indexer.hot.pending import clear_marks, dead_marks
from indexer.progress import format_count

log = logging.getLogger("nearby.heal")

#: Why a healing rebuild runs.
MISSING = "Redis holds no index generation"


@dataclass(frozen=True, slots=True)
class Healed:
    """A healing rebuild that made its generation current."""

    reason: str
    count: int
    gen: str
    seconds: float

    def __str__(self) -> str:
        return (
            f"{self.reason}: rebuilt {format_count(self.count)} entities from PostGIS"
            f" in {self.seconds:.1f} s (generation {self.gen})"
        )


def dead_reason(dead: list[int]) -> str:
    """Why marks of dead writes make a rebuild run."""
    writes = "a write" if len(dead) == 1 else f"{len(dead)} writes"
    return f"{writes} committed to PostGIS never reached Redis"


def ensure_index(
    conn: psycopg.Connection, hot: HotIndex, progress: Callable[[int], None] | None = None
) -> Healed | None:
    """Rebuild the hot index from PostGIS if Redis holds no generation or a write died
    between the two; what was rebuilt, or None (nothing to do, or another build runs).

    Raises what PostgreSQL or Redis raise (the index is left as it was).
    """
    dead = dead_marks(conn)
    if dead:
        healed = healing_rebuild(conn, hot, dead_reason(dead), over=True, progress=progress)
        if healed is not None:
            clear_marks(conn, dead)
        return healed
    if hot.generation() is not None:
        return None
    return healing_rebuild(conn, hot, MISSING, over=False, progress=progress)


def healing_rebuild(
    conn: psycopg.Connection,
    hot: HotIndex,
    reason: str,
    *,
    over: bool,
    progress: Callable[[int], None] | None = None,
) -> Healed | None:
    """Rebuild for ``reason``: in place of any build running (``over``), else only if the
    index is still missing and no build runs.  Logs its start, finish and failure.

    Returns None when it did not run, or another build replaced it.
    """
    started = time.monotonic()
    began: list[str] = []

    def fill(gen: str) -> int:
        began.append(gen)
        log.info("healing rebuild started: %s (generation %s)", reason, gen)
        return fill_generation(hot, conn, gen, progress)

    try:
        count = hot.build(fill, alone=not over, missing=not over)
    except Exception as exc:
        log.warning("healing rebuild failed: %s: %s", reason, exc)
        raise
    if count is None:
        if began:
            log.info("healing rebuild of generation %s gave way to another build", began[0])
        return None
    healed = Healed(reason, count, began[0], time.monotonic() - started)
    log.info("healing rebuild finished: %s", healed)
    return healed
