"""What a nearby search answers: a page of hits and where it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from discovery.search.ranking import Hit


@dataclass(frozen=True, slots=True)
class SearchResult:
    """A page of hits, whether more follow, where it came from, and what it cost."""

    hits: tuple[Hit, ...]
    more: bool
    source: str
    stats: dict[str, Any] = field(default_factory=dict, compare=False)
