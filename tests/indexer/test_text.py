"""The text rule: normalisation, words, matches, validation, and index terms for every match."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.text import (
    MAX_QUERY_CHARS,
    PREFIX_LENGTHS,
    entity_words,
    fold,
    index_terms,
    joined,
    lookup_terms,
    matches,
    matches_text,
    parse_query,
    query_problem,
    words,
)
from tests.factories import random_name, random_text_query


def hit(q: str, name: str, category: str = "", app_name: str = "") -> bool:
    """Whether ``q`` matches an entity of that name, category and mini-app name."""
    return matches(parse_query(q), entity_words(name, category, app_name))


@pytest.mark.parametrize(
    ("q", "name"),
    [
        ("caf", "Café Regatta"),  # accents
        ("CAFÉ", "cafe regatta"),  # case and accents, both ways
        ("regatta caf", "Café Regatta"),  # several words, any order
        ("kahvi", "Kahvila Sävy"),
        ("savy", "Kahvila Sävy"),
        ("k-market", "K-Market Kamppi"),  # hyphenated words run together
        ("kmark", "K-Market Kamppi"),
        ("k-mark", "K-Market Kamppi"),
        ("k market", "K-Market Kamppi"),  # and the entity's are words apart too
        ("k market", "K Market Lönnrotinkatu"),
        ("market", "K-Market Kamppi"),
        ("stockmann", "Stockmann"),
        ("mcdonalds", "McDonald's"),  # apostrophes are deleted
        ("mcdonald's", "McDonald’s"),
        ("hm", "H&M"),
        ("h&m", "H&M"),
        ("h m", "H & M"),
        ("ｋｍａｒｋｅｔ", "K-Market"),  # full-width Latin
        ("KMARKET", "ｋ－ｍａｒｋｅｔ"),
        ("strasse", "Straße"),  # case folding
        ("24", "Alepa 24h"),  # digits are word characters
        ("247", "Open 24/7"),
        ("스타벅스", "스타벅스 강남R점"),  # CJK substrings
        ("강남", "스타벅스 강남R점"),
        ("벅스", "스타벅스"),
        ("r점", "스타벅스 강남R점"),
        ("强", "小强理发"),
        ("理发", "小强理发"),
        ("ガスト", "ｶﾞｽﾄ"),  # half-width katakana, voicing kept
        ("cafe 스타", "Starbucks 스타벅스 Cafe"),  # mixed: each part by its own rule
        ("ø", "Ølbaren"),  # no decomposition: stays as it is
    ],
)
def test_matches(q: str, name: str) -> None:
    assert hit(q, name)


@pytest.mark.parametrize(
    ("q", "name"),
    [
        ("afe", "Café Regatta"),  # a prefix of a word, not any substring
        ("regattas", "Café Regatta"),
        ("kahvi tee", "Kahvila Sävy"),  # every word must match
        ("kmarketx", "K-Market"),
        ("k-market", "K Market Lönnrotinkatu"),  # the brand as written, not two words
        ("k-market", "S-Market Kasarmitori"),
        ("k-market", "Vanha Kauppahalli marketplace"),
        ("h&m", "H & M"),
        ("mcdonald s", "McDonald's"),  # "s" starts no word
        ("강남점", "스타벅스 강남R점"),  # not a substring of one CJK word
        ("小理", "小强理发"),
        ("カスト", "ガスト"),  # the voicing mark counts
        ("ol", "Ølbaren"),
        ("cafe 스타", "Cafe Regatta"),
        ("스타 cafe", "스타벅스"),
    ],
)
def test_does_not_match(q: str, name: str) -> None:
    assert not hit(q, name)


def test_category_and_mini_app_name_count() -> None:
    assert hit("pharm", "Yliopiston", "pharmacy")
    assert hit("yliop apteekki", "Yliopiston", "pharmacy", "Apteekki")
    assert not hit("yliop apteekki", "Yliopiston", "pharmacy")


def test_words() -> None:
    assert words("K-Market Kamppi") == ["k", "market", "kmarket", "kamppi"]
    assert words("스타벅스 강남R점") == ["스타벅스", "강남", "r", "점"]
    assert words("Café  Café!") == ["cafe"]
    assert words("— · —") == []
    assert fold("Ｃａｆé’s") == "cafes"
    assert entity_words("Kahvila Kahvila", "cafe", "Kahvila") == ["kahvila", "cafe", "kahvila"]


def test_validation() -> None:
    assert query_problem("a" * MAX_QUERY_CHARS) is None
    assert query_problem("a" * (MAX_QUERY_CHARS + 1)) is not None
    for empty in ("", "   ", "-'&!", "\u0301", "\u3000"):
        assert query_problem(empty) is not None, empty
    assert query_problem("7") is None
    assert parse_query("caf caf CAF") == parse_query("caf")


def test_stored_words_match_as_the_words_do() -> None:
    found = entity_words("K-Market", "grocery", "스타벅스")
    assert matches_text(parse_query("kmar 벅"), joined(found))
    assert not matches_text(parse_query("kmar"), "")


def test_lookup_terms() -> None:
    assert lookup_terms(parse_query("Caf 小强理")) == {"caf", "小", "强", "理"}
    assert lookup_terms(parse_query("强")) == {"强"}
    assert lookup_terms(parse_query("ca")) == set()
    assert lookup_terms(parse_query("kahvi heiskanen")) == {"kahvi", "heiskane"}
    assert lookup_terms(parse_query("kahvil")) == {"kahvi"}
    long = "a" * 20
    assert lookup_terms(parse_query(long)) == {"a" * max(PREFIX_LENGTHS)}
    assert index_terms(words(long)) == {"a" * k for k in PREFIX_LENGTHS}
    assert index_terms(words("Ab 스타")) == {"스", "타"}


def test_index_terms_find_every_match() -> None:
    """Every entity that matches a query is indexed under each of the query's lookup terms."""
    rng = random.Random(17)
    names = [random_name(rng) for _ in range(300)]
    matched = 0
    for _ in range(3000):
        q = random_text_query(rng, names)
        if query_problem(q):
            continue
        query = parse_query(q)
        for name in rng.sample(names, 20):
            found = entity_words(name, rng.choice(("", "café", "편의점")))
            if matches(query, found):
                matched += 1
                assert lookup_terms(query) <= index_terms(found), (q, name)
    assert matched > 500


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30), st.text(max_size=30))
def test_any_text(name: str, q: str) -> None:
    """Any text: a name matches the query of its own words; matches imply the terms."""
    found = entity_words(name)
    if query_problem(name) is None:
        assert matches(parse_query(name), found)
    if query_problem(q) is None and matches(parse_query(q), found):
        assert lookup_terms(parse_query(q)) <= index_terms(found)
    assert all(word and " " not in word for word in found)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=40))
def test_ascii_takes_a_short_way_to_the_same_words(piece: str) -> None:
    from indexer import text

    assert text.fold(piece) == text._fold_any(piece)
    for chunk in text.fold(piece).split():
        assert text._pieces(chunk) == text._pieces_any(chunk)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30))
def test_runs_split_where_the_script_changes(piece: str) -> None:
    from indexer import text

    runs = text._runs(piece)
    assert "".join(runs) == piece
    for run in runs:
        assert len({text.is_cjk(c) for c in run}) == 1
    for left, right in zip(runs, runs[1:], strict=False):
        assert text.is_cjk(left[-1]) != text.is_cjk(right[0])


def test_the_cjk_class_is_the_ranges() -> None:
    from indexer import text

    for code in range(0x110000):
        if 0xD800 <= code <= 0xDFFF:
            continue
        inside = any(low <= code <= high for low, high in text.CJK_RANGES)
        assert text.is_cjk(chr(code)) == inside, hex(code)
