"""What a job's failed write ends as: an error of :mod:`indexer.errors`' table.

The drivers' and the parsers' errors become the table's, their messages saying
what was written: nothing, when PostGIS did not commit; or PostGIS but not
Redis, and who mends that.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import redis

from indexer.errors import BadInput, Unavailable
from indexer.sources.rejects import ChargerFeedError, GbfsError, UnreadableInput
from indexer.store.errors import REPAIRED_BY, HotIndexUnavailable, NothingWritten, WriteRefused

#: What a job's input may raise when it cannot be used.
INPUT_ERRORS = (UnreadableInput, GbfsError, ChargerFeedError, OSError)
NOTHING_WRITTEN = "nothing was written"


@contextmanager
def write_failures() -> Iterator[None]:
    """Raise what the write inside raises as the table's errors (see the module)."""
    try:
        yield
    except (HotIndexUnavailable, redis.RedisError) as exc:
        raise HotIndexUnavailable(
            f"PostGIS has the write but Redis does not: {exc}; {REPAIRED_BY}"
        ) from exc
    except NothingWritten as exc:
        raise NothingWritten(f"{exc}; {NOTHING_WRITTEN}") from exc
    except psycopg.OperationalError as exc:
        raise Unavailable(f"PostGIS failed: {exc}; {NOTHING_WRITTEN}") from exc
    except psycopg.Error as exc:
        raise WriteRefused(f"{exc}; {NOTHING_WRITTEN}") from exc
    except INPUT_ERRORS as exc:
        raise BadInput(f"{exc}; {NOTHING_WRITTEN}") from exc
