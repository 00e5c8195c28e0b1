"""Hits in order, and cursors."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from discovery.search.query import NearbyQuery
from discovery.search.ranking import Hit, decode_cursor, encode_cursor, rank, sort_key

KEY = b"a key of this deployment"


def test_ties_break_by_distance_then_id_bytes() -> None:
    hits = [
        Hit("b", 5.0, 1.0, 0.0),
        Hit("a", 6.0, 1.0, 0.0),
        Hit("Z", 5.0, 1.0, 0.0),
        Hit("é", 1.0, 0.5, 0.0),
    ]
    assert [h.id for h in rank(hits, "score")] == ["Z", "b", "a", "é"]
    assert [h.id for h in rank(hits, "distance")] == ["é", "Z", "b", "a"]


@given(score=st.floats(0, 1e6), distance=st.floats(0, 5e4), entity_id=st.text(min_size=1))
def test_cursor_round_trip(score, distance, entity_id) -> None:
    query = NearbyQuery(lat=1.0, lng=2.0)
    hit = Hit(entity_id, distance, score, 0.0)
    assert decode_cursor(encode_cursor(hit, query, KEY), query, KEY) == (
        sort_key(hit, "score"),
        0.0,
    )


def test_cursor_of_another_query_fails() -> None:
    cursor = encode_cursor(Hit("x", 1.0, 1.0, 0.0), NearbyQuery(lat=1.0, lng=2.0), KEY)
    with pytest.raises(ValueError, match="another query"):
        decode_cursor(cursor, NearbyQuery(lat=1.0, lng=2.0, radius_m=50.0), KEY)


def flipped(cursor: str, bit: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    raw[bit // 8] ^= 1 << (bit % 8)
    return base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")


def test_only_a_cursor_signed_with_the_key_is_read() -> None:
    query = NearbyQuery(lat=1.0, lng=2.0)
    cursor = encode_cursor(Hit("shop:12", 3.0, 0.5, 0.0), query, KEY)
    raw_bits = len(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))) * 8
    refused = [
        cursor[:-1],  # truncated: the last characters of the signature
        cursor[:-22],  # truncated: the signature gone, the id cut short
        encode_cursor(Hit("shop:12", 3.0, 0.5, 0.0), query, b"another deployment"),
        *(flipped(cursor, bit) for bit in range(raw_bits)),
    ]
    for text in refused:
        with pytest.raises(ValueError, match="^cursor is not valid$"):
            decode_cursor(text, query, KEY)
