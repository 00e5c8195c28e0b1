"""The text search rule: how text is normalised, which words it has, and when an entity matches.

Pure: no I/O.  Every path that answers ``q`` applies this rule, and the
PostGIS path spells it in SQL with :func:`match_sql` over the stored words.

**Normalisation** (:func:`fold`): apostrophes (``'`` ``’`` ``‘`` ``ʼ`` ``ʻ``
`````` ``´`` and the full-width ``＇``) are deleted, so that "McDonald's"
reads "mcdonalds"; then Unicode NFKC (full-width Latin becomes ASCII,
half-width katakana full-width), case folding (``ß`` becomes ``ss``), NFKC
again, and accents removed: NFD, every non-spacing mark dropped but the kana
voicing marks (so "が" stays "が" while "é" becomes "e"), then NFC.

**Words** (:func:`words`): in the normalised text, a word character is a
letter, a digit or a mark (Unicode L, N, M); everything else separates words.
A run of word characters is split further where it passes between CJK
(Han, Hiragana, Katakana, Hangul) and other characters, so every word is
either all CJK or has no CJK at all ("강남r점" is "강남", "r", "점").  A
whitespace-free chunk of several non-CJK words joined by punctuation also
gives its words run together: "K-Market" has the words "k", "market" and
"kmarket"; "H&M" has "h", "m" and "hm".

**An entity's text** is the words of its name, then of its category, then of
its mini-app's catalog name (:func:`entity_words`); stored as one string, the
words joined by single spaces (:func:`joined`), and each part on its own.

**A query** (:func:`parse_query`) is normalised and split into words the same
way, but a whitespace-free chunk of several non-CJK words joined by
punctuation gives only its words run together ("k-market" is "kmarket", as
the brand is meant, so it does not match "S-Market Kasarmitori"; "k market"
does): its non-CJK words are *prefix* terms, its CJK words *substring* terms.
**An entity matches** when every prefix term is a prefix of some non-CJK word
of its text and every substring term occurs within some CJK word of its text
(:func:`matches`).  So "caf"
and "regatta caf" match "Café Regatta"; "kmark", "k-mark" and "k market"
match "K-Market"; "스타벅스" matches "스타벅스 강남R점"; "强" matches "小强理发";
"cafe 스타" needs both.  A ``q`` of more than :data:`MAX_QUERY_CHARS`
characters, or with no word after normalisation, is refused
(:func:`query_problem`).

**Index terms** (:func:`index_terms`, :func:`lookup_terms`): the hot index
keeps, per term, the ids of the entities indexed under it.  An entity's terms
are the prefixes of :data:`PREFIX_LENGTHS` characters of every non-CJK word
(a word shorter than the shortest has none) and every character of its CJK
words.  A query's lookup terms are, for each prefix term, its prefix of the
longest of those lengths it reaches, and each character of its substring
terms.  Whenever an entity matches a query, all of the query's lookup terms
are among the entity's index terms, so the ids under any one of them hold
every match; the rule then checks the candidates exactly.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

#: Characters a ``q`` may have at most (code points, as given).
MAX_QUERY_CHARS = 100
#: The lengths (in characters) of the prefixes of a word that are index terms.
PREFIX_LENGTHS = (3, 5, 8)
#: Apostrophes: deleted, not separators ("McDonald's" is one word).
APOSTROPHES = "'\u2018\u2019\u02bc\u02bb\u0060\u00b4\uff07"
_DELETE = dict.fromkeys(map(ord, APOSTROPHES))
#: Non-spacing marks kept: the kana voicing marks (the voiced and the semi-voiced).
KEPT_MARKS = frozenset("\u3099\u309a")

#: Code point ranges of the CJK scripts: Han, Hiragana, Katakana and Hangul.
CJK_RANGES = (
    (0x1100, 0x11FF),  # Hangul Jamo
    (0x2E80, 0x2FDF),  # CJK and Kangxi radicals
    (0x3005, 0x3007),  # 々 〆 〇
    (0x3021, 0x3029),  # Hangzhou numerals
    (0x3038, 0x303C),
    (0x3041, 0x30FF),  # Hiragana, Katakana (the voicing marks and ー included)
    (0x3131, 0x318E),  # Hangul compatibility Jamo
    (0x31F0, 0x31FF),  # Katakana phonetic extensions
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xA960, 0xA97F),  # Hangul Jamo extended A
    (0xAC00, 0xD7FF),  # Hangul syllables, Jamo extended B
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF66, 0xFF9F),  # half-width Katakana (NFKC makes them full-width)
    (0x1B000, 0x1B16F),  # kana supplement and extensions
    (0x20000, 0x3FFFF),  # CJK extensions B and after
)


_CJK_CLASS = "".join(f"{chr(low)}-{chr(high)}" for low, high in CJK_RANGES)
#: A run of CJK characters, or of others.
_RUN = re.compile(f"[{_CJK_CLASS}]+|[^{_CJK_CLASS}]+")
_ANY_CJK = re.compile(f"[{_CJK_CLASS}]")


def is_cjk(char: str) -> bool:
    """Whether a character is Han, Hiragana, Katakana or Hangul."""
    return _ANY_CJK.match(char) is not None


def fold(text: str) -> str:
    """The normalised text: apostrophes deleted, NFKC, case-folded, accents removed."""
    if text.isascii():
        # What every step makes of ASCII (no mark, no compatibility form in it).
        return text.translate(_DELETE).lower()
    return _fold_any(text)


def _fold_any(text: str) -> str:
    """:func:`fold` of any text, step by step."""
    text = unicodedata.normalize("NFKC", text.translate(_DELETE)).casefold()
    decomposed = unicodedata.normalize("NFD", unicodedata.normalize("NFKC", text))
    kept = "".join(
        c for c in decomposed if c in KEPT_MARKS or unicodedata.category(c) != "Mn"
    ).translate(_DELETE)
    return unicodedata.normalize("NFC", kept)


#: The word characters of ASCII (letters and digits: categories L and N).
_ASCII_PIECE = re.compile("[A-Za-z0-9]+")


def _is_word_char(char: str) -> bool:
    return unicodedata.category(char)[0] in "LNM"


def _runs(piece: str) -> list[str]:
    """A run of word characters split where it passes between CJK and other characters."""
    return _RUN.findall(piece)


def _pieces(chunk: str) -> list[str]:
    """The runs of word characters of a chunk (text without whitespace)."""
    if chunk.isascii():
        return _ASCII_PIECE.findall(chunk)
    return _pieces_any(chunk)


def _pieces_any(chunk: str) -> list[str]:
    """:func:`_pieces` of any chunk, character by character."""
    pieces, current = [], []
    for char in chunk:
        if _is_word_char(char):
            current.append(char)
        elif current:
            pieces.append("".join(current))
            current = []
    if current:
        pieces.append("".join(current))
    return pieces


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def words(text: str) -> list[str]:
    """The words of one text, in order, each once (see the module's docstring)."""
    found: list[str] = []
    for chunk in fold(text).split():
        pieces = _pieces(chunk)
        for piece in pieces:
            found.extend(_runs(piece))
        if len(pieces) > 1 and not any(_ANY_CJK.search(piece) for piece in pieces):
            found.append("".join(pieces))
    return _unique(found)


def entity_words(name: str, category: str = "", app_name: str = "") -> list[str]:
    """An entity's words: its name's, its category's, then its mini-app's name's."""
    return [*words(name), *words(category), *words(app_name)]


def joined(found: Iterable[str]) -> str:
    """Words as they are stored: joined by single spaces."""
    return " ".join(found)


@dataclass(frozen=True, slots=True)
class TextQuery:
    """A parsed ``q``: its prefix terms (non-CJK words) and substring terms (CJK words)."""

    prefixes: tuple[str, ...]
    substrings: tuple[str, ...]

    def identity(self) -> str:
        """What the query asks, as text (for cursors' fingerprints)."""
        return "\x1e".join(self.prefixes) + "\x1d" + "\x1e".join(self.substrings)


def query_words(text: str) -> list[str]:
    """A query's words: as :func:`words`, but a chunk of several non-CJK words joined by
    punctuation gives only those words run together."""
    found: list[str] = []
    for chunk in fold(text).split():
        pieces = _pieces(chunk)
        if len(pieces) > 1 and not any(_ANY_CJK.search(piece) for piece in pieces):
            found.append("".join(pieces))
        else:
            found.extend(run for piece in pieces for run in _runs(piece))
    return _unique(found)


def query_problem(text: str) -> str | None:
    """Why ``text`` cannot be a ``q`` (too long, or no word once normalised); None if it can."""
    if len(text) > MAX_QUERY_CHARS:
        return f"is longer than {MAX_QUERY_CHARS} characters"
    if not query_words(text):
        return "has no letter or digit"
    return None


def parse_query(text: str) -> TextQuery:
    """The terms of a ``q`` (check :func:`query_problem` first: none may come back)."""
    found = query_words(text)
    return TextQuery(
        prefixes=tuple(sorted(w for w in found if not is_cjk(w[0]))),
        substrings=tuple(sorted(w for w in found if is_cjk(w[0]))),
    )


def matches(query: TextQuery, found: Iterable[str]) -> bool:
    """Whether an entity with these words (:func:`entity_words`) matches ``query``."""
    alpha: list[str] = []
    cjk: list[str] = []
    for word in found:
        (cjk if is_cjk(word[0]) else alpha).append(word)
    return all(any(w.startswith(p) for w in alpha) for p in query.prefixes) and all(
        any(s in w for w in cjk) for s in query.substrings
    )


def matches_text(query: TextQuery, stored: str) -> bool:
    """:func:`matches` over words as stored (:func:`joined`)."""
    return matches(query, stored.split(" ") if stored else [])


# -- index terms ------------------------------------------------------------------


def index_terms(found: Iterable[str]) -> set[str]:
    """The terms an index holds an entity with these words under."""
    terms: set[str] = set()
    for word in found:
        if is_cjk(word[0]):
            terms.update(word)
        else:
            terms.update(word[:k] for k in PREFIX_LENGTHS if len(word) >= k)
    return terms


def lookup_terms(query: TextQuery) -> set[str]:
    """The terms every entity that matches ``query`` is indexed under (none for a
    prefix term shorter than every indexed length)."""
    terms: set[str] = set()
    for prefix in query.prefixes:
        reached = [k for k in PREFIX_LENGTHS if len(prefix) >= k]
        if reached:
            terms.add(prefix[: reached[-1]])
    for sub in query.substrings:
        terms.update(sub)
    return terms


# -- the same rule in SQL -----------------------------------------------------------


def _like_escaped(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def match_sql(query: TextQuery, column: str) -> tuple[str, dict[str, str]]:
    """:func:`matches_text` over a column of stored words, as ``AND`` clauses, and their
    parameters.

    Words are joined by single spaces and hold none, so a word starts with ``p``
    exactly when ``' ' || column`` holds ``' ' || p``; a CJK term lies within
    a CJK word wherever it occurs (no word mixes CJK and other characters).
    Every clause reads :func:`spaced` ``column``, which a trigram index can be on.
    """
    clauses, params = [], {}
    for i, prefix in enumerate(query.prefixes):
        params[f"text_p{i}"] = "% " + _like_escaped(prefix) + "%"
        clauses.append(f"AND {spaced(column)} LIKE %(text_p{i})s")
    for i, sub in enumerate(query.substrings):
        params[f"text_s{i}"] = "%" + _like_escaped(sub) + "%"
        clauses.append(f"AND {spaced(column)} LIKE %(text_s{i})s")
    return " ".join(clauses), params


def spaced(column: str) -> str:
    """A column of stored words with a space before them, as :func:`match_sql` reads it."""
    return f"(' ' || {column})"


def stored_text_sql(row: str) -> str:
    """The stored words of an entity row ``row`` in SQL: its name's and its category's
    (columns ``name_words`` and ``category_words``), then its mini-app's
    (``mini_apps.words`` of the slug in its column ``mini_app``)."""
    return (
        f"concat_ws(' ', NULLIF({row}.name_words, ''), NULLIF({row}.category_words, ''), "
        f"(SELECT NULLIF(m.words, '') FROM mini_apps m WHERE m.slug = {row}.mini_app))"
    )
