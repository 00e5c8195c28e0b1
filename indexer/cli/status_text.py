"""``nearby status`` as text: the JSON shape of :func:`indexer.cli.status.status_json`, laid out.

Written from the same dict as ``--json``, so the two never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

NONE = "–"


def when(text: str | None) -> str:
    """An ISO 8601 time as ``2026-12-02 19:40:12 UTC``."""
    if text is None:
        return NONE
    return datetime.fromisoformat(text).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float | None) -> str:
    """``45 s``, ``2 min 11 s``, ``3 h 5 min``, ``4 d 2 h``."""
    if seconds is None:
        return NONE
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    for unit, size, sub_unit, sub_size in (("d", 86400, "h", 3600), ("h", 3600, "min", 60)):
        if whole >= size:
            return f"{whole // size} {unit} {whole % size // sub_size} {sub_unit}"
    if whole >= 60:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole} s"


def size(number: float | None) -> str:
    """Bytes as ``412 B``, ``12.3 MB``."""
    if number is None:
        return NONE
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if number >= scale:
            return f"{number / scale:.1f} {unit}"
    return f"{number:.0f} B"


def count(number: int | None) -> str:
    """``1,234``, or a dash when unknown."""
    return NONE if number is None else f"{number:,}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    """Columns padded to their widest cell (those in ``right`` aligned right)."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def reach_line(name: str, reach: Mapping[str, Any], detail: str = "") -> str:
    """``Redis    reachable · …`` or ``Redis    NOT REACHABLE: why``."""
    if not reach["reachable"]:
        return f"{name:<8} NOT REACHABLE: {reach['error']}"
    return f"{name:<8} reachable" + (f" · {detail}" if detail else "")


def generation_line(generation: Mapping[str, Any] | None) -> str:
    """The current generation, since when, and a build under way."""
    if generation is None:
        return "generation unknown (Redis is not reachable)"
    if generation["current"] is None:
        line = "no generation: Redis holds no index (queries answer from PostGIS)"
    elif generation["since"] is None:
        line = f"generation {generation['current']} · current since: not recorded"
    else:
        since, age = when(generation["since"]), duration(generation["age_s"])
        line = f"generation {generation['current']} · current since {since} ({age} ago)"
    if generation["building"] is None:
        return line + " · no build running"
    lease = duration(generation["building_lease_s"])
    return line + f" · building generation {generation['building']} (lease {lease} left)"


def entity_lines(shape: Mapping[str, Any]) -> list[str]:
    """Entities per kind and source on both sides, and the stale ones."""
    totals = {"kind": "all", "source": "", **shape["totals"]}
    rows = [
        [row["kind"], row["source"], *(count(row[name]) for name in ("postgis", "redis", "stale"))]
        for row in [*shape["entities"], totals]
    ]
    return table(["kind", "source", "PostGIS", "Redis", "stale"], rows, {2, 3, 4})


def source_lines(sources: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each source's last import or feed sync."""
    rows = []
    for source in sources:
        success, age = when(source["last_success"]), duration(source["last_success_age_s"])
        if source["last_success"] is not None:
            success += f" ({age} ago)"
        failure = NONE if source["last_failure"] is None else when(source["last_failure"])
        rows.append(
            [
                source["source"],
                source["via"],
                success,
                duration(source["lag_s"]),
                f"{source['runs_ok']}/{source['runs_failed']}",
                failure,
            ]
        )
    header = ["source", "via", "last success", "lag", "runs ok/failed", "last failure"]
    lines = table(header, rows, {3, 4})
    lines += [f"  {s['source']}: {s['last_error']}" for s in sources if s["last_error"]]
    return lines


def rebuild_line(rebuilds: Mapping[str, Any]) -> str:
    """Rebuild counts and the last one's time."""
    finished = rebuilds["finished"]
    parts = [f"{rebuilds['started']} started"] + [f"{n} {name}" for name, n in finished.items()]
    if rebuilds["last_seconds"] is not None:
        parts.append(f"last {duration(rebuilds['last_seconds'])} ({rebuilds['last_outcome']})")
    return "rebuilds: " + " · ".join(parts)


def usage_line(usage: Mapping[str, Any]) -> str:
    """``usage events: 1,200 waiting (oldest 0.4 s) · last round 0.6 s ago``."""
    waiting = f"usage events: {usage['events_waiting']:,} waiting"
    if usage["oldest_waiting_s"] is not None:
        waiting += f" (oldest {usage['oldest_waiting_s']:.1f} s)"
    last = usage["last_round_s"]
    return waiting + (" · no round yet" if last is None else f" · last round {last:.1f} s ago")


def render_text(shape: Mapping[str, Any]) -> str:
    """The whole screen."""
    memory = shape["redis"]
    detail = ""
    if memory["used_memory_bytes"] is not None:
        detail = f"{size(memory['used_memory_bytes'])} used"
        if memory["bytes_per_entity"] is not None:
            detail += f" · {size(memory['bytes_per_entity'])} per entity"
    lines = [
        f"nearby status at {when(shape['checked_at'])}",
        reach_line("PostGIS", shape["postgis"]),
        reach_line("Redis", memory, detail),
        generation_line(shape["generation"]),
        "",
        *entity_lines(shape),
    ]
    if shape["sources"]:
        lines += ["", *source_lines(shape["sources"])]
    if shape["usage"] is not None:
        lines += ["", usage_line(shape["usage"])]
    if shape["rebuilds"] is not None:
        lines += ["", rebuild_line(shape["rebuilds"])]
    return "\n".join(lines)
