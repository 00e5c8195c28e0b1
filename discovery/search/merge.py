"""The exact page of a query from the answers of its hash-tag groups.

A query whose covering spans several groups asks each group (one script call,
one hash slot) for its own exact answer under the query's order
(:func:`discovery.search.ranking.sort_key`), and merges them here into the
answer :func:`discovery.search.ranking.brute_force` gives over all the groups:

- a top-k call (:class:`Ranked`): each group's best hits after the cursor, at
  most as many as asked.  Every hit of the global top k is in its group's top
  k, so the best k of the union are the answer;
- a group=mini_app call (:class:`Grouped`): each group's best hit and count of
  every mini-app with a candidate in it.  The counts add up, the best of the
  bests is the mini-app's best, and those are ranked and paged (cursor
  included) as :func:`~discovery.search.ranking.group_hits` and
  :func:`~discovery.search.ranking.page` do over every hit.

An entity moving from one group to another is written to its new group before
it is removed from the old one, so that a query reading the two at different
instants may meet it twice: the copy of the higher revision is kept.  Dropping
a copy from a group that returned as many hits as asked leaves that group's
list one short, and the page may then miss a hit that group did not send:
:attr:`Merged.retry` says so (ask again).  A group=mini_app answer carries
only bests and counts, so the groups count an entity marked as moving apart
(:attr:`Grouped.moving`, as hits) and the merge counts it once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

from discovery.search.query import NearbyQuery
from discovery.search.ranking import Hit, after, page, rank, sort_key
from indexer.rules import SortKey


class Ranked(NamedTuple):
    """One group's answer to a top-k call."""

    #: Its best hits after the query's cursor, best first.
    hits: Sequence[Hit]
    #: Each hit's revision.
    revisions: Sequence[int]
    #: It returned as many as it was asked for: it may hold more.
    full: bool


class Grouped(NamedTuple):
    """One group's answer to a group=mini_app call."""

    #: For every mini-app with a settled candidate in the group: (mini-app, its
    #: best hit there, that hit's revision, its count there).
    apps: Sequence[tuple[str, Hit, int, int]]
    #: The candidates marked as moving between groups, each (mini-app, hit,
    #: revision), left out of ``apps``: one entity may be met in both groups.
    moving: Sequence[tuple[str, Hit, int]] = ()


class Merged(NamedTuple):
    """The merged page: its hits, whether more follow, and whether to ask again."""

    hits: list[Hit]
    more: bool
    #: The page may be inexact (an entity met twice cost a full group a hit, or
    #: was counted twice): the caller asks the groups again.
    retry: bool = False


class Copy(NamedTuple):
    """The copy of an entity kept so far: its hit, its revision, the group it came from."""

    hit: Hit
    revision: int
    group: int


def newest(answers: Sequence[Ranked]) -> tuple[dict[str, Copy], set[int]]:
    """Each entity's copy of the highest revision (the first met on a tie), and the
    groups that had a copy dropped."""
    kept: dict[str, Copy] = {}
    losers: set[int] = set()
    for group, answer in enumerate(answers):
        for hit, revision in zip(answer.hits, answer.revisions, strict=True):
            held = kept.get(hit.id)
            if held is None or revision > held.revision:
                kept[hit.id] = Copy(hit, revision, group)
            if held is not None:
                losers.add(held.group if kept[hit.id].group == group else group)
    return kept, losers


def horizon(answers: Sequence[Ranked], sort: str) -> SortKey | None:
    """The key up to which the union is complete: the least last key of the groups
    that may hold more (None: every group sent all it had)."""
    lasts = [sort_key(answer.hits[-1], sort) for answer in answers if answer.full and answer.hits]
    return min(lasts, default=None)


def merge_top(answers: Sequence[Ranked], query: NearbyQuery) -> Merged:
    """The exact page (``query.limit`` hits after its cursor, and whether more follow)
    from each group's top ``limit + 1`` after the cursor."""
    kept, losers = newest(answers)
    ranked = [
        hit
        for hit in rank((copy.hit for copy in kept.values()), query.sort)
        if after(hit, query.after, query.sort)
    ]
    want = query.limit + 1
    retry = False
    if any(answers[group].full for group in losers):
        # Exact still when the hits known complete (up to the horizon) fill the page.
        bound = horizon(answers, query.sort)
        known = sum(
            1 for hit in ranked[:want] if bound is None or sort_key(hit, query.sort) <= bound
        )
        retry = known < want
    return Merged(ranked[: query.limit], len(ranked) > query.limit, retry)


def merge_grouped(answers: Sequence[Grouped], query: NearbyQuery) -> Merged:
    """The exact group=mini_app page from each group's best hit and count per mini-app,
    and its moving candidates (each entity counted once, at its highest revision).

    A settled entity met as the best of two groups was counted in both: ``retry``.
    """
    best: dict[str, Hit] = {}
    counts: dict[str, int] = {}
    seen: set[str] = set()
    retry = False
    for app, hit, count in settled(answers) + moving(answers):
        if not app:
            continue
        retry = retry or hit.id in seen
        seen.add(hit.id)
        counts[app] = counts.get(app, 0) + count
        held = best.get(app)
        if held is None or sort_key(hit, query.sort) < sort_key(held, query.sort):
            best[app] = hit
    grouped = rank((hit._replace(group_count=counts[app]) for app, hit in best.items()), query.sort)
    hits, more = page(grouped, query)
    return Merged(hits, more, retry)


def settled(answers: Sequence[Grouped]) -> list[tuple[str, Hit, int]]:
    """(mini-app, best hit, count) of every group's settled candidates."""
    return [(app, hit, count) for answer in answers for app, hit, _, count in answer.apps]


def moving(answers: Sequence[Grouped]) -> list[tuple[str, Hit, int]]:
    """(mini-app, hit, 1) of each moving entity, at its highest revision."""
    kept: dict[str, tuple[int, str, Hit]] = {}
    for answer in answers:
        for app, hit, revision in answer.moving:
            held = kept.get(hit.id)
            if held is None or revision > held[0]:
                kept[hit.id] = (revision, app, hit)
    return [(app, hit, 1) for _, app, hit in kept.values()]


def merge_all(answers: Iterable[Ranked]) -> list[Hit]:
    """Every candidate of groups that each sent all they had (e.g. for open_now, judged
    in Python), an entity met twice kept at its higher revision; unordered."""
    kept, _ = newest(list(answers))
    return [copy.hit for copy in kept.values()]
