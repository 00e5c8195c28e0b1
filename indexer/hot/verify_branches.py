"""``nearby cache verify``'s check of the branches: each group's mini-app holds exactly
the ids of the group's entities of that mini-app (but those nearer a pole than
:data:`indexer.hot.layout.GEO_LAT_MAX`), as a field of the group's branches hash
(at most :data:`indexer.hot.layout.SMALL_BRANCHES` ids) or in a GEO set of its own,
each at its position there; never both.

A position is compared as Redis keeps it, its 52-bit geohash (the score of a GEO
set's member), made here from the PostGIS row as GEOADD makes it.
"""

from __future__ import annotations

from collections.abc import Mapping

from indexer.hot import encoding, layout
from indexer.hot.client import HotClient

#: Bits of each coordinate in a GEO set's score, and the longitudes it spans.
GEO_STEP = 26
GEO_LNG_MAX = 180.0


def geo_score(lng: float, lat: float) -> int:
    """The score GEOADD gives a position: the latitude's and the longitude's offsets in
    their ranges, 26 bits each (the top of a range one more), interleaved (the
    latitude's in the even bits)."""
    lat_max, lng_max = layout.GEO_LAT_MAX, GEO_LNG_MAX
    lat_bits = int((lat + lat_max) / (2 * lat_max) * (1 << GEO_STEP))
    lng_bits = int((lng + lng_max) / (2 * lng_max) * (1 << GEO_STEP))
    score = 0
    for bit in range(GEO_STEP + 1):  # an offset of 1 (the range's top) sets bit 26
        score |= ((lat_bits >> bit) & 1) << (2 * bit)
        score |= ((lng_bits >> bit) & 1) << (2 * bit + 1)
    return score


def expected_branches(
    hot: HotClient, gen: str, live: Mapping[str, list[str]], members: Mapping[str, bytes]
) -> dict[str, dict[str, float]]:
    """Each branches set's key and what it must hold: the ids of the entities of its
    mini-app placed in its group (``members``: PostGIS's member of each id), each
    with its position's score."""
    want: dict[str, dict[str, float]] = {}
    for entity_id, where in live.items():
        member = members.get(entity_id)
        if member is None:
            continue
        parsed = encoding.parse_member(member)
        slug, lat = parsed["mini_app"], parsed["lat"]
        if not slug or not layout.in_branches(lat):
            continue
        score = float(geo_score(parsed["lng"], lat))
        for tag in set(where[1::2]):
            want.setdefault(layout.branches_key(hot.prefix, gen, tag, slug), {})[entity_id] = score
    return want


def branches_keys(hot: HotClient, gen: str) -> tuple[list[str], list[str]]:
    """Every GEO set's key and every branches hash's key of a generation (each once:
    SCAN may repeat one)."""
    base = layout.generation_base(hot.prefix, gen)
    sets: set[str] = set()
    hashes: set[str] = set()
    for key in hot.raw.scan_iter(match=f"{base}{{*}}:[{layout.BRANCHES[0]}{layout.BRANCH_HASH}]*"):
        name = key.decode()
        last = name.rpartition("}:")[2]
        if last.startswith(layout.BRANCHES):
            sets.add(name)
        elif last == layout.BRANCH_HASH:
            hashes.add(name)
    return sorted(sets), sorted(hashes)


def held_branches(
    hot: HotClient, gen: str
) -> tuple[dict[str, dict[str, float | None]], list[tuple[str, str]]]:
    """What the branches hold, per GEO set's key (each id with its score; a hash's mini-app
    under the key its GEO set would have, with no scores), and the problems of the form
    (a mini-app both in a hash and in a GEO set, or in a hash with too many ids)."""
    set_keys, hash_keys = branches_keys(hot, gen)
    held: dict[str, dict[str, float | None]] = {}
    pipe = hot.client.pipeline(transaction=False)
    for key in set_keys:
        pipe.zrange(key, 0, -1, withscores=True)
    for key in hash_keys:
        pipe.hgetall(key)
    replies = pipe.execute()
    for key, members in zip(set_keys, replies[: len(set_keys)], strict=True):
        held[key] = dict(members)
    problems: list[tuple[str, str]] = []
    for key, fields in zip(hash_keys, replies[len(set_keys) :], strict=True):
        group = key[: -len(layout.BRANCH_HASH)]
        for slug, ids in fields.items():
            name = group + layout.BRANCHES + slug
            listed = ids.split(layout.SEP)
            if name in held:
                problems.append((slug, f"both in {key} and in {name}"))
            elif len(listed) > layout.SMALL_BRANCHES:
                problems.append((slug, f"{len(listed)} ids in {key}, a GEO set's many"))
            held[name] = dict.fromkeys(listed)
    return held, problems


def branch_problems(
    hot: HotClient, gen: str, live: Mapping[str, list[str]], members: Mapping[str, bytes]
) -> list[tuple[str, str]]:
    """Check the branches: each group's mini-app holds exactly the ids of its entities
    there, in the group's hash or in its GEO set (each id at its position there).
    Returns each problem's id and what it is."""
    want = expected_branches(hot, gen, live, members)
    held, differences = held_branches(hot, gen)
    for name in sorted(set(held) | set(want)):
        ids, wanted = held.get(name, {}), want.get(name, {})
        differences += [(i, f"stray id in {name}") for i in sorted(ids.keys() - wanted.keys())]
        differences += [(i, f"missing from {name}") for i in sorted(wanted.keys() - ids.keys())]
        differences += [
            (i, f"position {ids[i]:.0f} in {name}, PostGIS {score:.0f}")
            for i, score in sorted(wanted.items())
            if ids.get(i) is not None and ids[i] != score
        ]
    return differences
