"""``nearby cache verify``'s check of the branches sets: each group's GEO set of one
mini-app holds exactly the ids of the group's entities of that mini-app (but those
nearer a pole than :data:`indexer.hot.layout.GEO_LAT_MAX`), each at its position.

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
#: Branches sets read per pipeline.
SETS_PER_ROUND = 200


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


def branches_keys(hot: HotClient, gen: str) -> list[str]:
    """Every branches set's key of a generation (each once: SCAN may repeat one)."""
    base = layout.generation_base(hot.prefix, gen)
    marker = ("}:" + layout.BRANCHES).encode()
    keys = hot.raw.scan_iter(match=f"{base}{{*}}:{layout.BRANCHES}*", count=1000)
    return sorted({key.decode() for key in keys if marker in key})


def branch_problems(
    hot: HotClient, gen: str, live: Mapping[str, list[str]], members: Mapping[str, bytes]
) -> list[tuple[str, str]]:
    """Check the branches sets: each holds exactly the ids of its group's entities of its
    mini-app, each at its position.  Returns each problem's id and what it is."""
    want = expected_branches(hot, gen, live, members)
    keys = sorted(set(branches_keys(hot, gen)) | set(want))
    differences: list[tuple[str, str]] = []
    for first in range(0, len(keys), SETS_PER_ROUND):
        names = keys[first : first + SETS_PER_ROUND]
        pipe = hot.client.pipeline(transaction=False)
        for name in names:
            pipe.zrange(name, 0, -1, withscores=True)
        for name, held in zip(names, pipe.execute(), strict=True):
            ids, wanted = dict(held), want.get(name, {})
            differences += [(i, f"stray id in {name}") for i in sorted(ids.keys() - wanted.keys())]
            differences += [(i, f"missing from {name}") for i in sorted(wanted.keys() - ids.keys())]
            differences += [
                (i, f"position {ids[i]:.0f} in {name}, PostGIS {score:.0f}")
                for i, score in sorted(wanted.items())
                if i in ids and ids[i] != score
            ]
    return differences
