"""Display documents kept by the searching process: shown again only while current."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from discovery.search.documents import Changed, Documents
from indexer.hot import encoding, layout
from indexer.model import Entity
from indexer.store.writer import write_entities

from ...conftest import Index


def shop(name: str, popularity: float = 1.0) -> Entity:
    return Entity(id="t:1", kind="store", lat=60.17, lng=24.94, name=name, popularity=popularity)


def names(client: FlaskClient) -> list[str]:
    body = client.get("/v1/nearby?lat=60.17&lng=24.94&radius=100").get_json()
    assert body["source"] == "redis"
    return [result["name"] for result in body["results"]]


def test_a_changed_entity_shows_its_new_document(index: Index, client: FlaskClient) -> None:
    write_entities(index.conn, index.hot, "t", [shop("Old name")])
    assert names(client) == ["Old name"]
    write_entities(index.conn, index.hot, "t", [shop("New name")])
    assert names(client) == ["New name"]


def test_a_kept_document_is_not_read_again(index: Index, client: FlaskClient) -> None:
    write_entities(index.conn, index.hot, "t", [shop("Kept")])
    assert names(client) == ["Kept"]
    gen = index.hot.require_generation()
    tag = layout.tag_of(encoding.placement_of(60.17, 24.94).cells[0])
    index.hot.client.hset(layout.display_key(index.hot.prefix, gen, tag), "t:1", '{"x":1}')
    # The revision did not change: the document kept is still the current one.
    assert names(client) == ["Kept"]


def test_a_revision_that_moved_on_is_reported(index: Index) -> None:
    write_entities(index.conn, index.hot, "t", [shop("One")])
    gen = index.hot.require_generation()
    rev = int(index.hot.client.hget(layout.loc_key(index.hot.prefix, gen), "t:1").split()[0])
    tag = layout.tag_of(encoding.placement_of(60.17, 24.94).cells[0])
    documents = Documents(index.hot)
    [doc] = documents.documents(gen, [tag], [("t:1", rev, 1)])
    assert b'"name":"One"' in doc
    with pytest.raises(Changed):
        Documents(index.hot).documents(gen, [tag], [("t:1", rev - 1, 1)])


def test_the_oldest_kept_go_first(index: Index) -> None:
    documents = Documents(index.hot, limit=2)
    for n in range(3):
        documents.keep(f"t:{n}", n, b"{}")
    assert list(documents.kept) == ["t:1", "t:2"]


def test_a_change_between_the_search_and_its_documents_runs_the_search_again(
    index: Index, client: FlaskClient
) -> None:
    """The page shows the entity as it is after the change, never the old figures
    beside the new document."""
    write_entities(index.conn, index.hot, "t", [shop("Before", popularity=1.0)])
    search = client.application.extensions["nearby"].search
    reads: list[int] = []

    class ChangedMeanwhile(Documents):
        def read(self, gen, tags, wanted):  # type: ignore[no-untyped-def]
            reads.append(len(wanted))
            if len(reads) == 1:  # the entity changes after the script answered
                write_entities(index.conn, index.hot, "t", [shop("After", popularity=9.0)])
            return super().read(gen, tags, wanted)

    search.documents = ChangedMeanwhile(index.hot)
    body = client.get("/v1/nearby?lat=60.17&lng=24.94&radius=100").get_json()
    assert body["source"] == "redis"
    [result] = body["results"]
    assert (result["name"], result["popularity"]) == ("After", 9.0)
    assert len(reads) == 2


def test_an_index_changing_under_every_read_is_answered_by_postgis(
    index: Index, client: FlaskClient
) -> None:
    """Each search's entity changes before its document is read, every time: PostGIS
    answers, and nothing is taken for a missing index (no healing rebuild)."""
    write_entities(index.conn, index.hot, "t", [shop("Start")])
    services = client.application.extensions["nearby"]
    search = services.search
    written = [0]

    class AlwaysChanged(Documents):
        def read(self, gen, tags, wanted):  # type: ignore[no-untyped-def]
            written[0] += 1
            write_entities(index.conn, index.hot, "t", [shop(f"Name {written[0]}")])
            return super().read(gen, tags, wanted)

    search.documents = AlwaysChanged(index.hot)
    notices: list[bool] = []
    services.healer.notice_missing = lambda: notices.append(True)
    body = client.get("/v1/nearby?lat=60.17&lng=24.94&radius=100").get_json()
    assert body["source"] == "postgis"
    assert [result["name"] for result in body["results"]] == [f"Name {written[0]}"]
    assert written[0] == 3 and notices == []
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'nearby_postgis_fallbacks_total{reason="not_answered"} 1.0' in metrics


def test_a_script_the_server_lost_is_loaded_again(index: Index, client: FlaskClient) -> None:
    write_entities(index.conn, index.hot, "t", [shop("Shop")])
    assert names(client) == ["Shop"]
    index.hot.client.script_flush()
    # Still from Redis (names() checks the source): the script was sent again.
    assert names(client) == ["Shop"]


def test_documents_of_several_groups_come_in_the_order_asked(index: Index) -> None:
    """One read over two hash-tag groups gives each id its own document, in the order asked;
    a document gone while its id still holds the revision makes the read report a change."""
    places = {"t:hel": (60.17, 24.94), "t:seo": (37.5665, 126.978)}
    shops = [
        Entity(id=i, kind="store", lat=lat, lng=lng, name=i) for i, (lat, lng) in places.items()
    ]
    write_entities(index.conn, index.hot, "t", shops)
    gen = index.hot.require_generation()
    loc = layout.loc_key(index.hot.prefix, gen)
    tags = [layout.tag_of(encoding.placement_of(*places[i]).cells[0]) for i in ("t:seo", "t:hel")]
    assert tags[0] != tags[1]
    wanted = [(i, int(index.hot.client.hget(loc, i).split()[0]), n)
              for n, i in ((2, "t:hel"), (1, "t:seo"))]  # fmt: skip
    documents = Documents(index.hot)
    try:
        hel, seo = documents.read(gen, tags, wanted)
        assert b'"name":"t:hel"' in hel and b'"name":"t:seo"' in seo
        index.hot.client.hdel(layout.display_key(index.hot.prefix, gen, tags[0]), "t:seo")
        with pytest.raises(Changed):
            documents.read(gen, tags, wanted)
    finally:
        documents.close()
