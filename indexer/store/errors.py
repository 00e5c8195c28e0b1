"""How a write to the index can fail, as errors of :mod:`indexer.errors`' table."""

from __future__ import annotations

from indexer.errors import BadInput, Unavailable


class NothingWritten(Unavailable):
    """A write failed before PostGIS committed anything (Redis refused the fill)."""


class HotIndexUnavailable(Unavailable):
    """PostGIS committed but Redis could not be written: the write's mark stays, and the
    next write, feed sync, server start or healing check rebuilds the hot index."""


class WriteRefused(BadInput):
    """PostGIS refused what a write gave it (a value, a constraint): nothing is written."""


#: Who mends a hot index that missed a write PostGIS committed.
REPAIRED_BY = "the next import, feed sync, server start or healing check rebuilds it from PostGIS"
