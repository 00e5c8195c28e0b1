"""scripts/gen_demo_catalog.py: slugs, the derivation against a brute force over the extract,
and the branches' apps through the real imports."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from scripts.gen_demo_catalog import (
    FEED_APPS,
    accepted,
    derive_catalog,
    feature_to_poi,
    main,
    slugify,
    trades,
)
from tests.conftest import Index
from tests.factories import DEMO_POIS, DEMO_SOURCE, load_demo_shops

ICONS = "http://demo.test/demo/icons/"


@pytest.fixture(scope="module")
def features() -> list[dict[str, Any]]:
    return list(json.loads(DEMO_POIS.read_text(encoding="utf-8"))["features"])


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("catalog")
    main(["--out", str(out), "--icon-base", ICONS])
    return out


def ndjson(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize(
    ("text", "slug"),
    [("Espresso House", "espresso-house"), ("R-Kioski", "r-kioski"), ("McDonald's", "mcdonalds"),
     ("Robert's coffee", "roberts-coffee"), ("Fazer Café", "fazer-cafe"), ("Boknäs", "boknas"),
     ("H&M", "h-m"), ("sushibar+wine", "sushibar-wine"), ("  Otto. automaatti ", "otto-automaatti"),
     ("...", "")],
)  # fmt: skip
def test_slugify(text: str, slug: str) -> None:
    assert slugify(text) == slug


def brute_force_slug(feature: dict[str, Any], pool: list[dict[str, Any]]) -> str | None:
    """The module's rule, read literally: the brand, else a name that at least two
    trading POIs of the pool share, case-folded."""
    props = feature["properties"]
    brand = (props.get("brand") or props.get("tags", {}).get("brand") or "").strip()
    if brand:
        return slugify(brand) or None
    name = (props.get("name") or "").strip()
    if not name or not trades(feature_to_poi(feature)):
        return None
    sharing = [
        other for other in pool
        if trades(feature_to_poi(other))
        and (other["properties"].get("name") or "").strip().casefold() == name.casefold()
    ]  # fmt: skip
    return slugify(name) or None if len(sharing) >= 2 else None


def test_every_apps_branches_are_exactly_the_pois_its_brand_or_name_gives(
    features: list[dict[str, Any]], written: Path
) -> None:
    pool = accepted(features)
    expected: dict[str, set[str]] = {}
    for feature in pool:
        slug = brute_force_slug(feature, pool)
        if slug is not None:
            expected.setdefault(slug, set()).add(feature["id"])
    branches: dict[str, set[str]] = {}
    for feature in ndjson(written / "branches.ndjson"):
        branches.setdefault(feature["properties"]["mini_app"], set()).add(feature["id"])
    assert branches == expected
    catalog = {app["slug"]: app for app in ndjson(written / "mini_apps.ndjson")}
    assert set(catalog) == set(expected) | {slug for slug, *_ in FEED_APPS}
    # The chains the extract lists by name alone (one of its seven Espresso Houses has
    # opening hours the import cannot parse: no entity, so no branch).
    assert len(branches["espresso-house"]) == 6 and len(branches["hesburger"]) == 5
    assert len(branches["r-kioski"]) == 7 and catalog["r-kioski"]["name"] == "R-kioski"
    # Rejected by the import (unparseable opening hours): no entity, so no app of its own.
    assert "vapiano" not in catalog


def test_a_branch_is_its_features_own_with_the_apps_slug_for_the_brand(
    features: list[dict[str, Any]], written: Path
) -> None:
    by_id = {feature["id"]: feature for feature in features}
    for branch in ndjson(written / "branches.ndjson"):
        original = by_id[branch["id"]]
        props = dict(original["properties"])
        props.pop("brand")
        assert branch == {
            **original,
            "properties": {**props, "mini_app": branch["properties"]["mini_app"]},
        }


def test_catalog_entries_name_their_icon_and_a_description(written: Path) -> None:
    apps = ndjson(written / "mini_apps.ndjson")
    for app in apps:
        assert set(app) == {"slug", "name", "icon_url", "description", "category"}
        assert app["icon_url"] == f"{ICONS}{app['slug']}.svg"
        assert app["name"] and app["description"] and app["category"]
    assert [a["slug"] for a in apps[: -len(FEED_APPS)]] == sorted(
        a["slug"] for a in apps[: -len(FEED_APPS)]
    )
    burger = next(a for a in apps if a["slug"] == "burger-king")
    assert (burger["name"], burger["category"]) == ("Burger King", "fast_food")


def test_the_same_pois_give_the_same_catalog_whatever_their_order(
    features: list[dict[str, Any]],
) -> None:
    pois = [feature_to_poi(f) for f in accepted(features)]
    assert derive_catalog(pois, ICONS) == derive_catalog(pois[::-1], ICONS)


def entity_apps(index: Index) -> dict[str, tuple[Any, ...]]:
    with index.conn.cursor() as cur:
        cur.execute("SELECT id, mini_app, name, category, attrs, ST_AsText(geog) FROM entities")
        rows = {row[0]: row[1:] for row in cur.fetchall()}
    index.conn.commit()
    return rows


def test_the_branches_import_changes_their_mini_app_and_nothing_else(
    index: Index, nearby: Callable[..., Result], tmp_path: Path, written: Path
) -> None:
    result = nearby("import", "stores", str(DEMO_POIS), "--source", DEMO_SOURCE, "--replace",
                    "--rejects", str(tmp_path / "rejects.csv"))  # fmt: skip
    assert result.exit_code == 1, result.output
    before = entity_apps(index)
    load_demo_shops(nearby, tmp_path, ICONS)
    after = entity_apps(index)
    assert set(after) == set(before)
    slugs = {f"{DEMO_SOURCE}:{f['id']}": f["properties"]["mini_app"]
             for f in ndjson(written / "branches.ndjson")}  # fmt: skip
    for entity_id, row in after.items():
        assert row[0] == slugs.get(entity_id, before[entity_id][0]), entity_id
        assert row[1:] == before[entity_id][1:], entity_id
    result = nearby("cache", "verify")
    assert result.exit_code == 0, result.output
