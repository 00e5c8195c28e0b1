"""Naming a Redis Cluster: NEARBY_REDIS_CLUSTER=1 with REDIS_URL a seed node."""

from __future__ import annotations

import pytest
import redis
from redis.cluster import RedisCluster

from indexer.hot.client import connect_redis, raw_client
from indexer.settings import ConfigError, IndexSettings
from tests.redis_cluster import ClusterServers


def test_a_cluster_is_named_by_a_flag_beside_a_seed_url() -> None:
    assert IndexSettings.from_env({}).redis_cluster is False
    settings = IndexSettings.from_env(
        {"REDIS_URL": "rediss://:secret@seed.example:7000", "NEARBY_REDIS_CLUSTER": "1"}
    )
    assert settings.redis_cluster is True
    assert settings.redis_url == "rediss://:secret@seed.example:7000"


@pytest.mark.parametrize(
    ("environment", "variable"),
    [
        ({"NEARBY_REDIS_CLUSTER": "yes please"}, "NEARBY_REDIS_CLUSTER"),
        ({"NEARBY_REDIS_CLUSTER": "1", "REDIS_URL": "unix:///run/redis.sock"}, "REDIS_URL"),
        ({"NEARBY_REDIS_CLUSTER": "1", "REDIS_URL": "redis://seed:7000/3"}, "REDIS_URL"),
    ],
)
def test_a_malformed_cluster_setting_is_named(environment: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        IndexSettings.from_env(environment)
    assert caught.value.variable == variable


def test_connect_redis_makes_a_cluster_client_and_its_bytes_twin(cluster: ClusterServers) -> None:
    client = connect_redis(cluster.url, cluster=True)
    assert isinstance(client, RedisCluster)
    raw = raw_client(client)
    assert isinstance(raw, RedisCluster)
    try:
        names = {node.name for node in client.get_primaries()}
        assert names == {node.address for node in cluster.nodes}
        assert {node.name for node in raw.get_primaries()} == names
        keys = [f"client-test:{i}" for i in range(50)]
        for key in keys:
            client.set(key, "é" + key)
        assert [client.get(key) for key in keys] == ["é" + key for key in keys]
        assert [raw.get(key) for key in keys] == [("é" + key).encode() for key in keys]
        for node in raw.get_primaries():
            settings = node.redis_connection.connection_pool.connection_kwargs
            assert settings["decode_responses"] is False
            assert settings["socket_timeout"] == 5.0
            assert settings["socket_connect_timeout"] == 1.0
        client.delete(*keys)
    finally:
        raw.close()
        client.close()


def test_connect_redis_without_the_flag_is_one_server(settings: IndexSettings) -> None:
    client = connect_redis(settings.redis_url)
    assert type(client) is redis.Redis
    raw = raw_client(client)
    try:
        assert raw.connection_pool.connection_kwargs["decode_responses"] is False
        assert raw.ping()
    finally:
        raw.close()
        client.close()
