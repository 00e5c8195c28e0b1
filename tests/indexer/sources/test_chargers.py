"""Charger documents by format: the formats, and each id kept once in feed order."""

from __future__ import annotations

import pytest

from indexer.sources.chargers import chargers_to_entities
from indexer.sources.rejects import ChargerFeedError


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ChargerFeedError, match="unknown format 'csv'"):
        chargers_to_entities([], "csv")
