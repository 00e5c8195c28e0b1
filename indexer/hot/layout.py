"""The hot index's Redis layout: key names and the constants of what is stored.

Every key starts with the deployment's prefix and a generation number, so that a
rebuild can fill a fresh generation while queries read the current one, then
switch with one SET.  Keys of one coarse parent cell (resolution ``TAG_RES``)
share a hash tag, so that on Redis Cluster they live on one slot::

    ({prefix} below is the deployment's prefix followed by the layout, e.g. nearby:l3.r5.7.9.11)
    {prefix}:gen                     current generation (absent: no hot index)
    {prefix}:building                generation being rebuilt, if any
    {prefix}:gens                    the counter that numbers generations
    {prefix}:heal                    lease of the API process that started a healing
                                     rebuild (discovery/search/healing.py)
    {prefix}:{gen}:loc               HASH id -> "rev tag5 c5 .. tag11 c11" ("rev": deleted)
    {prefix}:{gen}:ub                the generation's usage bound factor (absent: 1)
    {prefix}:{gen}:{{tag}}:z:{cell}  ZSET of members by popularity bound, one per cell of
                                     INDEX_RESOLUTIONS
    {prefix}:{gen}:{{tag}}:t{r}      HASH cell -> the top popularity bound of its set, for
                                     the group's cells of resolution r (:func:`tops_field`:
                                     t5, t7, t9, tb); field "*": at least every top
    {prefix}:{gen}:{{tag}}:m         HASH id -> the entity's member (what writers remove)
    {prefix}:{gen}:{{tag}}:d         HASH id -> display JSON (what a result shows)
    {prefix}:{gen}:{{tag}}:x         HASH id -> text entry: the entity's words (its
                                     search text) by part, its name, its index terms
                                     (indexer/text.py; encoding.text_entry)
    {prefix}:{gen}:{{tag}}:w:{term}  the ids of the group's entities indexed under the
                                     term (the text index's posting sets): a ZSET by
                                     popularity bound for a name's term, a SET for a
                                     carrier term (a category, a catalog mini-app)
    {prefix}:{gen}:{{tag}}:k         HASH carrier key -> its words (the group's carriers)
    {prefix}:{gen}:{{tag}}:a         HASH slug -> the ids of the group's entities of a
                                     mini-app that has few of them there (its branches)
    {prefix}:{gen}:{{tag}}:b:{slug}  GEO set of the ids of the group's entities of a
                                     mini-app that has more, at their positions

A set's member is the entity itself, as the search reads it: a packed head
(:data:`MEMBER_HEAD`), the id, then the fields that filters read
(:data:`MEMBER_FIELDS`), each after :data:`SEP`.  A search ranks a cell's
members from the set alone, in the order of their popularity bound, and bounds a
cell it has not read by its top.

The popularity an entity ranks by changes as time passes: ``listed + mass · f``,
``f = 2^(−(t − T0)/h)`` falling with the query's time ``t`` (indexer/rules.py).
A set's score is therefore not it but a bound of it, :func:`bound_of`: the
listed popularity plus ``mass · F``, where ``F`` is the factor of a time before
the generation was made (:data:`USAGE_BOUND_LEAD_S` before), kept in the
generation's ``ub`` key.  Every query at a later time gets a popularity at most
that; the search computes the exact one from the member's head, and a query
whose factor is above ``F`` is answered from PostGIS.  Without usage the bound
is the listed popularity itself.  The bound loosens as time passes (by
``2^(Δt/h)`` on the usage part): a rebuild makes it tight again.
:mod:`indexer.hot.encoding` writes and reads members, documents and
placements; the Lua scripts get these names and constants from the header
:mod:`indexer.hot.lua` puts before them.

An entity belongs to the cell that contains it at each indexed resolution
(``latlng_to_cell``, not the parent of its base cell: H3 children overhang
their parent, and a search bounds distances by each cell's own outline).  Its
cells usually share one group; when they do not, its member and document are
kept in each group its cells belong to, so that a cell's members are read from
its own group.  Its text entry and its ids in the posting sets are kept in
each of those groups too: a query with ``q`` either reads the ids under its
rarest term in the groups of its covering (each id once) or reads the cells as
without ``q`` and checks each candidate's text entry (discovery/search/nearby.lua).
"""

from __future__ import annotations

import struct

import h3
import h3.api.basic_int as h3i

from indexer.model import INDEX_RESOLUTIONS, KINDS, TAG_RES

#: Separates the text fields of a member (never present in slugs or ids we keep),
#: and the items of the scripts' list arguments.
SEP = "\x1f"
#: The member's head, as the scripts read it with one struct.unpack: lat, lng,
#: the listed popularity, ln(1 + it) and cos(lat) (so that a search computes
#: neither per member: each C call costs a Lua script dearly), the entity's
#: revision (what tells a search whether a display document it keeps is the
#: current one), its usage mass, the kind's code and the id's length in bytes.
MEMBER_HEAD = struct.Struct("<dddddddBH")
#: Byte offsets in the head of the popularity, the revision, the usage mass, the
#: kind's code and the id's length.
POPULARITY_AT = 16
REV_AT = 40
USAGE_AT = 48
KIND_AT = 56
ID_LENGTH_AT = 57
#: How long before a generation is made the time of its usage bound lies: queries
#: of clocks that far behind still read the hot index.
USAGE_BOUND_LEAD_S = 86400.0
#: The text fields after the id, in order, each after a separator.
MEMBER_FIELDS = ("available", "seen_at", "source", "mini_app", "category")
#: A kind's code in a member's head: its first letter.
KIND_CODES = {kind: ord(kind[0]) for kind in KINDS}
assert len(set(KIND_CODES.values())) == len(KINDS)
KIND_OF_CODE = {code: kind for kind, code in KIND_CODES.items()}

#: The fields of a display document, in order (then updated_at and seen_at).
DISPLAY_FIELDS = (
    "id",
    "kind",
    "name",
    "mini_app",
    "category",
    "lat",
    "lng",
    "popularity",
    "available",
    "capacity",
    "opening_hours",
    "tz",
    "source",
    "attrs",
)

#: What Redis holds no generation of the index is answered with: the reply of
#: apply.lua, the first item of the search scripts' replies; in Python it is
#: :class:`indexer.hot.client.NoGeneration`.
NO_GENERATION = "nogen"
#: What the search script answers a query whose usage factor is above its
#: generation's bound factor (a clock far behind): PostGIS answers it.
EARLY = "early"
#: What it answers a top by score or popularity whose groups hold no popularity at
#: all (their orders are then the distance's: the caller asks a top by distance),
#: and such a top by distance whose groups no longer are so.
FLAT = "flat"
NOT_FLAT = "notflat"
#: What it answers completions of names, categories and mini-apps in one call when
#: the names must be read from the cells (the caller then asks for each apart).
SPLIT = "split"

#: The layout's version and indexed resolutions, named inside every key: an index
#: in another layout is invisible to this code, which then answers from PostGIS
#: until ``nearby cache rebuild`` builds one in this layout.
LAYOUT_VERSION = 7
LAYOUT = f"l{LAYOUT_VERSION}.r" + ".".join(str(res) for res in INDEX_RESOLUTIONS)

#: The last words of the keys, after the prefix (the first three) or a group's base.
GEN = "gen"
BUILDING = "building"
COUNTER = "gens"
LOC = "loc"
USAGE_BOUND = "ub"
CELL_SET = "z:"
MEMBERS = "m"
DOCUMENTS = "d"
TEXT = "x"
POSTINGS = "w:"
#: Each group's hash of the categories and mini-apps its entities carry (their
#: carrier terms' keys, without CARRIER): each one's words, as a text entry's part.
CARRIERS = "k"
#: Starts a carrier term: the entities of one category (``c`` and the category) or
#: one mini-app of the catalog (``a`` and its slug) share the posting set of the
#: term, instead of one set per index term of the category's or app's words.
CARRIER = "\x1d"
#: Ends the words of a text entry, then its name; its index terms follow.
TEXT_END = "\x1e"
#: Ends each part of a text entry's words (the name's, the category's, the mini-app's).
TEXT_PART = "\x1d"
#: Where the nearest branches of a few mini-apps are found without reading the cells:
#: a group's mini-app of at most SMALL_BRANCHES entities there is a field of the
#: group's BRANCH_HASH (its ids joined by SEP); one of more, a GEO set of its ids
#: (BRANCHES, then the slug), which stays one until it is empty.  (Most mini-apps
#: are one shop's: a key each would cost some 250 bytes and a key's creation.)
BRANCH_HASH = "a"
SMALL_BRANCHES = 8
BRANCHES = "b:"
#: The latitudes a GEO set can hold (Redis's, Web Mercator's): an entity nearer a
#: pole is in no branches set, and a search whose circle reaches that far reads the cells.
GEO_LAT_MAX = 85.05112878
#: The field of a t hash that bounds every top it holds.
BOUND_FIELD = "*"


def catalog_key(prefix: str) -> str:
    """The key that carries the mini-app catalog, ``{prefix}:apps`` under the deployment's
    own prefix: no layout's, so that a change of layout keeps it (``cache prune`` too)."""
    return f"{prefix}:apps"


def layout_prefix(prefix: str) -> str:
    """The deployment's prefix with the layout named: ``nearby`` -> ``nearby:l3.r5.7.9.11``."""
    return f"{prefix}:{LAYOUT}"


def gen_key(prefix: str) -> str:
    """The key that holds the current generation number."""
    return f"{prefix}:{GEN}"


def building_key(prefix: str) -> str:
    """The key that holds the generation a rebuild is filling."""
    return f"{prefix}:{BUILDING}"


def counter_key(prefix: str) -> str:
    """The key that hands out generation numbers."""
    return f"{prefix}:{COUNTER}"


def generation_base(prefix: str, gen: str) -> str:
    """The common start of every key of one generation."""
    return f"{prefix}:{gen}:"


def loc_key(prefix: str, gen: str) -> str:
    """Where each id of a generation sits, with its revision."""
    return generation_base(prefix, gen) + LOC


def usage_bound_key(prefix: str, gen: str) -> str:
    """The key of a generation's usage bound factor (see the module)."""
    return generation_base(prefix, gen) + USAGE_BOUND


def bound_of(listed: float, mass: float, factor: float) -> float:
    """A member's score: its popularity at any time whose usage factor is at most
    ``factor`` is at most this (:func:`indexer.rules.popularity_now` at ``factor``)."""
    return listed + mass * factor if mass else listed


def group_of(base: str, tag: str) -> str:
    """The common start of every key of one hash-tag group, after a generation's base."""
    return f"{base}{{{tag}}}:"


def group_base(prefix: str, gen: str, tag: str) -> str:
    """The common start of every key of one hash-tag group."""
    return group_of(generation_base(prefix, gen), tag)


def cell_key(prefix: str, gen: str, cell: str) -> str:
    """The popularity-ordered set of one cell (hex id) at any indexed resolution."""
    return group_base(prefix, gen, tag_of(cell)) + CELL_SET + cell


def set_pattern(prefix: str, gen: str, res: int) -> str:
    """A SCAN pattern matching the cell sets of one resolution of a generation.

    An H3 cell's hex id starts with 8 (the cell mode) and its resolution's hex digit.
    """
    return f"{generation_base(prefix, gen)}{{*}}:{CELL_SET}8{res:x}*"


def member_key(prefix: str, gen: str, tag: str) -> str:
    """The hash of members (id -> member) of one group."""
    return group_base(prefix, gen, tag) + MEMBERS


def tops_field(res: int) -> str:
    """The last word of the t hash of resolution ``res``: t and its hex digit."""
    return f"t{res:x}"


def tops_key(prefix: str, gen: str, tag: str, res: int) -> str:
    """The hash of top popularities of one group's cells at resolution ``res``."""
    return group_base(prefix, gen, tag) + tops_field(res)


def display_key(prefix: str, gen: str, tag: str) -> str:
    """The hash of display documents of one group."""
    return group_base(prefix, gen, tag) + DOCUMENTS


def text_key(prefix: str, gen: str, tag: str) -> str:
    """The hash of text entries of one group."""
    return group_base(prefix, gen, tag) + TEXT


def posting_key(prefix: str, gen: str, tag: str, term: str) -> str:
    """The set of the ids of one group's entities indexed under ``term``."""
    return group_base(prefix, gen, tag) + POSTINGS + term


def carriers_key(prefix: str, gen: str, tag: str) -> str:
    """The hash of the categories and mini-apps one group's entities carry."""
    return group_base(prefix, gen, tag) + CARRIERS


def branches_key(prefix: str, gen: str, tag: str, slug: str) -> str:
    """The GEO set of one group's entities of the mini-app ``slug`` (when it has many)."""
    return group_base(prefix, gen, tag) + BRANCHES + slug


def branch_hash_key(prefix: str, gen: str, tag: str) -> str:
    """The hash of the group's mini-apps that have few entities there (slug -> ids)."""
    return group_base(prefix, gen, tag) + BRANCH_HASH


def in_branches(lat: float) -> bool:
    """Whether an entity at latitude ``lat`` with a mini-app is in its branches sets."""
    return -GEO_LAT_MAX <= lat <= GEO_LAT_MAX


def tag_of_cell(cell: int) -> str:
    """The hash tag (hex id of the ``TAG_RES`` parent) of a cell given as an integer."""
    return format(h3i.cell_to_parent(cell, TAG_RES), "x")


def tag_of(cell: str) -> str:
    """The hash tag of a cell given as hex."""
    return tag_of_cell(h3.str_to_int(cell))
