"""The synthetic city: the same places whatever the popularity distribution."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from scripts.gen_city import POPULARITIES, city_entities

SEEN = datetime(2026, 1, 1, tzinfo=UTC)


def city(popularity: str) -> list:
    """A small city of the standard seed."""
    return list(city_entities(1, 2000, 100, 300, SEEN, popularity=popularity))


def test_every_distribution_has_the_same_places() -> None:
    cities = {name: city(name) for name in POPULARITIES}
    places = {name: [(e.id, e.lat, e.lng, e.mini_app) for e in c] for name, c in cities.items()}
    assert places["flat"] == places["zipf"] == places["zero"]
    assert city("zipf") == cities["zipf"]  # seeded: the same again


def test_flat_holds_nine_in_ten_within_a_factor_of_1_7() -> None:
    ranked = [e.popularity for e in city("flat") if e.kind != "bike"]
    inside = [p for p in ranked if 3000 <= p < 5100]
    assert len(inside) >= 0.85 * len(ranked)
    assert max(inside) / min(inside) <= 1.7


def test_zero_ties_every_one_and_zipf_does_not() -> None:
    assert {e.popularity for e in city("zero")} == {0.0}
    zipf = [e.popularity for e in city("zipf") if e.kind != "bike"]
    assert sum(p == 0 for p in zipf) > len(zipf) / 3  # P(p >= 1) = 1/2
    assert max(zipf) > 100


def test_an_unknown_distribution_is_refused() -> None:
    with pytest.raises(ValueError, match="popularity must be one of"):
        next(city_entities(1, 1, 0, 0, popularity="normal"))
