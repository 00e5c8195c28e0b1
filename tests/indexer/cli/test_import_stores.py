"""`nearby import stores` against PostGIS and Redis: formats, rejects, semantics, failures."""

from __future__ import annotations

import csv
import gc
import gzip
import json
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import h3
import opening_hours
import pytest
import shapely
from click.testing import Result

from tests.conftest import Index
from tests.factories import BLOCK, HEADER, SHOPS, write_lines, write_pbf

Nearby = Callable[..., Result]
DATA = Path(__file__).resolve().parents[3] / "data"


def stored(index: Index) -> list[tuple[Any, ...]]:
    """Every entity: id, name, category, mini_app, lat, lng, popularity, hours, attrs, source."""
    with index.conn.cursor() as cur:
        cur.execute(
            "SELECT id, name, category, mini_app, lat, lng, popularity, opening_hours, attrs,"
            " source FROM entities ORDER BY id"
        )
        rows = cur.fetchall()
    index.conn.commit()
    return rows


def expected_rows(source: str, lines: list[str]) -> list[tuple[Any, ...]]:
    """What the CSV lines of HEADER's columns become in PostGIS."""
    rows: list[tuple[Any, ...]] = []
    for fields in csv.reader(lines):
        native, name, lat, lng, category, mini_app, popularity, hours = fields
        rows.append(
            (
                f"{source}:{native}",
                name,
                category,
                mini_app,
                float(lat),
                float(lng),
                float(popularity or 0),
                hours or None,
                {},
                source,
            )
        )
    return sorted(rows)


def summary(result: Result) -> str:
    """The summary line with its duration masked."""
    return re.sub(r" in \d+\.\d s$", " in _ s", result.output.strip().splitlines()[-1])


def line(
    inserted: int = 0, updated: int = 0, unchanged: int = 0, deleted: int = 0, **kw: int
) -> str:
    """The summary line expected (duration masked)."""
    text = (
        f"imported {inserted:,} · updated {updated:,} · unchanged {unchanged:,}"
        f" · deleted {deleted:,} · rejected {kw.get('rejected', 0):,}"
    )
    if kw.get("shapes"):
        text += f" · {kw['shapes']:,} shapes as points"
    return text + " in _ s"


def rejects(path: Path) -> list[tuple[str, str, str]]:
    """(position, id, reason) of each row of a rejects file."""
    with path.open(newline="", encoding="utf-8") as handle:
        return [(row[1], row[2], row[3]) for row in list(csv.reader(handle))[1:]]


def verify(nearby: Nearby) -> tuple[int, str]:
    """``nearby cache verify``: its exit status and its output."""
    result = nearby("cache", "verify")
    return result.exit_code, result.output


def assert_verified(nearby: Nearby) -> None:
    code, output = verify(nearby)
    # The command's connection holds its read transaction (and a lock on the
    # table) until the command's context is collected.
    gc.collect()
    assert (code, output.strip().splitlines()[-1]) == (0, "0 differences")


# -- formats ---------------------------------------------------------------------------


def test_csv_import_writes_postgis_and_redis(nearby: Nearby, index: Index, tmp_path: Path) -> None:
    path = write_lines(tmp_path / "shops.csv", [HEADER, *SHOPS])
    result = nearby("import", "stores", str(path))
    assert (result.exit_code, summary(result)) == (0, line(inserted=3))
    assert result.output.count("\n") == 1  # no progress bar off a terminal
    assert stored(index) == expected_rows("shops", SHOPS)
    with index.conn.cursor() as cur:
        cur.execute("SELECT lat, lng, h3 FROM entities")
        for lat, lng, cell in cur.fetchall():
            assert cell == h3.str_to_int(h3.latlng_to_cell(lat, lng, 9))
    index.conn.commit()
    assert not (tmp_path / "shops.rejects.csv").exists()
    assert_verified(nearby)


def test_csv_aliases_extra_columns_and_longitude_180(
    nearby: Nearby, index: Index, tmp_path: Path
) -> None:
    path = write_lines(
        tmp_path / "edge.csv",
        ["ID,Latitude,Longitude,phone,floor", "a,-16.5,180,+679 123,", "b,0,-180,,2"],
    )
    result = nearby("import", "stores", str(path))
    assert (result.exit_code, summary(result)) == (0, line(inserted=2))
    rows = [(r[0], r[4], r[5], r[8]) for r in stored(index)]
    assert rows == [
        ("edge:a", -16.5, -180.0, {"phone": "+679 123"}),
        ("edge:b", 0.0, -180.0, {"floor": "2"}),
    ]
    assert_verified(nearby)


def test_foreign_csv_with_column_mapping(nearby: Nearby, index: Index, tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "chargers_ny.csv",
        [
            "Fuel Type Code,Station Name,Latitude,Longitude,ID,EV Network,Access Days Time",
            'ELEC,"Town Hall, Garage",40.75,-73.99,1517,ChargePoint Network,24 hours daily',
        ],
    )
    result = nearby(
        "import", "stores", str(path), "--source", "nrel",
        "--col", "id=ID", "--col", "name=Station Name", "--col", "mini_app=EV Network",
    )  # fmt: skip
    assert (result.exit_code, summary(result)) == (0, line(inserted=1))
    assert stored(index) == [
        (
            "nrel:1517",
            "Town Hall, Garage",
            "",
            "ChargePoint Network",
            40.75,
            -73.99,
            0.0,
            None,
            {"Fuel Type Code": "ELEC", "Access Days Time": "24 hours daily"},
            "nrel",
        )
    ]


def test_geojson_import_reduces_shapes_to_points(
    nearby: Nearby, index: Index, tmp_path: Path
) -> None:
    square = [[24.94, 60.17], [24.95, 60.17], [24.95, 60.18], [24.94, 60.18], [24.94, 60.17]]
    street = [[24.93, 60.16], [24.96, 60.16], [24.96, 60.165]]
    geometries = [
        {"type": "Point", "coordinates": [24.9384, 60.1699]},
        {"type": "Polygon", "coordinates": [square]},
        {"type": "LineString", "coordinates": street},
        None,
    ]
    features = [
        {"type": "Feature", "id": f"f{n}", "geometry": g, "properties": {"name": f"n{n}"}}
        for n, g in enumerate(geometries, start=1)
    ]
    path = tmp_path / "places.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    result = nearby("import", "stores", str(path))
    assert (result.exit_code, summary(result)) == (1, line(inserted=3, rejected=1, shapes=2))
    points = [shapely.geometry.shape(g).representative_point() for g in geometries[:3]]
    assert [(r[0], r[4], r[5]) for r in stored(index)] == [
        (f"places:f{n}", p.y, p.x) for n, p in enumerate(points, start=1)
    ]
    assert rejects(tmp_path / "places.rejects.csv") == [("4", "f4", "missing coordinates")]
    assert_verified(nearby)


def test_ndjson_gzip_from_stdin(nearby: Nearby, index: Index, tmp_path: Path) -> None:
    lines = [
        json.dumps({"id": "o1", "lat": 37.5, "lon": 127.0, "popularity": 3, "tag": "x"}),
        json.dumps(
            {
                "type": "Feature",
                "id": "o2",
                "geometry": {"type": "Point", "coordinates": [127.01, 37.51]},
                "properties": {"category": "mart"},
            }
        ),
        "",
        "{broken",
    ]
    data = gzip.compress(("\n".join(lines) + "\n").encode())
    rejected = tmp_path / "feed.rejects.csv"
    result = nearby(
        "import", "stores", "-", "--source", "feed", "--rejects", str(rejected), input=data
    )
    assert (result.exit_code, summary(result)) == (1, line(inserted=2, rejected=1))
    assert [(r[0], r[2], r[4], r[5], r[6], r[8]) for r in stored(index)] == [
        ("feed:o1", "", 37.5, 127.0, 3.0, {"tag": "x"}),
        ("feed:o2", "mart", 37.51, 127.01, 0.0, {}),
    ]
    assert rejects(rejected) == [("4", "", "unparseable JSON")]


def test_stdin_needs_a_source(nearby: Nearby, index: Index) -> None:
    result = nearby("import", "stores", "-", input=b"id,lat,lng\n1,2,3\n")
    assert result.exit_code == 2
    assert "reading standard input needs --source" in result.output
    assert index.count() == 0


def test_osm_import_of_a_built_extract(nearby: Nearby, index: Index, tmp_path: Path) -> None:
    path = tmp_path / "block.osm.pbf"
    write_pbf(path)
    result = nearby("import", "stores", str(path))
    assert (result.exit_code, summary(result)) == (1, line(inserted=6, rejected=1, shapes=2))
    rows = {r[0]: r for r in stored(index)}
    assert sorted(rows) == [
        "osm:node/10",
        "osm:node/11",
        "osm:node/12",
        "osm:way/100",
        "osm:way/101",
        "osm:way/102",
    ]
    museum = shapely.Polygon(BLOCK).representative_point()
    assert rows["osm:way/100"][1:6] == ("M", "museum", "", museum.y, museum.x)
    assert rows["osm:node/10"][1:4] == ("Leipomo", "bakery", "Q1393402")
    assert {r[9] for r in rows.values()} == {"block"}
    assert rejects(tmp_path / "block.rejects.csv") == [("7", "osm:way/103", "missing coordinates")]
    assert_verified(nearby)


def test_helsinki_extract_and_its_points_of_interest(
    nearby: Nearby, index: Index, tmp_path: Path
) -> None:
    features = json.loads((DATA / "helsinki_center_pois.geojson").read_text())["features"]
    bad_hours = [
        f
        for f in features
        if not opening_hours.validate(f["properties"]["opening_hours"] or "24/7")
    ]
    pbf = tmp_path / "Helsinki.osm.pbf"
    shutil.copy(DATA / "Helsinki.osm.pbf", pbf)
    result = nearby("import", "stores", str(pbf))
    good = len(features) - len(bad_hours)
    assert (result.exit_code, summary(result)) == (
        1,
        line(inserted=good, rejected=len(bad_hours), shapes=126),
    )
    reasons = {reason for _, _, reason in rejects(tmp_path / "Helsinki.rejects.csv")}
    assert reasons == {
        f"unparseable opening_hours {f['properties']['opening_hours']!r}" for f in bad_hours
    }
    geojson = tmp_path / "helsinki_center_pois.geojson"
    shutil.copy(DATA / "helsinki_center_pois.geojson", geojson)
    result = nearby("import", "stores", str(geojson))
    assert (result.exit_code, summary(result)) == (1, line(inserted=good, rejected=len(bad_hours)))
    assert index.count() == 2 * good
    assert_verified(nearby)


# -- re-import, replace, sources --------------------------------------------------------


def test_reimport_changes_nothing_and_an_edit_is_an_update(
    nearby: Nearby, index: Index, tmp_path: Path
) -> None:
    path = write_lines(tmp_path / "shops.csv", [HEADER, *SHOPS])
    nearby("import", "stores", str(path))
    with index.conn.cursor() as cur:
        cur.execute("SELECT id, rev FROM entities ORDER BY id")
        revisions = cur.fetchall()
    index.conn.commit()
    again = nearby("import", "stores", str(path))
    assert (again.exit_code, summary(again)) == (0, line(unchanged=3))
    with index.conn.cursor() as cur:
        cur.execute("SELECT id, rev FROM entities ORDER BY id")
        assert cur.fetchall() == revisions
    index.conn.commit()
    edited = [SHOPS[0], SHOPS[1].replace("Leipomo", "Leipomo Oy"), SHOPS[2]]
    write_lines(path, [HEADER, *edited])
    result = nearby("import", "stores", str(path))
    assert (result.exit_code, summary(result)) == (0, line(updated=1, unchanged=2))
    assert stored(index) == expected_rows("shops", edited)
    assert_verified(nearby)


def test_replace_deletes_what_the_input_no_longer_lists(
    nearby: Nearby, index: Index, tmp_path: Path
) -> None:
    path = write_lines(tmp_path / "shops.csv", [HEADER, *SHOPS])
    other = write_lines(tmp_path / "malls.csv", [HEADER, "9,Mall,60.2,24.9,mall,,1,"])
    nearby("import", "stores", str(path))
    nearby("import", "stores", str(other))
    write_lines(path, [HEADER, SHOPS[2]])
    kept = nearby("import", "stores", str(path))
    assert (kept.exit_code, summary(kept)) == (0, line(unchanged=1))
    assert index.count() == 4
    result = nearby("import", "stores", str(path), "--replace")
    assert (result.exit_code, summary(result)) == (0, line(unchanged=1, deleted=2))
    expected = expected_rows("shops", [SHOPS[2]]) + expected_rows(
        "malls", ["9,Mall,60.2,24.9,mall,,1,"]
    )
    assert stored(index) == sorted(expected)
    assert_verified(nearby)


def test_an_id_belongs_to_one_source(nearby: Nearby, index: Index, tmp_path: Path) -> None:
    first = write_lines(tmp_path / "a.csv", ["id,lat,lng", "osm:node/1,60.1,24.9"])
    second = write_lines(tmp_path / "b.csv", ["id,lat,lng", "2,60.2,24.9", "osm:node/1,60.3,24.9"])
    nearby("import", "stores", str(first))
    result = nearby("import", "stores", str(second))
    assert (result.exit_code, summary(result)) == (1, line(inserted=1, rejected=1))
    assert rejects(tmp_path / "b.rejects.csv") == [
        ("3", "osm:node/1", "id belongs to another source")
    ]
    assert [(r[0], r[4], r[9]) for r in stored(index)] == [
        ("b:2", 60.2, "b"),
        ("osm:node/1", 60.1, "a"),
    ]


def test_files_of_one_source_import_together(nearby: Nearby, index: Index, tmp_path: Path) -> None:
    north = write_lines(tmp_path / "north.csv", ["id,lat,lng", "1,61,25", "2,61,26"])
    south = write_lines(tmp_path / "south.csv", ["id,lat,lng", "3,59,25", "1,59,26"])
    shared = tmp_path / "all.rejects.csv"
    result = nearby(
        "import", "stores", str(north), str(south), "--source", "fi", "--rejects", str(shared)
    )
    assert (result.exit_code, summary(result)) == (1, line(inserted=3, rejected=1))
    assert rejects(shared) == [("3", "fi:1", f"id twice in the input (first on line 2 of {north})")]
    assert [r[0] for r in stored(index)] == ["fi:1", "fi:2", "fi:3"]


# -- rejects ---------------------------------------------------------------------------


def test_each_reject_reason_with_its_line(nearby: Nearby, index: Index, tmp_path: Path) -> None:
    lines = [
        HEADER,
        "ok1,Good,60.17,24.94,cafe,,1,Mo-Fr 08:00-18:00",  # line 2
        "m1,No coordinates,,,cafe,,1,",  # 3
        "m2,Words,sixty,24.94,cafe,,1,",  # 4
        "m3,North of the pole,90.0001,24.94,cafe,,1,",  # 5
        "m4,Off the map,60.17,180.5,cafe,,1,",  # 6
        "m5,Not a number,nan,24.94,cafe,,1,",  # 7
        "m6,Infinite,60.17,inf,cafe,,1,",  # 8
        ",Nameless id,60.17,24.94,cafe,,1,",  # 9
        "ok1,Again,60.18,24.95,cafe,,1,",  # 10
        "m7,Unpopular,60.17,24.94,cafe,,-2,",  # 11
        'm8,"Bad hours",60.17,24.94,cafe,,1,"Mon - Fri 9am - 5pm"',  # 12
        "m9,Short row,60.17",  # 13
        'ok2,"Two',  # 14
        'lines",60.19,24.96,cafe,,2,24/7',  # 15
        "m10,Bad popularity,60.17,24.94,cafe,,many,",  # 16
    ]
    path = write_lines(tmp_path / "mixed.csv", lines)
    result = nearby("import", "stores", str(path))
    assert (result.exit_code, summary(result)) == (1, line(inserted=2, rejected=12))
    assert rejects(tmp_path / "mixed.rejects.csv") == [
        ("3", "m1", "missing coordinates"),
        ("4", "m2", "unparseable latitude 'sixty'"),
        ("5", "m3", "latitude 90.0001 outside [-90, 90]"),
        ("6", "m4", "longitude 180.5 outside [-180, 180]"),
        ("7", "m5", "latitude is NaN or infinite"),
        ("8", "m6", "longitude is NaN or infinite"),
        ("9", "", "empty id"),
        ("10", "mixed:ok1", "id twice in the input (first on line 2)"),
        ("11", "m7", "negative popularity -2.0"),
        ("12", "m8", "unparseable opening_hours 'Mon - Fri 9am - 5pm'"),
        ("13", "m9", "3 fields, the header has 8"),
        ("16", "m10", "unparseable popularity 'many'"),
    ]
    assert [(r[0], r[1]) for r in stored(index)] == [
        ("mixed:ok1", "Good"),
        ("mixed:ok2", "Two\nlines"),
    ]
    assert_verified(nearby)


def test_rejects_file_keeps_the_record(nearby: Nearby, index: Index, tmp_path: Path) -> None:
    path = write_lines(tmp_path / "s.csv", ["id,lat,lng,note", "1,95,24,far north"])
    target = tmp_path / "out" / "bad.csv"
    target.parent.mkdir()
    result = nearby("import", "stores", str(path), "--rejects", str(target))
    assert result.exit_code == 1
    with target.open(newline="") as handle:
        assert list(csv.reader(handle)) == [
            ["file", "line", "id", "reason", "record"],
            [
                str(path),
                "2",
                "1",
                "latitude 95.0 outside [-90, 90]",
                '["1", "95", "24", "far north"]',
            ],
        ]
    assert f"1 rejected records in {target}" in result.output
    assert index.count() == 0


# -- failures --------------------------------------------------------------------------


@pytest.fixture
def earlier(nearby: Nearby, index: Index, tmp_path: Path) -> Iterator[list[tuple[Any, ...]]]:
    """An index holding the shops of ``shops.csv``; yields its rows."""
    path = write_lines(tmp_path / "shops.csv", [HEADER, *SHOPS])
    assert nearby("import", "stores", str(path)).exit_code == 0
    yield stored(index)


def truncated_geojson(path: Path) -> Path:
    features = [
        {"type": "Feature", "id": n, "geometry": {"type": "Point", "coordinates": [24.9, 60.1]}}
        for n in range(5000)
    ]
    text = json.dumps({"type": "FeatureCollection", "features": features})
    path.write_text(text[: len(text) * 3 // 4])
    return path


def broken_gzip(path: Path) -> Path:
    path.write_bytes(b"\x1f\x8b\x08\x00junk")
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "absent.csv", "No such file"),
        (
            lambda p: write_lines(p / "shops.csv", ["id,name,x,y", "1,a,2,3"]),
            "no column for lat, lng",
        ),
        (lambda p: truncated_geojson(p / "shops.geojson"), "unreadable GeoJSON"),
        (lambda p: broken_gzip(p / "shops.csv.gz"), "shops.csv.gz"),
    ],
)
def test_unreadable_input_writes_nothing(
    nearby: Nearby,
    index: Index,
    tmp_path: Path,
    earlier: list[tuple[Any, ...]],
    make: Callable[[Path], Path],
    message: str,
) -> None:
    path = make(tmp_path)
    result = nearby("import", "stores", str(path), "--source", "shops", "--replace")
    assert result.exit_code == 2
    assert message in result.output and "nothing was written" in result.output
    assert stored(index) == earlier
    assert_verified(nearby)


def test_a_batch_the_database_refuses_leaves_the_earlier_state(
    nearby: Nearby, index: Index, tmp_path: Path, earlier: list[tuple[Any, ...]]
) -> None:
    many = [f"n{n},Shop {n},60.{n:04d},24.9,shop,,1," for n in range(3000)]
    many[2000] = "n2000,poison,60.2,24.9,shop,,1,"
    path = write_lines(tmp_path / "shops_v2.csv", [HEADER, *many])
    with index.refusing("poison"):
        result = nearby("import", "stores", str(path), "--source", "shops", "--replace")
    assert result.exit_code == 2
    assert "refused by test" in result.output and "nothing was written" in result.output
    assert stored(index) == earlier
    assert not (tmp_path / "shops_v2.rejects.csv").exists()
    assert_verified(nearby)


def test_verify_finds_a_difference_and_rebuild_mends_it(
    nearby: Nearby, index: Index, earlier: list[tuple[Any, ...]]
) -> None:
    with index.conn.cursor() as cur:
        cur.execute("DELETE FROM entities WHERE id = 'shops:2'")
    index.conn.commit()
    code, output = verify(nearby)
    gc.collect()
    assert code == 1
    assert output.strip().splitlines()[-1] != "0 differences"
    assert "shops:2" in output
    assert nearby("cache", "rebuild").exit_code == 0
    assert_verified(nearby)


def test_osm_from_stdin_is_spooled(nearby: Nearby, index: Index, tmp_path: Path) -> None:
    path = tmp_path / "block.osm.pbf"
    write_pbf(path)
    result = nearby(
        "import", "stores", "-", "--source", "osm", "--rejects", str(tmp_path / "r.csv"),
        input=path.read_bytes(),
    )  # fmt: skip
    assert (result.exit_code, summary(result)) == (1, line(inserted=6, rejected=1, shapes=2))
    assert rejects(tmp_path / "r.csv") == [("7", "osm:way/103", "missing coordinates")]
