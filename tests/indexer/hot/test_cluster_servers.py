"""The test Redis Cluster itself: it answers, a killed node fails only its slots, a reshard
moves keys while clients run."""

from __future__ import annotations

import threading

import pytest
import redis
from redis.crc import key_slot

from tests.redis_cluster import ClusterServers

KEYS = [f"servers-test:{i}" for i in range(2000)]


def owners(cluster: ClusterServers, keys: list[str]) -> dict[str, int]:
    """The index of the node that serves each key's slot."""
    served = [cluster.slots_of(i) for i in range(len(cluster.nodes))]
    return {
        key: next(i for i, slots in enumerate(served) if key_slot(key.encode()) in slots)
        for key in keys
    }


def test_the_cluster_serves_every_slot_over_three_masters(cluster: ClusterServers) -> None:
    served = [cluster.slots_of(i) for i in range(len(cluster.nodes))]
    assert len(served) == 3 and all(served)
    assert set().union(*served) == set(range(16384))
    assert sum(len(slots) for slots in served) == 16384
    client = cluster.client()
    try:
        client.mset_nonatomic({key: key[::-1] for key in KEYS})
        assert client.mget_nonatomic(KEYS) == [key[::-1] for key in KEYS]
        assert len(client.get_primaries()) == 3
    finally:
        client.delete(*KEYS)
        client.close()


def test_a_killed_node_fails_only_its_slots_and_comes_back_empty(cluster: ClusterServers) -> None:
    client = cluster.client()
    client.mset_nonatomic({key: "v" for key in KEYS})
    owner = owners(cluster, KEYS)
    victims = {key for key in KEYS if owner[key] == 1}
    assert victims and len(victims) < len(KEYS)
    try:
        with cluster.down(1):
            for key in KEYS[:300]:
                other = cluster.nodes[owner[key]].client()
                if key in victims:
                    with pytest.raises(redis.ConnectionError):
                        other.get(key)
                else:
                    assert other.get(key) == b"v"
                other.close()
        fresh = cluster.client()
        held = dict(zip(KEYS, fresh.mget_nonatomic(KEYS), strict=True))
        assert {key for key, value in held.items() if value is None} == victims
        assert all(value == "v" for key, value in held.items() if key not in victims)
        assert all(cluster.nodes[i].state_ok() for i in range(3))
        fresh.close()
    finally:
        client.close()
        cleanup = cluster.client()
        cleanup.delete(*KEYS)
        cleanup.close()


def test_a_reshard_moves_keys_while_a_client_writes(cluster: ClusterServers) -> None:
    client = cluster.client()
    client.mset_nonatomic({key: "0" for key in KEYS})
    before = cluster.slots_of(0), cluster.slots_of(2)
    stop = threading.Event()
    written: dict[str, str] = {}
    errors: list[BaseException] = []

    def write() -> None:
        writer = cluster.client()
        round_ = 0
        try:
            while not stop.is_set():
                round_ += 1
                for key in KEYS[::7]:
                    writer.set(key, str(round_))
                    written[key] = str(round_)
                    assert writer.get(key) == str(round_)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)
        finally:
            writer.close()

    thread = threading.Thread(target=write)
    thread.start()
    try:
        cluster.reshard(0, 2, 200)
    finally:
        stop.set()
        thread.join()
    moved = before[0] - cluster.slots_of(0)
    assert len(moved) == 200 and cluster.slots_of(2) == before[1] | moved
    assert errors == []
    target = cluster.nodes[2].client()
    try:
        for key in KEYS:
            expected = written.get(key, "0")
            assert client.get(key) == expected
            if key_slot(key.encode()) in moved:
                assert target.get(key) == expected.encode()
    finally:
        target.close()
        client.delete(*KEYS)
        client.close()
    assert all(cluster.nodes[i].state_ok() for i in range(3))
