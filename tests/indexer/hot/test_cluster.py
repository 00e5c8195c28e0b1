"""Node-level operations over one Redis and over a Redis Cluster: slots and their tags,
scan, unlink, sizes, scripts, work per primary."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from indexer.hot import cluster as nodes
from indexer.hot.client import RedisClient, connect_redis
from tests.redis_cluster import ClusterServers
from tests.redis_server import redis_server

KEYS = [f"ops-test:{i}:{{{i % 97}}}" for i in range(3000)]


@pytest.fixture(params=["single", "cluster"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisClient]:
    """A client of a Redis of this test's own, or of the test cluster (its keys removed after)."""
    if request.param == "single":
        with redis_server(tmp_path) as server:
            single = connect_redis(server.url)
            yield single
            single.close()
        return
    servers: ClusterServers = request.getfixturevalue("cluster")
    many = connect_redis(servers.url, cluster=True)
    yield many
    nodes.unlink(many, list(nodes.scan(many, "ops-test:*")))
    many.close()


def test_every_slot_has_a_short_tag_of_its_own() -> None:
    tags = nodes.slot_tags()
    assert len(tags) == nodes.SLOTS == len(set(tags))
    assert all(0 < len(tag) <= 4 and set(tag) <= set(nodes.TAG_ALPHABET) for tag in tags)
    for slot, tag in enumerate(tags):
        assert nodes.slot_of("{" + tag + "}") == slot
        assert nodes.slot_of(f"nearby:l2:7:{{{tag}}}:gen".encode()) == slot
    assert nodes.slot_tag(1234) == tags[1234]


def test_slots_are_the_servers(cluster: ClusterServers) -> None:
    node = cluster.nodes[0].client()
    try:
        for key in [*KEYS[:200], "plain", "{}empty-tag", "a{b}c{d}", "é{ü}"]:
            assert nodes.slot_of(key) == node.execute_command("CLUSTER", "KEYSLOT", key)
    finally:
        node.close()


def test_scan_and_unlink_reach_every_primary(client: RedisClient) -> None:
    for key in KEYS:
        client.set(key, "x")
    client.set("other-test:1", "x")
    assert sorted(nodes.scan(client, "ops-test:*", batch=100)) == sorted(KEYS)
    gone = KEYS[::3]
    assert nodes.unlink(client, [*gone, "ops-test:never-made"], batch=7) == len(gone)
    assert sorted(nodes.scan(client, "ops-test:*")) == sorted(set(KEYS) - set(gone))
    assert nodes.unlink(client, iter(KEYS)) == len(KEYS) - len(gone)
    assert list(nodes.scan(client, "ops-test:*")) == []
    assert client.get("other-test:1") == "x"
    client.delete("other-test:1")


def test_sizes_are_summed_over_the_primaries(client: RedisClient) -> None:
    before_keys, before = nodes.dbsize(client), nodes.memory(client)
    value = "v" * 2000
    for key in KEYS:
        client.set(key, value)
    per_node = nodes.primaries(client)
    assert len(per_node) == (3 if isinstance(client, RedisCluster) else 1)
    assert nodes.dbsize(client) == sum(int(node.dbsize()) for node in per_node)
    assert nodes.dbsize(client) - before_keys == len(KEYS)
    after = nodes.memory(client)
    assert after["used_memory"] - before["used_memory"] >= len(KEYS) * len(value)
    assert after["used_memory_dataset"] > 0


def test_a_script_loaded_everywhere_runs_on_every_slot(client: RedisClient) -> None:
    source = "return redis.call('SET', KEYS[1], ARGV[1])"
    sha = nodes.load_script(client, source)
    for node in nodes.primaries(client):
        assert node.script_exists(sha) == [True]
    for key in KEYS[:200]:
        client.evalsha(sha, 1, key, key)
    assert [client.get(key) for key in KEYS[:200]] == KEYS[:200]


def test_work_runs_on_each_primary_at_once(client: RedisClient) -> None:
    primaries = nodes.primaries(client)
    # Every call waits for all the others: one run after another would break it.
    together = threading.Barrier(len(primaries), timeout=60)

    def port_of(node: redis.Redis) -> int:
        together.wait()
        return int(node.connection_pool.connection_kwargs["port"])

    ports = nodes.on_primaries(client, port_of)
    assert ports == [int(node.connection_pool.connection_kwargs["port"]) for node in primaries]
    assert len(set(ports)) == len(primaries)
    with pytest.raises(ZeroDivisionError):
        nodes.on_primaries(client, lambda node: 1 // 0)


def test_unlink_follows_slots_that_move_meanwhile(cluster: ClusterServers) -> None:
    client = connect_redis(cluster.url, cluster=True)
    moving = threading.Thread(target=cluster.reshard, args=(1, 0, 300))
    moving.start()
    rounds = []
    try:
        while moving.is_alive() or not rounds:
            client.mset_nonatomic(dict.fromkeys(KEYS, "x"))
            rounds.append(nodes.unlink(client, KEYS, batch=50))
            assert list(nodes.scan(client, "ops-test:*")) == []
    finally:
        moving.join()
        client.close()
    assert rounds == [len(KEYS)] * len(rounds)
