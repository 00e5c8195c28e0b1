"""The hot index's Lua scripts, loaded with the layout's constants before them.

A script never spells a key name, an offset in a member or a kind's code: it
reads ``local NAME = value`` lines that :func:`header` writes from
:mod:`indexer.hot.layout`, put before its text (and before the helpers it
shares with others) by :func:`source`.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from indexer.hot import layout
from indexer.model import INDEX_RESOLUTIONS


def literal(value: object) -> str:
    """``value`` (text, a number, a list or a mapping of them) as a Lua literal."""
    if isinstance(value, str):
        return '"' + "".join(_char(char) for char in value) + '"'
    if isinstance(value, bool):
        raise TypeError("no booleans in the header")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{literal(k)}] = {literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "{" + ", ".join(literal(item) for item in value) + "}"
    raise TypeError(f"no Lua literal for {value!r}")


def _char(char: str) -> str:
    code = ord(char)
    if char in '"\\' or not 32 <= code < 127:
        return f"\\{code:03d}" if code < 256 else char
    return char


def constants() -> dict[str, object]:
    """The names the scripts read, with their values (offsets 1-based, as Lua counts)."""
    sep = layout.SEP
    field = f"[^{sep}]*"
    source_at = layout.MEMBER_FIELDS.index("source")
    return {
        "SEP": sep,
        # A list argument's items: runs of anything but the separator.
        "ITEM": f"[^{sep}]+",
        "HEAD_FORMAT": layout.MEMBER_HEAD.format,
        "POPULARITY_AT": layout.POPULARITY_AT + 1,
        "REV_AT": layout.REV_AT + 1,
        "USAGE_AT": layout.USAGE_AT + 1,
        "KIND_AT": layout.KIND_AT + 1,
        "ID_LENGTH_AT": layout.ID_LENGTH_AT + 1,
        "ID_AT": layout.MEMBER_HEAD.size + 1,
        # A member's text fields after its id, each captured.
        "REST": "^" + f"{sep}({field})" * (len(layout.MEMBER_FIELDS) - 1) + f"{sep}(.*)$",
        # The source field alone, after the id.
        "SOURCE_FIELD": "^" + f"{sep}{field}" * source_at + f"{sep}({field})",
        "KIND": {code: kind for code, kind in layout.KIND_OF_CODE.items()},
        "NO_GENERATION": layout.NO_GENERATION,
        "EARLY": layout.EARLY,
        "FLAT": layout.FLAT,
        "NOT_FLAT": layout.NOT_FLAT,
        "SPLIT": layout.SPLIT,
        "GEN_KEY": ":" + layout.GEN,
        "BUILDING_KEY": ":" + layout.BUILDING,
        "LOC": layout.LOC,
        "USAGE_BOUND": layout.USAGE_BOUND,
        "CELL_SET": layout.CELL_SET,
        "MEMBERS": layout.MEMBERS,
        "DOCUMENTS": layout.DOCUMENTS,
        "TEXT": layout.TEXT,
        "POSTINGS": layout.POSTINGS,
        "CARRIERS": layout.CARRIERS,
        "CARRIER": layout.CARRIER,
        "BRANCHES": layout.BRANCHES,
        "BRANCH_HASH": layout.BRANCH_HASH,
        "SMALL_BRANCHES": layout.SMALL_BRANCHES,
        "GEO_LAT_MAX": layout.GEO_LAT_MAX,
        "TEXT_END": layout.TEXT_END,
        "TEXT_PART": layout.TEXT_PART,
        "BOUND_FIELD": layout.BOUND_FIELD,
        # The t hash of each indexed resolution, coarse to fine (as places list cells).
        "TOPS": [layout.tops_field(res) for res in INDEX_RESOLUTIONS],
    }


@cache
def header() -> str:
    """The ``local NAME = value`` lines every script starts with."""
    return "".join(f"local {name} = {literal(value)}\n" for name, value in constants().items())


@cache
def source(
    package: str,
    name: str,
    helpers: tuple[str, ...] = (),
    more: tuple[tuple[str, object], ...] = (),
    rest: tuple[str, ...] = (),
) -> str:
    """Script ``name`` of ``package`` with the header and ``more`` (name, value)
    constants, then ``helpers`` (scripts of the same package), before it, and the
    scripts ``rest`` after it (one chunk: they see its locals)."""
    files = resources.files(package)
    lines = "".join(f"local {key} = {literal(value)}\n" for key, value in more)
    parts = [header(), lines, *(files.joinpath(helper).read_text() for helper in helpers)]
    parts += [files.joinpath(name).read_text(), *(files.joinpath(r).read_text() for r in rest)]
    return "".join(parts)
