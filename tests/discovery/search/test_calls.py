"""Script calls fanned out over a cluster's nodes (and sent to one Redis): replies in order,
NOSCRIPT, MOVED, ASK and TRYAGAIN followed, a node down failing only its own calls."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from discovery.search.calls import Call, Fanout, Script
from indexer.hot import cluster as nodes
from indexer.hot.client import RedisClient, connect_redis, raw_client
from tests.redis_cluster import ClusterServers
from tests.redis_server import RedisServer, redis_server

#: Writes ARGV[1] into every key, answers the keys' values and its ARGV[2].
WRITE = """
for _, key in ipairs(KEYS) do redis.call('SET', key, ARGV[1]) end
local values = {}
for i, key in ipairs(KEYS) do values[i] = redis.call('GET', key) end
return {values, ARGV[2]}
"""
#: Answers the key's value, or an error when ARGV[1] says so.
READ = """
if ARGV[1] == 'fail' then return redis.error_reply('asked to fail') end
return redis.call('GET', KEYS[1])
"""


def fresh(source: str) -> Script:
    """``source`` as a script no server has seen (a comment of its own)."""
    return Script(f"-- {secrets.token_hex(8)}\n{source}")


def tagged(tag: int, name: str) -> str:
    return f"calls-test:{{{tag}}}:{name}"


@pytest.fixture(params=["single", "cluster"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisClient]:
    """A bytes client of a Redis of this test's own, or of the test cluster."""
    if request.param == "single":
        with redis_server(tmp_path) as server:
            single = raw_client(connect_redis(server.url))
            yield single
            single.close()
        return
    servers: ClusterServers = request.getfixturevalue("cluster")
    many = raw_client(connect_redis(servers.url, cluster=True))
    yield many
    nodes.unlink(many, list(nodes.scan(many, "calls-test:*")))
    many.close()


def test_replies_come_in_order_from_every_node(client: RedisClient) -> None:
    fanout = Fanout(client)
    write, read = fresh(WRITE), fresh(READ)
    calls = [
        Call(write, [tagged(tag, "a"), tagged(tag, "b")], [f"v{tag}", tag]) for tag in range(300)
    ]
    calls += [Call(read, [tagged(tag, "a")], ["", tag]) for tag in range(300)]
    calls.append(Call(read, [tagged(7, "a")], ["fail"]))
    replies = fanout(calls)
    assert replies[:300] == [[[f"v{t}".encode()] * 2, str(t).encode()] for t in range(300)]
    assert replies[300:600] == [f"v{tag}".encode() for tag in range(300)]
    assert isinstance(replies[600], redis.ResponseError) and "asked to fail" in str(replies[600])
    for node in nodes.primaries(client):
        assert node.script_exists(write.sha, read.sha) == [True, True]
    for node in nodes.primaries(client):
        node.script_flush()
    assert fanout(calls[300:600]) == replies[300:600]
    fanout.close()


def test_a_single_redis_restarted_or_down(tmp_path: Path) -> None:
    with redis_server(tmp_path) as server:
        client = raw_client(connect_redis(server.url))
        fanout = Fanout(client)
        read = fresh(READ)
        calls = [Call(read, [tagged(tag, "a")], [""]) for tag in range(5)]
        client.set(tagged(1, "a"), "x")
        assert fanout(calls) == [None, b"x", None, None, None]
        restart(server)
        assert fanout(calls) == [None] * 5  # empty again, the script loaded again
        server.kill()
        replies = fanout(calls)
        assert all(isinstance(reply, redis.ConnectionError) for reply in replies)
        server.start()
        assert fanout(calls) == [None] * 5
        fanout.close()
        client.close()


def restart(server: RedisServer) -> None:
    server.kill()
    server.start()


def test_a_node_down_fails_only_its_calls(cluster: ClusterServers) -> None:
    client = raw_client(connect_redis(cluster.url, cluster=True))
    fanout = Fanout(client)
    read = fresh(READ)
    keys = [tagged(tag, "a") for tag in range(300)]
    client.mset_nonatomic(dict.fromkeys(keys, "x"))
    lost = cluster.slots_of(2)
    calls = [Call(read, [key], [""]) for key in keys]
    assert fanout(calls) == [b"x"] * len(keys)
    with cluster.down(2):
        replies = fanout(calls)
        for key, reply in zip(keys, replies, strict=True):
            if nodes.slot_of(key) in lost:
                assert isinstance(reply, redis.ConnectionError)
            else:
                assert reply == b"x"
    # Back, empty, without the script: its keys are gone, the others' still there.
    replies = fanout(calls)
    assert replies == [None if nodes.slot_of(key) in lost else b"x" for key in keys]
    assert any(reply is None for reply in replies) and any(replies)
    nodes.unlink(client, keys)
    fanout.close()
    client.close()


def test_moved_slots_are_followed_and_noted(cluster: ClusterServers) -> None:
    client = raw_client(connect_redis(cluster.url, cluster=True))
    fanout = Fanout(client)
    read = fresh(READ)
    keys = [tagged(tag, "a") for tag in range(2000)]
    client.mset_nonatomic({key: key for key in keys})
    before = cluster.slots_of(0)
    cluster.reshard(0, 1, 300)
    moved = before - cluster.slots_of(0)
    target = cluster.nodes[1].address
    assert fanout.slots is not None and all(fanout.slots[slot] != target for slot in moved)
    calls = [Call(read, [key], [""]) for key in keys]
    assert fanout(calls) == [key.encode() for key in keys]
    # Each slot met moved is noted at once, the others with the map read again after.
    assert all(fanout.slots[slot] == target for slot in moved)
    nodes.unlink(client, keys)
    fanout.close()
    client.close()


def test_calls_during_a_migration_are_answered(cluster: ClusterServers) -> None:
    client = raw_client(connect_redis(cluster.url, cluster=True))
    fanout = Fanout(client)  # shared by the threads below
    write = fresh(WRITE)
    keys = [tagged(tag, name) for tag in range(1500) for name in "ab"]
    client.mset_nonatomic(dict.fromkeys(keys, "0"))
    moving = threading.Thread(target=cluster.reshard, args=(2, 0, 400))
    wrong: list[object] = []
    last: dict[int, int] = {}

    def writing(tags: range) -> None:
        rounds = 0
        while moving.is_alive() or not rounds:
            rounds += 1
            value = str(rounds)
            calls = [Call(write, [tagged(t, "a"), tagged(t, "b")], [value, t]) for t in tags]
            replies = fanout(calls)
            wrong.extend(
                reply
                for t, reply in zip(tags, replies, strict=True)
                if reply != [[value.encode()] * 2, str(t).encode()]
            )
            last.update(dict.fromkeys(tags, rounds))

    writers = [threading.Thread(target=writing, args=(range(i, 1500, 3),)) for i in range(3)]
    moving.start()
    for writer in writers:
        writer.start()
    for thread in [moving, *writers]:
        thread.join()
    assert wrong == []
    held = client.mget_nonatomic(keys)
    assert held == [str(last[tag]).encode() for tag in range(1500) for _ in "ab"]
    nodes.unlink(client, keys)
    fanout.close()
    client.close()


def test_a_slot_half_migrated_is_asked_for_and_retried(cluster: ClusterServers) -> None:
    client = raw_client(connect_redis(cluster.url, cluster=True))
    fanout = Fanout(client)
    write, read = fresh(WRITE), fresh(READ)
    source, target = cluster.nodes[0].client(), cluster.nodes[1].client()
    slot = min(cluster.slots_of(0))
    a, b = (f"calls-test:{{{nodes.slot_tag(slot)}}}:{name}" for name in "ab")
    client.set(a, "A")
    client.set(b, "B")
    source_id, target_id = cluster.nodes[0].node_id(), cluster.nodes[1].node_id()
    target.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
    source.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
    try:
        source.execute_command(
            "MIGRATE", "127.0.0.1", cluster.nodes[1].port, "", 0, 5000, "KEYS", a
        )
        # a is at the target (ASK), b still at the source: a call of both must wait.
        both = Call(write, [a, b], ["new", "x"])
        replies = fanout([Call(read, [a], [""]), Call(read, [b], [""]), both])
        assert replies[:2] == [b"A", b"B"]
        assert isinstance(replies[2], redis.exceptions.TryAgainError)
        source.execute_command(
            "MIGRATE", "127.0.0.1", cluster.nodes[1].port, "", 0, 5000, "KEYS", b
        )
        assert fanout([both]) == [[[b"new", b"new"], b"x"]]
        assert fanout([Call(read, [b], [""])]) == [b"new"]
    finally:
        for node in (source, target):
            node.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
    cluster.wait_ok()
    assert fanout([Call(read, [a], [""])]) == [b"new"]  # MOVED now
    assert fanout.slots is not None and fanout.slots[slot] == cluster.nodes[1].address
    client.delete(a, b)
    for node in (source, target):
        node.close()
    fanout.close()
    client.close()
