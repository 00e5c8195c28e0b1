"""``nearby cache verify``: every way in which a generation of the hot index
disagrees with PostGIS.

Checked: every id's location and revision in loc, every cell set's members
(each the entity's current member, in exactly the cells loc names, scored by
its popularity), each set's top in its t hash (and the hash's '*' bound), and
each group's member and document of every entity placed there.
"""

from __future__ import annotations

from collections.abc import Mapping

import psycopg
from psycopg.rows import dict_row

from indexer.hot import layout
from indexer.hot.index import Difference, HotIndex
from indexer.model import INDEX_RESOLUTIONS

#: What a member is made of, read from PostGIS.
MEMBER_COLUMNS = (
    "id, rev, kind, lat, lng, popularity, available, seen_at, source, mini_app, category"
)
#: Set keys read per pipeline.
SETS_PER_ROUND = 200


class Expected:
    """What PostGIS says each id should be in Redis: revision, placement, member."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.rev: dict[str, int] = {}
        self.place: dict[str, list[str]] = {}
        self.member: dict[str, bytes] = {}
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(f"SELECT {MEMBER_COLUMNS} FROM entities")
            for row in cur:
                entity_id = row["id"]
                self.rev[entity_id] = row["rev"]
                self.place[entity_id] = layout.placement_of(row["lat"], row["lng"]).pairs()
                self.member[entity_id] = layout.member_of(row)


def verify_generation(hot: HotIndex, gen: str, conn: psycopg.Connection) -> list[Difference]:
    """Compare PostGIS with generation ``gen``: locations, revisions, sets, tops, hashes."""
    expected = Expected(conn)
    held = hot.client.hgetall(layout.loc_key(hot.prefix, gen))
    differences: list[Difference] = []
    live: dict[str, list[str]] = {}
    for entity_id, value in held.items():
        parts = value.split()
        if len(parts) > 1:
            live[entity_id] = parts
    for entity_id in sorted(set(live) - set(expected.rev)):
        differences.append(Difference(entity_id, "in Redis, not in PostGIS"))
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
    return differences


def group_keys(hot: HotIndex, gen: str) -> tuple[list[bytes], list[str]]:
    """Every cell set key and every t hash key of a generation (one SCAN).

    SCAN may return a key more than once (when the keyspace is rehashed
    meanwhile), so each is kept once: a set read twice would count its members
    twice.
    """
    sets: list[bytes] = []
    tops: list[str] = []
    keys = hot.raw.scan_iter(match=f"{hot.prefix}:{gen}:{{*}}:*", count=1000)
    for key in dict.fromkeys(keys):
        kind = key.rpartition(b"}:")[2]
        if kind.startswith(b"z:"):
            sets.append(key)
        elif kind.startswith(b"t"):
            tops.append(key.decode())
    return sets, tops


def verify_sets(
    hot: HotIndex, gen: str, live: Mapping[str, list[str]], expected: Expected
) -> list[Difference]:
    """Check every cell set's members against loc and PostGIS, and every set's top."""
    differences: list[Difference] = []
    seen: dict[str, int] = {}
    tops: dict[str, dict[str, float]] = {}
    set_keys, top_keys = group_keys(hot, gen)
    for first in range(0, len(set_keys), SETS_PER_ROUND):
        keys = set_keys[first : first + SETS_PER_ROUND]
        pipe = hot.raw.pipeline(transaction=False)
        for raw_key in keys:
            pipe.zrange(raw_key, 0, -1, withscores=True)
        for raw_key, members in zip(keys, pipe.execute(), strict=True):
            name = raw_key.decode()
            group, _, cell = name.rpartition("z:")
            if members:
                tops.setdefault(f"{group}t{cell[1]}", {})[cell] = max(s for _, s in members)
            for member, score in members:
                problem = member_problem(member, score, cell, live, expected)
                entity_id = layout.member_id(member)
                if problem:
                    differences.append(Difference(entity_id, f"{problem} {name}"))
                if problem != "stray member of":
                    seen[entity_id] = seen.get(entity_id, 0) + 1
    for entity_id in sorted(live):
        if entity_id in expected.rev and seen.get(entity_id, 0) != len(INDEX_RESOLUTIONS):
            differences.append(Difference(entity_id, "missing from a cell set"))
    differences.extend(verify_tops(hot, top_keys, tops))
    return differences


def member_problem(
    member: bytes, score: float, cell: str, live: Mapping[str, list[str]], expected: Expected
) -> str | None:
    """What is wrong with one member of the set of ``cell`` (None: nothing)."""
    entity_id = layout.member_id(member)
    where = live.get(entity_id)
    if where is None or cell not in where[2::2]:
        return "stray member of"
    want = expected.member.get(entity_id)
    if want is not None and member != want:
        return "stale member in"
    if score != layout.parse_member(member)["popularity"]:
        return f"popularity {score} in"
    return None


def verify_tops(
    hot: HotIndex, keys: list[str], tops: Mapping[str, Mapping[str, float]]
) -> list[Difference]:
    """Check each t hash: a field per non-empty set, holding its top; '*' above them all."""
    differences: list[Difference] = []
    for key in sorted(set(keys) | set(tops)):
        held = {field: float(value) for field, value in hot.client.hgetall(key).items()}
        bound = held.pop("*", None)
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


def verify_groups(
    hot: HotIndex, gen: str, live: Mapping[str, list[str]], expected: Expected
) -> list[Difference]:
    """Check that every live id has its member and display document in each of its groups."""
    differences: list[Difference] = []
    entries = sorted(live.items())
    for first in range(0, len(entries), 1000):
        pipe = hot.raw.pipeline(transaction=False)
        asked = []
        for entity_id, where in entries[first : first + 1000]:
            for tag in sorted(set(where[1::2])):
                pipe.hget(layout.member_key(hot.prefix, gen, tag), entity_id)
                pipe.hexists(layout.display_key(hot.prefix, gen, tag), entity_id)
                asked.append(entity_id)
        answers = pipe.execute()
        wrong = set()
        for i, entity_id in enumerate(asked):
            member, has_display = answers[2 * i], answers[2 * i + 1]
            want = expected.member.get(entity_id)
            if not has_display or member is None or (want is not None and member != want):
                wrong.add(entity_id)
        differences.extend(
            Difference(entity_id, "member or document missing or stale")
            for entity_id in sorted(wrong)
        )
    return differences
