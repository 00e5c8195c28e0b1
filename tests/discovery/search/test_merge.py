"""Merging the answers of hash-tag groups gives the brute force's page over all of them."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from discovery.search.merge import Grouped, Ranked, merge_all, merge_grouped, merge_top
from discovery.search.query import NearbyQuery
from discovery.search.ranking import Hit, after, group_hits, page, rank, sort_key

APPS = ("", "bikes", "shops", "fuel")
#: Few values, so that ties (equal scores, equal distances) are common.
SCORES = st.sampled_from([0.0, 0.25, 0.5, 0.5000000000000001, 1.0, 2.0])
DISTANCES = st.sampled_from([0.0, 3.0, 3.0000000000000004, 10.0, 250.0])


def hit_strategy(entity_id: str) -> st.SearchStrategy[Hit]:
    return st.builds(
        lambda score, distance, app: Hit(entity_id, distance, score, 0.0, {"mini_app": app}),
        SCORES,
        DISTANCES,
        st.sampled_from(APPS),
    )


@st.composite
def placed(
    draw: st.DrawFn, moves: bool
) -> tuple[list[list[tuple[Hit, int]]], list[tuple[Hit, int]]]:
    """Groups of (hit, revision), and with ``moves`` some entities met in a second group
    at another place and revision; also every copy, in order of making."""
    ids = draw(st.lists(st.sampled_from([f"e{i}" for i in range(40)] + ["é", "Z", "a"]),
                        unique=True, max_size=30))  # fmt: skip
    groups: list[list[tuple[Hit, int]]] = [[] for _ in range(draw(st.integers(1, 5)))]
    copies = []
    for entity_id in ids:
        where = draw(st.integers(0, len(groups) - 1))
        copy = (draw(hit_strategy(entity_id)), draw(st.integers(1, 5)))
        groups[where].append(copy)
        copies.append(copy)
        if moves and len(groups) > 1 and draw(st.booleans()):
            other = (where + draw(st.integers(1, len(groups) - 1))) % len(groups)
            moved = (draw(hit_strategy(entity_id)), copy[1] + draw(st.sampled_from([-1, 1])))
            groups[other].append(moved)
            copies.append(moved)
    return groups, copies


@st.composite
def queries(draw: st.DrawFn) -> NearbyQuery:
    sort = draw(st.sampled_from(["score", "distance"]))
    cursor = None
    if draw(st.booleans()):
        mark = draw(hit_strategy(draw(st.sampled_from(["e1", "e2", "e20", "a", "é"]))))
        cursor = sort_key(mark, sort)
    return NearbyQuery(lat=0.0, lng=0.0, sort=sort, limit=draw(st.integers(1, 8)), after=cursor)


def group_top(group: Sequence[tuple[Hit, int]], query: NearbyQuery) -> Ranked:
    """What one group's script answers: its best limit + 1 after the cursor."""
    want = query.limit + 1
    revisions = {hit.id: revision for hit, revision in group}
    ranked = [hit for hit in rank((hit for hit, _ in group), query.sort)
              if after(hit, query.after, query.sort)][:want]  # fmt: skip
    return Ranked(ranked, [revisions[hit.id] for hit in ranked], len(ranked) == want)


@settings(max_examples=400)
@given(placed(moves=False), queries())
def test_top_pages_are_the_brute_forces(placement, query: NearbyQuery) -> None:
    groups, copies = placement
    merged = merge_top([group_top(group, query) for group in groups], query)
    assert (merged.hits, merged.more) == page(rank((hit for hit, _ in copies), query.sort), query)
    assert not merged.retry


@settings(max_examples=600)
@given(placed(moves=True), queries())
def test_an_entity_met_twice_is_shown_once(placement, query: NearbyQuery) -> None:
    groups, _ = placement
    answers = [group_top(group, query) for group in groups]
    merged = merge_top(answers, query)
    assert len({hit.id for hit in merged.hits}) == len(merged.hits)
    # The copy a query shows is the newer one when its group sent it, else the
    # older one (its group read before the move reached it).
    sent: dict[str, list[tuple[int, Hit]]] = {}
    for answer in answers:
        for hit, revision in zip(answer.hits, answer.revisions, strict=True):
            sent.setdefault(hit.id, []).append((revision, hit))
    shown = {
        entity_id: max(found, key=lambda item: item[0])[1] for entity_id, found in sent.items()
    }
    every = {}
    for group in groups:
        for hit, revision in group:
            held = every.get(hit.id)
            if held is None or revision > held[0]:
                every[hit.id] = (revision, hit)
    world = [shown.get(entity_id, hit) for entity_id, (_, hit) in every.items()]
    lost_from_full = any(
        answer.full and any(shown[hit.id] is not hit for hit in answer.hits) for answer in answers
    )
    if not merged.retry:
        assert (merged.hits, merged.more) == page(rank(world, query.sort), query)
    else:
        assert lost_from_full


def group_answer(group: Sequence[tuple[Hit, int]], query: NearbyQuery) -> Grouped:
    """What one group's script answers for group=mini_app: each mini-app's best and count."""
    revisions = {hit.id: revision for hit, revision in group}
    bests = group_hits((hit for hit, _ in group), query)
    return Grouped([(best.doc["mini_app"], best._replace(group_count=None), revisions[best.id],
                     best.group_count) for best in bests])  # fmt: skip


@settings(max_examples=400)
@given(placed(moves=False), queries())
def test_group_pages_are_the_brute_forces(placement, query: NearbyQuery) -> None:
    groups, copies = placement
    merged = merge_grouped([group_answer(group, query) for group in groups], query)
    assert (merged.hits, merged.more) == page(group_hits((hit for hit, _ in copies), query), query)
    assert not merged.retry


def test_an_entity_best_in_two_groups_asks_again() -> None:
    query = NearbyQuery(lat=0.0, lng=0.0, group="mini_app")
    old = Hit("bike:1", 5.0, 1.0, 0.0, {"mini_app": "bikes"})
    new = old._replace(distance_m=7.0, score=0.9)
    merged = merge_grouped(
        [Grouped([("bikes", old, 3, 2)]), Grouped([("bikes", new, 4, 1)])], query
    )
    assert merged.retry
    assert [(hit.id, hit.group_count) for hit in merged.hits] == [("bike:1", 3)]


def test_a_copy_dropped_from_a_full_group_asks_again_only_when_it_matters() -> None:
    query = NearbyQuery(lat=0.0, lng=0.0, sort="distance", limit=1)
    moved_old = Hit("m", 1.0, 0.0, 0.0)
    moved_new = Hit("m", 9.0, 0.0, 0.0)
    # Group 0 sent m (old) and x, and holds more: without m its third could rank second.
    full = Ranked([moved_old, Hit("x", 2.0, 0.0, 0.0)], [1, 0], True)
    merged = merge_top([full, Ranked([moved_new], [2], False)], query)
    assert merged.retry and [hit.id for hit in merged.hits] == ["x"]
    # Another group fills the page below group 0's horizon: exact as it is.
    near = Ranked([Hit("n", 0.5, 0.0, 0.0), Hit("o", 0.7, 0.0, 0.0)], [0, 0], True)
    merged = merge_top([full, Ranked([moved_new], [2], False), near], query)
    assert not merged.retry and [hit.id for hit in merged.hits] == ["n"] and merged.more


def test_merge_all_keeps_each_entity_once_at_its_newest() -> None:
    old, new, other = Hit("m", 1.0, 0.0, 0.0), Hit("m", 9.0, 0.0, 0.0), Hit("o", 2.0, 0.0, 0.0)
    answers = [Ranked([old, other], [1, 1], False), Ranked([new], [2], False)]
    assert sorted(merge_all(answers)) == sorted([new, other])


@st.composite
def in_flight(draw: st.DrawFn) -> tuple[list[Grouped], list[Hit], NearbyQuery]:
    """Groups' group=mini_app answers at one instant of some moves: a moving entity is
    marked where it is (its old group, both, or its new group) and counted apart; and
    every entity once, at its newest copy."""
    (groups, _), query = draw(placed(moves=False)), draw(queries())
    world = [hit for group in groups for hit, _ in group]
    marked: list[list[tuple[str, Hit, int]]] = [[] for _ in groups]
    settled_groups: list[list[tuple[Hit, int]]] = []
    for where, group in enumerate(groups):
        settled_here = []
        for hit, revision in group:
            if len(groups) == 1 or not draw(st.booleans()):
                settled_here.append((hit, revision))
                continue
            to = (where + draw(st.integers(1, len(groups) - 1))) % len(groups)
            new = draw(hit_strategy(hit.id))._replace(doc=hit.doc)
            phase = draw(st.sampled_from(["leaving", "both", "arrived"]))
            if phase != "arrived":
                marked[where].append((hit.doc["mini_app"], hit, revision))
            if phase != "leaving":
                marked[to].append((hit.doc["mini_app"], new, revision + 1))
                world[world.index(hit)] = new
        settled_groups.append(settled_here)
    answers = [
        group_answer(group, query)._replace(moving=moving)
        for group, moving in zip(settled_groups, marked, strict=True)
    ]
    return answers, world, query


@settings(max_examples=400)
@given(in_flight())
def test_group_counts_hold_while_entities_move(case) -> None:
    answers, world, query = case
    merged = merge_grouped(answers, query)
    assert (merged.hits, merged.more) == page(group_hits(world, query), query)
    assert not merged.retry
