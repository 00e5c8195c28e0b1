"""The memory report's reading of a real hot index, against the entities written."""

from __future__ import annotations

import h3

from indexer.hot import encoding, layout
from indexer.model import INDEX_RESOLUTIONS, Entity
from indexer.store.writer import write_entities
from scripts import memory_report
from tests.conftest import Index
from tests.factories import random_stores


def test_every_key_of_the_layout_has_its_family() -> None:
    prefix, gen, cell = "p:l", "7", h3.latlng_to_cell(60.17, 24.94, 9)
    tag = layout.tag_of(cell)
    keys = {
        layout.gen_key(prefix): "control",
        layout.counter_key(prefix): "control",
        layout.building_key(prefix): "control",
        layout.loc_key(prefix, gen): "loc",
        layout.cell_key(prefix, gen, cell): "z r9",
        layout.tops_key(prefix, gen, tag, 11): "tops",
        layout.member_key(prefix, gen, tag): "m",
        layout.display_key(prefix, gen, tag): "d",
        layout.text_key(prefix, gen, tag): "x",
        layout.posting_key(prefix, gen, tag, "kah"): "w",
        layout.posting_key(prefix, gen, tag, "강"): "w",
        layout.posting_key(prefix, gen, tag, layout.CARRIER + "cshop:bakery"): "wc",
        layout.carriers_key(prefix, gen, tag): "k",
        layout.branches_key(prefix, gen, tag, "kfc"): "b",
        layout.branch_hash_key(prefix, gen, tag): "a",
        f"{prefix}:{gen}:{{{tag}}}:elsewhere": "other",
        f"{prefix}:geo": "other",
    }
    for key, family in keys.items():
        assert memory_report.family_of(key[len(prefix) + 1 :]) == family, key


def written(index: Index, count: int) -> tuple[list[Entity], memory_report.Report]:
    """``count`` stores written to the test's index, and the report of it."""
    entities = random_stores(count)
    write_entities(index.conn, index.hot, "t", entities)
    return entities, memory_report.read(index.hot.raw, index.settings.redis_prefix)


def test_the_report_counts_every_entity_and_cell(index: Index) -> None:
    entities, report = written(index, 300)
    assert report.entities == len(entities)
    for res in INDEX_RESOLUTIONS:
        family = report.families[f"z r{res}"]
        cells = {h3.latlng_to_cell(entity.lat, entity.lng, res) for entity in entities}
        assert (family.keys, family.elements) == (len(cells), len(entities))
        assert sum(family.encodings.values()) == family.keys
    assert report.total == sum(family.bytes for family in report.families.values())
    assert "300 entities" in memory_report.format_report(report)


def test_the_report_sizes_every_member_and_document_held(index: Index) -> None:
    entities, report = written(index, 300)
    # An entity's member and document are kept in every group its cells belong to.
    groups = {e.id: len(set(encoding.placement_of(e.lat, e.lng).tags)) for e in entities}
    member_bytes = sum(len(index.member(e.id) or b"") * groups[e.id] for e in entities)
    assert report.values["m"].count == report.values["d"].count == sum(groups.values())
    assert report.values["m"].value_bytes == member_bytes
    assert report.values["loc"].count == len(entities)


def test_the_report_counts_the_text_index(index: Index) -> None:
    entities, report = written(index, 300)
    groups = {e.id: len(set(encoding.placement_of(e.lat, e.lng).tags)) for e in entities}
    assert report.values["x"].count == sum(groups.values())
    postings = report.families["w"]
    # Every id under each of its entity's terms, in each of its groups.
    found = index.conn.execute(
        "SELECT id, name, category, search_text, mini_app FROM entities"
    ).fetchall()
    expected = sum(
        len(encoding.text_terms(encoding.text_entry(name, category, text, app))) * groups[entity_id]
        for entity_id, name, category, text, app in found
    )
    assert postings.elements == expected > 0
    assert postings.keys == sum(postings.encodings.values())
