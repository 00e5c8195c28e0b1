"""The writes of one fill transaction (indexer/hot/fill.py), gathered per key and packed.

Every cell set's new members (and the sets' tops) in one call of fill_sets.lua,
each group's member, document and text hashes in one HSET each, each posting set
of the text index in one SADD or ZADD, the mini-apps' branches in one call of
fill_branches.lua, loc in one HSET; MULTI/EXEC around them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import hiredis

from indexer.hot import layout, lua

#: A command's words: text, or bytes for members.
Word = str | bytes


class CellNames(NamedTuple):
    """The names the fill writes for one cell."""

    #: "tag cell", as loc names the cell.
    word: str
    #: The cell's set, its t hash and the cell's field there (its hex id).
    set_key: str
    tops_key: str
    cell: str
    #: The common start of its group's keys.
    group: str


class FillEntity(NamedTuple):
    """What the fill writes for one entity (a tombstone: ``place`` empty, nothing placed)."""

    id: str
    rev: int
    #: Its cells as loc holds them (after the revision).
    place: str
    #: Its popularity bound as a set's score (:func:`indexer.hot.layout.bound_of`).
    score: str
    member: bytes
    display: str
    cells: tuple[CellNames, ...]
    #: The base of each group its cells are in.
    groups: tuple[str, ...]
    #: Its text entry (:func:`indexer.hot.encoding.text_entry`) and index terms.
    text: str = ""
    terms: tuple[str, ...] = ()
    #: The categories and mini-apps it carries (:func:`indexer.hot.encoding.text_carriers`).
    carriers: tuple[tuple[str, str], ...] = ()
    #: Its mini-app, when it is among the branches ('' when not).
    branch: str = ""


class Gathered:
    """The writes of a batch gathered per key: each cell set's members, each group's
    member, document, text and carriers hashes and posting sets, loc."""

    def __init__(self, loc: str) -> None:
        #: Per cell set (by key): its names, then score, member, score, member …
        self.sets: dict[str, list[Any]] = {}
        self.payloads: dict[str, tuple[list[Word], list[Word], list[Word]]] = {}
        self.postings: dict[str, list[Word]] = {}
        #: Per group's carriers hash (by key): each key's words.
        self.carriers: dict[str, dict[str, str]] = {}
        #: Per group and mini-app, the ids that join its branches.
        self.branches: dict[tuple[str, str], list[Word]] = {}
        self.locs: list[Word] = ["HSET", loc]

    def add(self, entity: FillEntity) -> None:
        """Gather one entity's writes."""
        for names in entity.cells:
            members = self.sets.get(names.set_key)
            if members is None:
                self.sets[names.set_key] = [names, entity.score, entity.member]
            else:
                members += (entity.score, entity.member)
        for group in entity.groups:
            pair = self.payloads.get(group)
            if pair is None:
                pair = self.payloads[group] = (
                    ["HSET", group + layout.MEMBERS],
                    ["HSET", group + layout.DOCUMENTS],
                    ["HSET", group + layout.TEXT],
                )
            pair[0].extend((entity.id, entity.member))
            pair[1].extend((entity.id, entity.display))
            pair[2].extend((entity.id, entity.text))
            self.post(group, entity)
            if entity.carriers:
                self.carriers.setdefault(group + layout.CARRIERS, {}).update(entity.carriers)
            if entity.branch:
                self.branches.setdefault((group, entity.branch), []).append(entity.id)
        place = entity.place
        self.locs += (entity.id, f"{entity.rev} {place}" if place else str(entity.rev))

    def post(self, group: str, entity: FillEntity) -> None:
        """The entity's id into the group's posting set of each of its terms: with its
        bound in a name's term's (sorted), alone in a carrier term's."""
        for term in entity.terms:
            key = group + layout.POSTINGS + term
            ids = self.postings.get(key)
            if ids is None:
                carrier = term.startswith(layout.CARRIER)
                ids = self.postings[key] = ["SADD", key] if carrier else ["ZADD", key]
            if ids[0] == "SADD":
                ids.append(entity.id)
            else:
                ids += (entity.score, entity.id)

    def commands(self) -> list[list[Word]]:
        """The commands that make the writes (none when nothing was gathered)."""
        if len(self.locs) == 2:
            return []
        commands = [zadds(self.sets)] if self.sets else []
        for hashes in self.payloads.values():
            commands += hashes
        commands += self.postings.values()
        if self.branches:
            commands.append(branch_writes(self.branches))
        for key, carried in self.carriers.items():
            commands.append(["HSET", key, *[word for pair in carried.items() for word in pair]])
        commands.append(self.locs)
        return commands


def gather(
    entities: Iterable[FillEntity], loc: str, skip: frozenset[str] = frozenset()
) -> list[list[Word]]:
    """The commands that write ``entities`` (but the ``skip`` ids) into empty places.

    Every cell set's members (and its top) in one call of fill_sets.lua, each
    group's member, document and text hashes in one HSET each, each posting set
    in one SADD, loc in one HSET.
    """
    gathered = Gathered(loc)
    for entity in entities:
        if entity.id not in skip:
            gathered.add(entity)
    return gathered.commands()


def zadds(sets: Mapping[str, list[Any]]) -> list[Word]:
    """The fill_sets.lua call that adds each set's members (its names, then score,
    member, …)."""
    command: list[Word] = ["EVAL", lua.source("indexer.hot", "fill_sets.lua"), "0"]
    for names, *members in sets.values():
        command += (names.set_key, names.tops_key, names.cell, str(len(members) // 2))
        command += members
    return command


def branch_writes(branches: Mapping[tuple[str, str], list[Word]]) -> list[Word]:
    """The fill_branches.lua call that puts each group's mini-apps' ids among their
    branches (after the members: it reads their positions there)."""
    script = lua.source("indexer.hot", "fill_branches.lua", ("writers.lua",))
    command: list[Word] = ["EVAL", script, "0"]
    for (group, slug), ids in branches.items():
        command += (group, slug, str(len(ids)), *ids)
    return command


def pack(commands: list[list[Word]]) -> list[bytes]:
    """``commands`` in MULTI/EXEC, each in the Redis protocol."""
    return [_MULTI, *map(packed_command, commands), _EXEC]


def packed_command(command: Sequence[Word]) -> bytes:
    """One command in the Redis protocol, packed by hiredis."""
    return hiredis.pack_command(tuple(command))  # type: ignore[arg-type]  # stubs: a 1-tuple


_MULTI = packed_command(("MULTI",))
_EXEC = packed_command(("EXEC",))


@dataclass(frozen=True, slots=True)
class FillBatch:
    """Entities to write in one transaction, and that transaction packed for when
    loc holds none of them (the common case), made while the previous one is sent."""

    entities: list[FillEntity]
    packed: list[bytes]

    @classmethod
    def of(cls, entities: list[FillEntity], loc: str) -> FillBatch:
        """The batch of ``entities``, packed to write them all."""
        return cls(entities, pack(gather(entities, loc)))
