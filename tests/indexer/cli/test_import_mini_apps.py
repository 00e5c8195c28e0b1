"""`nearby import mini-apps` against PostGIS and Redis: formats, rejects, --replace, failures."""

from __future__ import annotations

import csv
import gzip
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from click.testing import Result

from indexer.hot.layout import catalog_key
from indexer.store.catalog import read_catalog
from tests.conftest import Index
from tests.factories import CATALOG_HEADER, catalog_rows, clear_catalog, write_lines

Nearby = Callable[..., Result]

APPS = [
    "kfc,KFC,https://example.com/kfc.png,Fried chicken,restaurant",
    "divvy,Divvy,https://example.com/divvy.png,Bikes in Chicago,bikes",
    "Q1393402,Fazer,,,bakery",
]


@pytest.fixture
def catalog(index: Index) -> Iterator[Index]:
    """A clean index with an empty catalog."""
    clear_catalog(index)
    yield index
    clear_catalog(index)


def summary(result: Result) -> str:
    """The summary line with its duration masked."""
    return re.sub(r" in \d+\.\d s$", " in _ s", result.output.strip().splitlines()[-1])


def line(inserted: int = 0, updated: int = 0, unchanged: int = 0, deleted: int = 0,
         rejected: int = 0) -> str:  # fmt: skip
    return (
        f"imported {inserted} · updated {updated} · unchanged {unchanged}"
        f" · deleted {deleted} · rejected {rejected} in _ s"
    )


def rejects(path: Path) -> list[tuple[str, str, str]]:
    """(line, slug, reason) of each row of a rejects file."""
    with path.open(newline="", encoding="utf-8") as handle:
        return [(row[1], row[2], row[3]) for row in list(csv.reader(handle))[1:]]


def held(index: Index) -> dict[str, str]:
    """The catalog's Redis key."""
    return dict(index.hot.client.hgetall(catalog_key(index.settings.redis_prefix)))


def expected(lines: list[str]) -> list[tuple[str, ...]]:
    return sorted(tuple(row) for row in csv.reader(lines))


def test_csv_is_imported_and_published(catalog: Index, nearby: Nearby, tmp_path: Path) -> None:
    path = write_lines(tmp_path / "apps.csv", [CATALOG_HEADER, *APPS])
    result = nearby("import", "mini-apps", str(path))
    assert result.exit_code == 0, result.output
    assert summary(result) == line(inserted=3)
    assert catalog_rows(catalog) == expected(APPS)
    stored = read_catalog(catalog.conn)
    catalog.conn.commit()
    key = held(catalog)
    assert int(key["rev"]) == stored.rev > 0
    assert orjson.loads(key["apps"]) == stored.apps
    assert stored.apps["kfc"]["name"] == "KFC"
    assert not (tmp_path / "apps.rejects.csv").exists()


def test_ndjson_gzip_and_columns_in_any_order(
    catalog: Index, nearby: Nearby, tmp_path: Path
) -> None:
    objects = [dict(zip(CATALOG_HEADER.split(","), row, strict=True)) for row in
               csv.reader(APPS)]  # fmt: skip
    path = tmp_path / "apps.ndjson.gz"
    path.write_bytes(gzip.compress("\n".join(json.dumps(o) for o in objects).encode()))
    assert nearby("import", "mini-apps", str(path)).exit_code == 0
    assert catalog_rows(catalog) == expected(APPS)
    reordered = write_lines(
        tmp_path / "b.csv", ["Category;Name;SLUG;extra", "shop;K-Market;kmarket;x"]
    )
    assert nearby("import", "mini-apps", str(reordered)).exit_code == 0
    assert ("kmarket", "K-Market", "", "", "shop") in catalog_rows(catalog)


def test_same_file_twice_is_unchanged_and_keeps_the_revision(
    catalog: Index, nearby: Nearby, tmp_path: Path
) -> None:
    path = write_lines(tmp_path / "apps.csv", [CATALOG_HEADER, *APPS])
    nearby("import", "mini-apps", str(path))
    rev = held(catalog)["rev"]
    result = nearby("import", "mini-apps", str(path))
    assert summary(result) == line(unchanged=3)
    assert held(catalog)["rev"] == rev
    changed = write_lines(tmp_path / "apps.csv", [CATALOG_HEADER, "kfc,KFC!,,,"])
    assert summary(nearby("import", "mini-apps", str(changed))) == line(updated=1)
    assert int(held(catalog)["rev"]) > int(rev)


def test_replace_deletes_what_the_input_leaves_out(
    catalog: Index, nearby: Nearby, tmp_path: Path
) -> None:
    nearby("import", "mini-apps", str(write_lines(tmp_path / "a.csv", [CATALOG_HEADER, *APPS])))
    rev = int(held(catalog)["rev"])
    only = write_lines(tmp_path / "b.csv", [CATALOG_HEADER, APPS[0]])
    assert summary(nearby("import", "mini-apps", "--replace", str(only))) == line(
        unchanged=1, deleted=2
    )
    assert catalog_rows(catalog) == expected(APPS[:1])
    # A deletion alone is a new revision, and Redis carries it.
    assert int(held(catalog)["rev"]) > rev
    assert list(orjson.loads(held(catalog)["apps"])) == ["kfc"]


def test_bad_rows_are_rejected_with_line_and_reason(
    catalog: Index, nearby: Nearby, tmp_path: Path
) -> None:
    lines = [
        CATALOG_HEADER,
        APPS[0],
        ",No slug,,,",  # line 3
        "noname,,,,",
        "a/b,Slash,,,",
        "a\x01b,Control,,,",
        "x,Bad icon,ftp://example.com/i.png,,",
        "kfc,Again,,,",
        "short,Short",
        "y," + "n" * 201 + ",,,",
        APPS[1],
    ]
    path = write_lines(tmp_path / "apps.csv", lines)
    result = nearby("import", "mini-apps", str(path))
    assert result.exit_code == 1
    assert summary(result) == line(inserted=2, rejected=8)
    assert rejects(tmp_path / "apps.rejects.csv") == [
        ("3", "", "empty slug"),
        ("4", "noname", "empty name"),
        ("5", "a/b", "slug must not contain '/'"),
        ("6", "a\x01b", "slug must not contain '\\x01'"),
        ("7", "x", "icon_url must be an http(s) URL, got 'ftp://example.com/i.png'"),
        ("8", "kfc", "slug twice in the input (first on line 2)"),
        ("9", "short", "2 fields, the header has 5"),
        ("10", "y", "name is longer than 200 characters"),
    ]
    assert [row[0] for row in catalog_rows(catalog)] == ["divvy", "kfc"]


def test_ndjson_bad_lines(catalog: Index, nearby: Nearby, tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "apps.ndjson",
        ['{"slug": "a", "name": "A"}', "{not json", "[1, 2]", '{"slug": 5, "name": ["x"]}'],
    )
    result = nearby("import", "mini-apps", "--rejects", str(tmp_path / "r.csv"), str(path))
    assert result.exit_code == 1
    assert rejects(tmp_path / "r.csv") == [
        ("2", "", "unparseable JSON"),
        ("3", "", "not a JSON object"),
        ("4", "", "name must be text"),
    ]
    assert [row[0] for row in catalog_rows(catalog)] == ["a"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("name,category\nA,b\n", "the header has no column for slug"),
        ('{"type": "FeatureCollection", "features": []}', "a catalog is CSV or NDJSON"),
    ],
)
def test_unusable_input_writes_nothing(
    catalog: Index, nearby: Nearby, tmp_path: Path, content: str, message: str
) -> None:
    nearby("import", "mini-apps", str(write_lines(tmp_path / "a.csv", [CATALOG_HEADER, *APPS])))
    before = catalog_rows(catalog), held(catalog)
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    result = nearby("import", "mini-apps", "--replace", str(path))
    assert result.exit_code == 2
    assert message in result.output
    assert (catalog_rows(catalog), held(catalog)) == before


def test_missing_file_is_bad_usage(catalog: Index, nearby: Nearby, tmp_path: Path) -> None:
    result = nearby("import", "mini-apps", str(tmp_path / "none.csv"))
    assert result.exit_code == 2
    assert "Error:" in result.output


def test_failed_write_leaves_the_previous_catalog_whole(
    catalog: Index, nearby: Nearby, tmp_path: Path
) -> None:
    nearby("import", "mini-apps", str(write_lines(tmp_path / "a.csv", [CATALOG_HEADER, *APPS])))
    before = catalog_rows(catalog), held(catalog)
    with catalog.conn.cursor() as cur:
        cur.execute(
            """
            CREATE FUNCTION refuse_app() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.name = 'Refused' THEN RAISE EXCEPTION 'refused by test'; END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER refuse_app BEFORE INSERT OR UPDATE ON mini_apps
                FOR EACH ROW EXECUTE FUNCTION refuse_app();
            """
        )
    catalog.conn.commit()
    try:
        refused = write_lines(tmp_path / "b.csv", [CATALOG_HEADER, "new,New,,,", "kfc,Refused,,,"])
        result = nearby("import", "mini-apps", "--replace", str(refused))
    finally:
        with catalog.conn.cursor() as cur:
            cur.execute("DROP TRIGGER refuse_app ON mini_apps; DROP FUNCTION refuse_app()")
        catalog.conn.commit()
    assert result.exit_code == 2
    assert "nothing was written" in result.output
    assert (catalog_rows(catalog), held(catalog)) == before
    assert not (tmp_path / "b.rejects.csv").exists()


def test_stdin_needs_no_source(catalog: Index, nearby: Nearby, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    result = nearby("import", "mini-apps", "-", input="\n".join([CATALOG_HEADER, "a,A,,,", ",B"]))
    assert result.exit_code == 1
    assert rejects(tmp_path / "mini-apps.rejects.csv") == [("3", "", "2 fields, the header has 5")]
