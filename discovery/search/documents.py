"""Display documents of search results, kept by the process that shows them.

A nearby answer shows each hit's display document, some 400 bytes of JSON.
Read inside the search script, the documents were a tenth of its Redis time
(measured: 0.35M of 3.3M instructions for a page of 21); a revision's document
never changes, so each process keeps the documents it has shown, by id, with
the revision they show.  The script returns each hit's revision (from the
member it ranked): a document kept for that revision is the current one.  The
others are read in one round trip (per group, the documents and the ids'
locations); should an id have changed meanwhile (its revision moved on), the
search runs again, so that a page never mixes a newer document with older
figures.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from contextlib import suppress

from discovery.search.caller import ScriptCaller
from indexer.hot import layout, lua
from indexer.hot.index import HotIndex

#: Documents a process keeps (about 0.5 KB each); the oldest kept go first.
MAX_DOCUMENTS = 50_000


class Changed(Exception):
    """An id changed between the search and the reading of its document."""


class Documents:
    """The display documents a process has shown: id -> (revision, JSON)."""

    def __init__(self, hot: HotIndex, limit: int = MAX_DOCUMENTS) -> None:
        self.hot = hot
        self.limit = limit
        self.script = ScriptCaller(hot.raw, lua.source("discovery.search", "documents.lua"))
        # Ordered, to forget the oldest in constant time: a plain dict's first key
        # is found past every slot emptied before it (65 µs a call when full).
        self.kept: OrderedDict[str, tuple[int, bytes]] = OrderedDict()

    def documents(
        self, gen: str, tags: Sequence[str], wanted: Sequence[tuple[str, int, int]]
    ) -> list[bytes]:
        """The documents of ``wanted`` (id, revision, tag number in ``tags``), in order.

        Changed when an id's revision in the index is no longer the one asked.
        """
        kept = self.kept
        found: list[bytes | None] = []
        missing: list[int] = []
        for n, (entity_id, rev, _) in enumerate(wanted):
            held = kept.get(entity_id)
            if held is not None and held[0] == rev:
                found.append(held[1])
            else:
                found.append(None)
                missing.append(n)
        if missing:
            for n, doc in zip(
                missing, self.read(gen, tags, [wanted[n] for n in missing]), strict=True
            ):
                found[n] = doc
                self.keep(wanted[n][0], wanted[n][1], doc)
        return found  # type: ignore[return-value]  # every None was filled

    def read(
        self, gen: str, tags: Sequence[str], wanted: Sequence[tuple[str, int, int]]
    ) -> list[bytes]:
        """Documents read from the index, with the ids' revisions checked (one round trip)."""
        args: list[object] = [self.hot.prefix, gen, layout.SEP.join(tags)]
        for entity_id, rev, tag in wanted:
            args += (entity_id, rev, tag)
        found = self.script(args)
        if found is None:
            raise Changed
        return list(found)

    def close(self) -> None:
        """Close the script's connections."""
        self.script.close()

    def keep(self, entity_id: str, rev: int, doc: bytes) -> None:
        """Keep a document, forgetting the oldest kept past the limit."""
        kept = self.kept
        if len(kept) >= self.limit and entity_id not in kept:
            # Another thread may have forgotten it first, or be adding one.
            with suppress(KeyError):
                kept.popitem(last=False)
        kept[entity_id] = (rev, doc)
