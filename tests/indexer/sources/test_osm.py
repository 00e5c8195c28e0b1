"""OSM extracts to store records: a PBF of the test factories, and the Helsinki extract."""

from __future__ import annotations

from pathlib import Path

import osmium
import pytest
import shapely

from indexer.sources.osm import STORE_KEYS, osm_category, read_osm, way_point
from indexer.sources.rejects import UnreadableInput
from tests.factories import BLOCK, write_pbf

DATA = Path(__file__).resolve().parents[3] / "data"


@pytest.fixture
def extract(tmp_path: Path) -> Path:
    path = tmp_path / "block.osm.pbf"
    write_pbf(path)
    return path


def test_osm_category() -> None:
    assert osm_category({"amenity": "cafe", "shop": "coffee"}) == ("shop", "coffee")
    assert osm_category({"shop": "yes"}) == ("shop", "shop")
    assert osm_category({"office": " ", "craft": "tailor"}) == ("craft", "tailor")
    assert osm_category({"highway": "bus_stop"}) == ("", "")


def test_read_osm_nodes(extract: Path) -> None:
    records = {r.fields["id"]: r for r in read_osm(str(extract))}
    assert list(records) == [
        "osm:node/10",
        "osm:node/11",
        "osm:node/12",
        "osm:way/100",
        "osm:way/101",
        "osm:way/102",
        "osm:way/103",
    ]
    bakery = records["osm:node/10"]
    assert bakery.position == 1
    assert bakery.fields == {
        "id": "osm:node/10",
        "name": "Leipomo",
        "category": "bakery",
        "mini_app": "Q1393402",
        "opening_hours": "Mo-Fr 07:00-18:00",
        "lat": 60.1711,
        "lng": 24.9451,
    }
    assert bakery.attrs == {
        "shop": "bakery",
        "brand": "Fazer",
        "brand:wikidata": "Q1393402",
        "category_key": "shop",
    }
    assert records["osm:node/11"].fields["category"] == "shop"
    assert records["osm:node/12"].fields["mini_app"] == "Robert's"
    assert not bakery.reduced


def test_read_osm_ways_become_representative_points(extract: Path) -> None:
    records = {r.fields["id"]: r for r in read_osm(str(extract))}
    museum = shapely.Polygon(BLOCK).representative_point()
    park = shapely.LineString(BLOCK[:3]).representative_point()
    assert (records["osm:way/100"].fields["lat"], records["osm:way/100"].fields["lng"]) == (
        museum.y,
        museum.x,
    )
    assert (records["osm:way/101"].fields["lat"], records["osm:way/101"].fields["lng"]) == (
        park.y,
        park.x,
    )
    assert records["osm:way/100"].reduced and records["osm:way/101"].reduced
    # A way cut by the border keeps the nodes it has; one with none left has no point.
    cut = records["osm:way/102"]
    assert (cut.fields["lat"], cut.fields["lng"], cut.reduced) == (BLOCK[2][1], BLOCK[2][0], False)
    assert records["osm:way/103"].problem == "missing coordinates"


def test_way_point_of_a_self_crossing_ring_lies_on_it() -> None:
    bowtie = [(0.0, 0.0), (2.0, 2.0), (2.0, 0.0), (0.0, 2.0), (0.0, 0.0)]
    lat, lng = way_point(bowtie)
    assert shapely.make_valid(shapely.Polygon(bowtie)).intersects(shapely.Point(lng, lat))


def test_read_osm_needs_the_format_when_the_name_does_not_say(tmp_path: Path) -> None:
    path = tmp_path / "upload.bin"
    write_pbf(tmp_path / "block.osm.pbf")
    (tmp_path / "block.osm.pbf").rename(path)
    assert len(list(read_osm(str(path), "pbf"))) == 7
    with pytest.raises(UnreadableInput, match="Could not detect file format"):
        list(read_osm(str(path)))


def test_read_osm_of_garbage_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "garbage.osm.pbf"
    path.write_bytes(b"\x00\x00\x00\x0dnot a pbf at all")
    with pytest.raises(UnreadableInput):
        list(read_osm(str(path)))


class StoreCounter(osmium.SimpleHandler):
    """Counts nodes and ways with a store key, the plain way."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []

    def node(self, node: osmium.osm.Node) -> None:
        if any(key in node.tags for key in STORE_KEYS):
            self.ids.append(f"osm:node/{node.id}")

    def way(self, way: osmium.osm.Way) -> None:
        if any(key in way.tags for key in STORE_KEYS):
            self.ids.append(f"osm:way/{way.id}")


def test_read_osm_helsinki_extract() -> None:
    counter = StoreCounter()
    counter.apply_file(str(DATA / "Helsinki.osm.pbf"))
    records = list(read_osm(str(DATA / "Helsinki.osm.pbf")))
    assert [r.fields["id"] for r in records] == counter.ids
    assert all(r.problem is None for r in records)
    west, south, east, north = 24.93, 60.16, 24.96, 60.18
    assert all(south < r.fields["lat"] < north and west < r.fields["lng"] < east for r in records)
