"""``nearby cache verify``: every way in which a generation of the hot index
disagrees with PostGIS.

Checked: every id's location and revision in loc, every cell set's members
(each the entity's current member, in exactly the cells loc names, scored by
its popularity bound, with the generation's usage bound factor), each set's
top in its t hash (and the hash's bound field), each group's member, display
document and text entry of every entity placed there, byte for byte what
:mod:`indexer.hot.encoding` makes of the PostGIS row, and every posting set of
the text index: exactly the ids of the group's entities indexed under its term,
and every branches set (:mod:`indexer.hot.verify_branches`).  Whatever it finds,
``nearby cache rebuild`` mends: it writes a fresh generation from PostGIS.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import h3
import psycopg
from psycopg.rows import dict_row

from indexer.hot import encoding, layout
from indexer.hot.client import HotClient
from indexer.hot.verify_branches import branch_problems
from indexer.model import INDEX_RESOLUTIONS

#: What a member and a document are made of, read from PostGIS.
EXPECTED_COLUMNS = (
    "id, kind, name, category, mini_app, lat, lng, popularity, available, capacity,"
    " opening_hours, tz, attrs::text AS attrs_json, source, rev, updated_at, seen_at,"
    " usage_mass, search_text"
)
#: Set keys read per pipeline.
SETS_PER_ROUND = 200
#: Ids whose group hashes are read per pipeline.
IDS_PER_ROUND = 1000


@dataclass(frozen=True, slots=True)
class Difference:
    """One way in which Redis disagrees with PostGIS."""

    id: str
    problem: str

    def __str__(self) -> str:
        return f"{self.id}: {self.problem}"


def digest(document: bytes) -> bytes:
    """What two documents are compared by: equal exactly when their bytes are."""
    return hashlib.blake2b(document, digest_size=16).digest()


class Expected:
    """What PostGIS says each id should be in Redis: revision, placement, member and
    (the digest of) its display document."""

    def __init__(self, conn: psycopg.Connection, bound_factor: float = 1.0) -> None:
        self.rev: dict[str, int] = {}
        self.place: dict[str, list[str]] = {}
        #: The generation's usage bound factor, that its sets' scores are made with.
        self.bound_factor = bound_factor
        self.member: dict[str, bytes] = {}
        self.document: dict[str, bytes] = {}
        self.text: dict[str, str] = {}
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(f"SELECT {EXPECTED_COLUMNS} FROM entities")
            for row in cur:
                entity_id = row["id"]
                self.rev[entity_id] = row["rev"]
                self.place[entity_id] = encoding.placement_of(row["lat"], row["lng"]).pairs()
                self.member[entity_id] = encoding.member_of(row)
                self.document[entity_id] = digest(encoding.display_document(row).encode())
                self.text[entity_id] = encoding.text_entry(
                    row["name"], row["category"], row["search_text"], row["mini_app"]
                )


def verify_generation(hot: HotClient, gen: str, conn: psycopg.Connection) -> list[Difference]:
    """Compare PostGIS with generation ``gen``: locations, revisions, sets, tops, hashes."""
    expected = Expected(conn, hot.bound_factor(gen))
    held = hot.client.hgetall(layout.loc_key(hot.prefix, gen))
    live: dict[str, list[str]] = {}
    for entity_id, value in held.items():
        parts = value.split()
        if len(parts) > 1:
            live[entity_id] = parts
    differences = [
        Difference(entity_id, "in Redis, not in PostGIS")
        for entity_id in sorted(set(live) - set(expected.rev))
    ]
    for entity_id, rev in sorted(expected.rev.items()):
        where = live.get(entity_id)
        if where is None:
            differences.append(Difference(entity_id, "in PostGIS, not in Redis"))
        elif int(where[0]) != rev:
            differences.append(Difference(entity_id, f"Redis has rev {where[0]}, PostGIS {rev}"))
        elif where[1:] != expected.place[entity_id]:
            differences.append(Difference(entity_id, "Redis places it in another cell"))
    differences.extend(verify_sets(hot, gen, live, expected))
    differences.extend(verify_groups(hot, gen, live, expected))
    differences.extend(verify_postings(hot, gen, live, expected))
    differences.extend(verify_carriers(hot, gen, live, expected))
    differences += [Difference(i, p) for i, p in branch_problems(hot, gen, live, expected.member)]
    return differences


def group_keys(hot: HotClient, gen: str) -> tuple[list[bytes], list[str]]:
    """Every cell set key and every t hash key of a generation (one SCAN).

    SCAN may return a key more than once (when the keyspace is rehashed
    meanwhile), so each is kept once: a set read twice would count its members
    twice.
    """
    sets: list[bytes] = []
    tops: list[str] = []
    base = layout.generation_base(hot.prefix, gen)
    keys = hot.raw.scan_iter(match=f"{base}{{*}}:*", count=1000)
    for key in dict.fromkeys(keys):
        kind = key.rpartition(b"}:")[2]
        if kind.startswith(layout.CELL_SET.encode()):
            sets.append(key)
        elif kind.startswith(b"t"):
            tops.append(key.decode())
    return sets, tops


class SetCheck:
    """What the cell sets hold, checked member by member: the problems, how many
    sets hold each id, the top of each set."""

    def __init__(self, live: Mapping[str, list[str]], expected: Expected) -> None:
        self.live = live
        self.expected = expected
        self.differences: list[Difference] = []
        self.seen: dict[str, int] = {}
        self.tops: dict[str, dict[str, float]] = {}

    def check(self, name: str, members: list[tuple[bytes, float]]) -> None:
        """Check the members (with their scores) of the set with key ``name``."""
        group, _, cell = name.rpartition(layout.CELL_SET)
        if members:
            tops_key = group + layout.tops_field(h3.get_resolution(cell))
            self.tops.setdefault(tops_key, {})[cell] = max(score for _, score in members)
        for member, score in members:
            problem = member_problem(member, score, cell, self.live, self.expected)
            entity_id = encoding.member_id(member)
            if problem:
                self.differences.append(Difference(entity_id, f"{problem} {name}"))
            if problem != "stray member of":
                self.seen[entity_id] = self.seen.get(entity_id, 0) + 1


def verify_sets(
    hot: HotClient, gen: str, live: Mapping[str, list[str]], expected: Expected
) -> list[Difference]:
    """Check every cell set's members against loc and PostGIS, and every set's top."""
    sets = SetCheck(live, expected)
    set_keys, top_keys = group_keys(hot, gen)
    for first in range(0, len(set_keys), SETS_PER_ROUND):
        keys = set_keys[first : first + SETS_PER_ROUND]
        pipe = hot.raw.pipeline(transaction=False)
        for raw_key in keys:
            pipe.zrange(raw_key, 0, -1, withscores=True)
        for raw_key, members in zip(keys, pipe.execute(), strict=True):
            sets.check(raw_key.decode(), members)
    differences = sets.differences
    for entity_id in sorted(live):
        if entity_id in expected.rev and sets.seen.get(entity_id, 0) != len(INDEX_RESOLUTIONS):
            differences.append(Difference(entity_id, "missing from a cell set"))
    differences.extend(verify_tops(hot, top_keys, sets.tops))
    return differences


def member_problem(
    member: bytes, score: float, cell: str, live: Mapping[str, list[str]], expected: Expected
) -> str | None:
    """What is wrong with one member of the set of ``cell`` (None: nothing)."""
    entity_id = encoding.member_id(member)
    where = live.get(entity_id)
    if where is None or cell not in where[2::2]:
        return "stray member of"
    want = expected.member.get(entity_id)
    if want is not None and member != want:
        return "stale member in"
    parsed = encoding.parse_member(member)
    if score != layout.bound_of(parsed["popularity"], parsed["usage_mass"], expected.bound_factor):
        return f"popularity {score} in"
    return None


def verify_tops(
    hot: HotClient, keys: list[str], tops: Mapping[str, Mapping[str, float]]
) -> list[Difference]:
    """Check each t hash: a field per non-empty set, holding its top; the bound above them."""
    differences: list[Difference] = []
    for key in sorted(set(keys) | set(tops)):
        held = {field: float(value) for field, value in hot.client.hgetall(key).items()}
        bound = held.pop(layout.BOUND_FIELD, None)
        want = tops.get(key, {})
        for cell in sorted(set(held) | set(want)):
            if held.get(cell) != want.get(cell):
                differences.append(
                    Difference(
                        cell, f"top {held.get(cell)} in {key}, the set's is {want.get(cell)}"
                    )
                )
        if want and (bound is None or bound < max(want.values())):
            differences.append(Difference("*", f"bound {bound} in {key} below a top"))
    return differences


def group_problem(entity_id: str, held: list[bytes | None], expected: Expected) -> str | None:
    """What is wrong with an id's member, document and text entry in one group (None:
    nothing)."""
    member, document, text = held
    want = expected.member.get(entity_id)
    if member is None or (want is not None and member != want):
        return "member missing or stale in"
    wanted = expected.document.get(entity_id)
    if document is None or (wanted is not None and digest(document) != wanted):
        return "document missing or not PostGIS's in"
    entry = expected.text.get(entity_id)
    if text is None or (entry is not None and text.decode() != entry):
        return "text missing or not PostGIS's in"
    return None


def verify_groups(
    hot: HotClient, gen: str, live: Mapping[str, list[str]], expected: Expected
) -> list[Difference]:
    """Check every live id's member, display document and text entry in each of its groups."""
    differences: list[Difference] = []
    entries = sorted(live.items())
    for first in range(0, len(entries), IDS_PER_ROUND):
        pipe = hot.raw.pipeline(transaction=False)
        asked = []
        for entity_id, where in entries[first : first + IDS_PER_ROUND]:
            for tag in sorted(set(where[1::2])):
                pipe.hget(layout.member_key(hot.prefix, gen, tag), entity_id)
                pipe.hget(layout.display_key(hot.prefix, gen, tag), entity_id)
                pipe.hget(layout.text_key(hot.prefix, gen, tag), entity_id)
                asked.append((entity_id, tag))
        answers = pipe.execute()
        for i, (entity_id, tag) in enumerate(asked):
            problem = group_problem(entity_id, answers[3 * i : 3 * i + 3], expected)
            if problem:
                differences.append(Difference(entity_id, f"{problem} group {tag}"))
    return differences


def expected_postings(
    hot: HotClient, gen: str, live: Mapping[str, list[str]], expected: Expected
) -> dict[str, dict[str, float | None]]:
    """Each posting set's key and the ids it must hold: those of the entities placed in
    its group whose text has its term, each with its popularity bound in the set of a
    name's term (None in a carrier term's, which holds no bound)."""
    want: dict[str, dict[str, float | None]] = {}
    for entity_id, where in live.items():
        entry = expected.text.get(entity_id)
        member = expected.member.get(entity_id)
        if entry is None or member is None:
            continue
        parsed = encoding.parse_member(member)
        bound = layout.bound_of(parsed["popularity"], parsed["usage_mass"], expected.bound_factor)
        for tag in set(where[1::2]):
            for term in encoding.text_terms(entry):
                key = layout.posting_key(hot.prefix, gen, tag, term)
                carrier = term.startswith(layout.CARRIER)
                want.setdefault(key, {})[entity_id] = None if carrier else bound
    return want


def posting_keys(hot: HotClient, gen: str) -> list[str]:
    """Every posting set's key of a generation (each once: SCAN may repeat one)."""
    base = layout.generation_base(hot.prefix, gen)
    marker = ("}:" + layout.POSTINGS).encode()
    keys = hot.raw.scan_iter(match=f"{base}{{*}}:{layout.POSTINGS}*", count=1000)
    return sorted({key.decode() for key in keys if marker in key})


def held_postings(hot: HotClient, names: list[str]) -> list[dict[str, float | None]]:
    """What the posting sets ``names`` hold: each id, with its bound in a name's term's
    sorted set (a carrier term's set, its key says, holds ids alone)."""
    carrier = [layout.POSTINGS + layout.CARRIER in name for name in names]
    pipe = hot.client.pipeline(transaction=False)
    for name, plain in zip(names, carrier, strict=True):
        if plain:
            pipe.smembers(name)
        else:
            pipe.zrange(name, 0, -1, withscores=True)
    return [
        dict.fromkeys(held) if plain else dict(held)
        for plain, held in zip(carrier, pipe.execute(), strict=True)
    ]


def verify_postings(
    hot: HotClient, gen: str, live: Mapping[str, list[str]], expected: Expected
) -> list[Difference]:
    """Check the text index: each group's posting set of each term holds exactly the ids
    of the entities placed in the group whose text has that term (with their bounds)."""
    want = expected_postings(hot, gen, live, expected)
    held_keys = posting_keys(hot, gen)
    differences: list[Difference] = []
    for first in range(0, len(held_keys), SETS_PER_ROUND):
        names = held_keys[first : first + SETS_PER_ROUND]
        for name, ids in zip(names, held_postings(hot, names), strict=True):
            wanted = want.pop(name, {})
            differences += [
                Difference(i, f"stray id in {name}") for i in sorted(ids.keys() - wanted)
            ]
            differences += [
                Difference(i, f"missing from {name}") for i in sorted(wanted.keys() - ids)
            ]
            differences += [
                Difference(i, f"bound {ids[i]} in {name}, PostGIS {bound}")
                for i, bound in sorted(wanted.items())
                if i in ids and ids[i] != bound
            ]
    for name, ids in sorted(want.items()):
        differences += [Difference(i, f"missing from {name}") for i in sorted(ids)]
    return differences


def expected_carriers(
    hot: HotClient, gen: str, live: Mapping[str, list[str]], expected: Expected
) -> dict[str, dict[str, str]]:
    """Each carriers hash's key and what it must hold: the categories and mini-apps of
    the entities placed in its group, each with its words."""
    want: dict[str, dict[str, str]] = {}
    for entity_id, where in live.items():
        entry = expected.text.get(entity_id)
        carried = encoding.text_carriers(entry) if entry else {}
        for tag in set(where[1::2]) if carried else ():
            want.setdefault(layout.carriers_key(hot.prefix, gen, tag), {}).update(carried)
    return want


def verify_carriers(
    hot: HotClient, gen: str, live: Mapping[str, list[str]], expected: Expected
) -> list[Difference]:
    """Check each group's carriers hash: it names exactly the categories and mini-apps
    that the entities placed in the group carry, each with its words."""
    want = expected_carriers(hot, gen, live, expected)
    base = layout.generation_base(hot.prefix, gen)
    ending = "}:" + layout.CARRIERS
    found = hot.raw.scan_iter(match=f"{base}{{*}}{layout.CARRIERS}", count=1000)
    keys = sorted({key.decode() for key in found if key.decode().endswith(ending)} | set(want))
    pipe = hot.client.pipeline(transaction=False)
    for key in keys:
        pipe.hgetall(key)
    differences = []
    for key, held in zip(keys, pipe.execute(), strict=True):
        wanted = want.get(key, {})
        for field in sorted(set(held) | set(wanted)):
            if held.get(field) != wanted.get(field):
                problem = f"{key} holds {held.get(field)!r}, PostGIS {wanted.get(field)!r}"
                differences.append(Difference(field, problem))
    return differences
