"""How the parsers refuse what they read: a whole input, or one record.

An input that cannot be read at all raises :class:`UnreadableInput` (a store
listing), :class:`GbfsError` (a GBFS feed set) or :class:`ChargerFeedError` (a
charger document): nothing of it may be written.

One record that cannot become an entity is refused the same way by every
parser: the function that makes its entity raises :class:`InvalidEntity`, whose
message is the reason. A feed's parser keeps each such record as a
:class:`Rejected` beside the entities of its :class:`Parsed` result; the store
importer writes each to its rejects file with the record's line or feature.
"""

from __future__ import annotations

import csv
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ParamSpec

from indexer.model import Entity

P = ParamSpec("P")

#: What a listing reader may raise while decoding that means the input is unreadable.
DECODE_ERRORS = (OSError, EOFError, UnicodeDecodeError, zlib.error, csv.Error, ValueError)


class UnreadableInput(Exception):
    """The input cannot be read as a listing at all; nothing of it may be written."""


class GbfsError(ValueError):
    """A feed cannot be read or understood; the message names the feed."""


class ChargerFeedError(ValueError):
    """The document is not a feed of the format asked for."""


class InvalidEntity(ValueError):
    """A record that cannot become an entity; the message says why, for a rejects file."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record of a feed that could not become an entity: the feed, its id and why."""

    feed: str
    native_id: str
    reason: str


@dataclass(frozen=True)
class Parsed:
    """Entities of a feed and the records that were left out, each in feed order."""

    entities: list[Entity] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)

    def add(
        self,
        feed: str,
        native_id: str,
        make: Callable[P, Entity],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> None:
        """Keep the entity ``make(*args, **kwargs)`` returns, or the record's reject.

        ``make`` refuses the record by raising InvalidEntity with the reason.
        """
        try:
            self.entities.append(make(*args, **kwargs))
        except InvalidEntity as exc:
            self.rejected.append(Rejected(feed, native_id, str(exc)))
