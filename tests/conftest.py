"""Fixtures: a PostGIS database and a Redis namespace of the test run's own.

The database is made fresh from the PostGIS template for each run and dropped
afterwards; Redis keys live under a prefix of the run's own and are deleted.
Never the demo's.  ``make test`` passes the server URLs in
NEARBY_TEST_DATABASE_URL / NEARBY_TEST_REDIS_URL.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from click.testing import CliRunner, Result
from flask import Flask
from flask.testing import FlaskClient

from discovery.api.app import create_app
from discovery.cli import cli
from discovery.settings import ApiSettings
from indexer.hot import layout
from indexer.hot.index import HotIndex, connect_redis
from indexer.model import Entity
from indexer.settings import DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL, IndexSettings, UsageSettings
from indexer.store import db
from tests.pg_replica import ReplicaServer, replica_server
from tests.redis_cluster import ClusterServers, redis_cluster

API_KEY = "test-key"
#: The cursor secret of the test app and of the servers the tests start (one
#: deployment: each accepts the other's cursors).
CURSOR_SECRET = "test-cursor-secret-0123456789"
CURSOR_KEY = CURSOR_SECRET.encode()


def with_database(url: str, name: str) -> str:
    """The same server URL naming another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def create_database(admin_url: str, name: str) -> None:
    """Create ``name`` from the PostGIS template if there is one, else with PostGIS added."""
    template = urlsplit(admin_url).path.strip("/") + "_template"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (template,)).fetchone()
        if found:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            return
        conn.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(with_database(admin_url, name), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")


def drop_database(admin_url: str, name: str) -> None:
    """Drop ``name``, closing whatever is still connected to it."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def settings() -> Iterator[IndexSettings]:
    """Settings pointing at this run's own database and Redis namespace."""
    admin_url = os.environ.get("NEARBY_TEST_DATABASE_URL") or DEFAULT_DATABASE_URL
    redis_url = os.environ.get("NEARBY_TEST_REDIS_URL") or DEFAULT_REDIS_URL
    token = secrets.token_hex(4)
    name = f"nearby_test_{token}"
    create_database(admin_url, name)
    test_settings = IndexSettings(
        database_url=with_database(admin_url, name),
        redis_url=redis_url,
        redis_prefix=f"nearby-test-{token}",
        # Each batch counted in its own request; the rounds have tests of their own.
        usage=UsageSettings(round_s=0.0),
    )
    try:
        db.upgrade(test_settings.database_url)
        yield test_settings
    finally:
        client = connect_redis(redis_url)
        hot = HotIndex(client, test_settings.redis_prefix)
        # The index's keys, and the run's others (the catalog, the streams tests made).
        hot.drop_all()
        hot.drop_matching(f"{test_settings.redis_prefix}:*")
        client.close()
        drop_database(admin_url, name)


@pytest.fixture(scope="session")
def cli_env(settings: IndexSettings) -> dict[str, str]:
    """The environment under which the CLI sees the test index."""
    return {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "NEARBY_REDIS_PREFIX": settings.redis_prefix,
        "NEARBY_API_KEYS": API_KEY,
        # Tests that drop the hot index expect PostGIS to answer until they
        # rebuild it; the healing tests turn it on for servers of their own.
        "NEARBY_HEAL_CHECK_S": "0",
        "NEARBY_CURSOR_SECRET": CURSOR_SECRET,
        # Each batch of events counted in its own request, as in the in-process tests.
        "NEARBY_EVENT_ROUND_S": "0",
    }


@pytest.fixture(scope="session")
def replica(settings: IndexSettings) -> Iterator[ReplicaServer]:
    """A streaming replica of the test server, made on first use (skips when none can be)."""
    with replica_server(settings.database_url) as server:
        yield server


@pytest.fixture(scope="session")
def cluster_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterServers]:
    """A 3-master Redis Cluster of this run's own, started on first use (skips without
    redis-server and redis-cli)."""
    with redis_cluster(tmp_path_factory.mktemp("cluster")) as servers:
        yield servers


@pytest.fixture
def cluster(cluster_servers: ClusterServers) -> ClusterServers:
    """The run's Redis Cluster, every node up and ok (a test that kills one restarts it)."""
    cluster_servers.wait_ok()
    return cluster_servers


@dataclass
class Index:
    """A clean index for one test: settings, a PostGIS connection, the hot index."""

    settings: IndexSettings
    conn: psycopg.Connection
    hot: HotIndex

    def count(self) -> int:
        """Entities in PostGIS."""
        with self.conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM entities")
            return int((cur.fetchone() or (0,))[0])

    @contextmanager
    def refusing(self, name: str) -> Iterator[None]:
        """While inside, PostGIS refuses to insert or update an entity named ``name``
        (a batch that the database refuses part-way)."""
        with self.conn.cursor() as cur:
            cur.execute(
                f"""
                CREATE FUNCTION refuse_named() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF NEW.name = '{name}' THEN RAISE EXCEPTION 'refused by test'; END IF;
                    RETURN NEW;
                END $$;
                CREATE TRIGGER refuse_named BEFORE INSERT OR UPDATE ON entities
                    FOR EACH ROW EXECUTE FUNCTION refuse_named();
                """
            )
        self.conn.commit()
        try:
            yield
        finally:
            self.conn.rollback()
            with self.conn.cursor() as cur:
                cur.execute("DROP TRIGGER refuse_named ON entities; DROP FUNCTION refuse_named()")
            self.conn.commit()

    def member(self, entity_id: str) -> bytes | None:
        """The entity's member in its cell sets, as its group holds it (None: not indexed)."""
        gen = self.hot.require_generation()
        held = self.hot.client.hget(layout.loc_key(self.hot.prefix, gen), entity_id)
        if held is None or len(held.split()) < 2:
            return None
        tag = held.split()[1]
        found = self.hot.raw.hget(layout.member_key(self.hot.prefix, gen, tag), entity_id)
        return None if found is None else bytes(found)


@pytest.fixture
def index(settings: IndexSettings) -> Iterator[Index]:
    """An empty index (PostGIS table and a fresh, empty Redis generation)."""
    conn = db.connect(settings.database_url)
    client = connect_redis(settings.redis_url)
    hot = HotIndex(client, settings.redis_prefix)
    with conn.cursor() as cur:
        cur.execute("TRUNCATE entities, hot_pending")
    conn.commit()
    hot.drop_all()
    hot.rebuild(conn)
    try:
        yield Index(settings, conn, hot)
    finally:
        conn.close()
        client.close()


@pytest.fixture
def entities(index: Index) -> Iterator[list[Entity]]:
    """The usage tests' stores (tests.factories.seed_usage) and catalog, on a clean usage
    slate before and after (a module may give its own ``entities``)."""
    from tests.factories import clear_catalog, seed_usage  # factories import this module

    clear_catalog(index)
    yield seed_usage(index)
    clear_catalog(index)


@pytest.fixture
def api_settings(settings: IndexSettings) -> ApiSettings:
    """API settings over the test index, with one API key and the debug map on (no
    healing: tests that drop the hot index expect PostGIS to answer until they rebuild)."""
    return ApiSettings(
        index=settings,
        api_keys=frozenset({API_KEY}),
        debug=True,
        heal_check_s=0.0,
        cursor_key=CURSOR_KEY,
    )


@pytest.fixture
def app(index: Index, api_settings: ApiSettings) -> Iterator[Flask]:
    """The API app over a clean index."""
    application = create_app(api_settings)
    application.config["TESTING"] = True
    yield application
    application.extensions["nearby"].close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of the API."""
    return app.test_client()


@pytest.fixture
def redis_down_app(index: Index, api_settings: ApiSettings) -> Iterator[Flask]:
    """The API app with Redis refusing connections (a port nothing listens on)."""
    down = dataclasses.replace(api_settings.index, redis_url="redis://127.0.0.1:1/0")
    application = create_app(dataclasses.replace(api_settings, index=down))
    yield application
    application.extensions["nearby"].close()


@pytest.fixture
def nearby(cli_env: dict[str, str]) -> Callable[..., Result]:
    """Run the ``nearby`` CLI against the test index: nearby("cache", "verify")."""
    runner = CliRunner()

    def run(*args: str, input: str | bytes | None = None) -> Result:
        return runner.invoke(cli, list(args), env=cli_env, input=input, catch_exceptions=False)

    return run
