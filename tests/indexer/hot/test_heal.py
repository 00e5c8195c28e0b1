"""A deployment that indexes from its first write_lines: db upgrade, imports and feed syncs
into nothing, and ``cache rebuild --if-needed``, against real PostGIS and Redis."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from flask.testing import FlaskClient

from discovery.cli import cli
from indexer.hot import layout
from indexer.hot.heal import MISSING, ensure_index
from indexer.hot.index import HotIndex, connect_redis
from indexer.settings import DEFAULT_DATABASE_URL, IndexSettings
from indexer.store import writer
from tests.conftest import Index, create_database, drop_database, with_database
from tests.factories import (
    HEADER,
    SHOPS,
    feed_now,
    fresh_fills,
    gbfs_set,
    random_stores,
    write_lines,
)
from tests.redis_server import free_port

Nearby = Callable[..., Result]


def generations(hot: HotIndex) -> int:
    """How many builds have marked a generation under this prefix (the counter)."""
    return int(hot.client.get(layout.counter_key(hot.prefix)) or 0)


def assert_served_from_redis(client: FlaskClient, lat: float, lng: float, count: int) -> None:
    body = client.get(f"/v1/nearby?lat={lat}&lng={lng}&radius=50000&limit=100").get_json()
    assert (body["source"], len(body["results"])) == ("redis", count)


def test_the_first_import_into_nothing_is_served_from_redis(
    nearby: Nearby, index: Index, client: FlaskClient, tmp_path: Path
) -> None:
    index.hot.drop_all()  # a fresh deployment: PostGIS and Redis hold nothing
    result = nearby("import", "stores", str(write_lines(tmp_path / "shops.csv", [HEADER, *SHOPS])))
    assert result.exit_code == 0, result.output
    assert "rebuild" not in result.output.replace(f"{MISSING}: rebuilt 0", "")
    assert result.output.splitlines()[0].startswith(f"{MISSING}: rebuilt 0 entities")
    assert index.hot.verify(index.conn) == []
    assert nearby("cache", "verify").output.splitlines() == ["0 differences"]
    assert_served_from_redis(client, 60.17, 24.94, len(SHOPS))


def test_a_large_first_import_into_nothing_is_loaded_and_filled_at_once(
    nearby: Nearby,
    index: Index,
    client: FlaskClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fills = fresh_fills(monkeypatch)
    index.hot.drop_all()
    lines = [
        f"{e.id[2:]},{e.name},{e.lat},{e.lng},shop,,{e.popularity}," for e in random_stores(300)
    ]
    result = nearby("import", "stores", str(write_lines(tmp_path / "city.csv", [HEADER, *lines])))
    assert result.exit_code == 0, result.output
    # An empty generation first, then the load's own, filled from the rows as they were inserted.
    assert fills == [index.hot.generation()] and generations(index.hot) == 2
    assert index.hot.verify(index.conn) == []
    assert_served_from_redis(client, 60.2, 24.95, 100)


def test_the_first_feed_imports_into_nothing_are_served_from_redis(
    nearby: Nearby, index: Index, client: FlaskClient, tmp_path: Path
) -> None:
    index.hot.drop_all()
    result = nearby("import", "gbfs", str(gbfs_set(tmp_path / "gbfs", ["v1", "v2"])))
    assert result.exit_code == 0, result.output
    assert "run `nearby cache rebuild`" not in result.output
    assert index.hot.verify(index.conn) == []
    index.hot.drop_all()  # Redis restarted empty between two feeds
    location = {
        "country_code": "FI", "party_id": "VLT", "id": "L1",
        "coordinates": {"latitude": "60.1705", "longitude": "24.9405"},
        "evses": [{"uid": "1", "status": "AVAILABLE"}],
        "last_updated": feed_now().isoformat().replace("+00:00", "Z"),
    }  # fmt: skip
    (tmp_path / "ocpi.json").write_text(json.dumps({"data": [location]}))
    result = nearby("import", "chargers", str(tmp_path / "ocpi.json"), "--format", "ocpi")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith(f"{MISSING}: rebuilt 3 entities")
    assert index.hot.verify(index.conn) == []
    # The station was last seen long ago (stale: not shown), its two bikes now.
    assert_served_from_redis(client, 60.17, 24.94, 3)


@pytest.fixture
def fresh_deployment(settings: IndexSettings) -> Iterator[dict[str, str]]:
    """The environment of a deployment that has nothing yet: a database without the
    schema, and a Redis prefix of its own."""
    token = secrets.token_hex(4)
    name = f"nearby_fresh_{token}"
    admin_url = os.environ.get("NEARBY_TEST_DATABASE_URL") or DEFAULT_DATABASE_URL
    create_database(admin_url, name)
    env = {
        "DATABASE_URL": with_database(settings.database_url, name),
        "REDIS_URL": settings.redis_url,
        "NEARBY_REDIS_PREFIX": f"nearby-fresh-{token}",
    }
    try:
        yield env
    finally:
        client = connect_redis(settings.redis_url)
        HotIndex(client, env["NEARBY_REDIS_PREFIX"]).drop_all()
        client.close()
        drop_database(admin_url, name)


def test_db_upgrade_on_a_fresh_deployment_leaves_a_current_empty_generation(
    fresh_deployment: dict[str, str],
) -> None:
    runner = CliRunner()
    upgrade = runner.invoke(cli, ["db", "upgrade"], env=fresh_deployment)
    assert upgrade.exit_code == 0, upgrade.output
    assert upgrade.output.splitlines()[0] == "database is at the latest schema"
    assert upgrade.output.splitlines()[1].startswith(f"{MISSING}: rebuilt 0 entities")
    verify = runner.invoke(cli, ["cache", "verify"], env=fresh_deployment)
    assert (verify.exit_code, verify.output) == (0, "0 differences\n")
    again = runner.invoke(cli, ["db", "upgrade"], env=fresh_deployment)
    assert again.output.splitlines()[1:] == ["the hot index is current"]


def test_db_upgrade_without_redis_succeeds_with_a_warning(
    fresh_deployment: dict[str, str],
) -> None:
    env = {**fresh_deployment, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    upgrade = CliRunner().invoke(cli, ["db", "upgrade"], env=env)
    assert upgrade.exit_code == 0, upgrade.output
    lines = upgrade.output.splitlines()
    assert lines[0] == "database is at the latest schema"
    assert lines[1].startswith("warning: Redis is not reachable")
    assert lines[1].endswith(
        "the first import, feed sync or server start builds the hot index once it is"
    )


def test_rebuild_if_needed_rebuilds_only_a_missing_index(nearby: Nearby, index: Index) -> None:
    writer.write_entities(index.conn, index.hot, "t", random_stores(20))
    gen = index.hot.generation()
    result = nearby("cache", "rebuild", "--if-needed")
    assert result.output.splitlines() == [
        "nothing to rebuild: the hot index is current, or another process builds it"
    ]
    assert index.hot.generation() == gen
    index.hot.drop_all()
    result = nearby("cache", "rebuild", "--if-needed")
    assert result.output.startswith(f"{MISSING}: rebuilt 20 entities from PostGIS in ")
    assert index.hot.verify(index.conn) == []


def test_a_missing_index_is_not_built_while_another_build_is_marked(index: Index) -> None:
    writer.write_entities(index.conn, index.hot, "t", random_stores(20))
    index.hot.drop_all()

    def meanwhile(gen: str) -> int:
        # A second process finds the index missing while this build runs: it goes on.
        assert ensure_index(index.conn, index.hot) is None
        return 0

    index.hot.build(meanwhile, alone=True, missing=True)
    assert generations(index.hot) == 1
    index.hot.drop_all()
    healed = ensure_index(index.conn, index.hot)
    assert healed is not None and (healed.reason, healed.count) == (MISSING, 20)
    assert ensure_index(index.conn, index.hot) is None
    assert index.hot.verify(index.conn) == []
