"""What the hot index does node by node, whatever its key layout: one Redis or a Redis Cluster.

A deployment's Redis is one server or a cluster of primaries
(:data:`indexer.hot.client.RedisClient`); every function here takes either, so
that callers have one path.  On one server the "primaries" are that server.

- :func:`slot_of` and :func:`slot_tags`: a key's hash slot, and for every slot
  a short hash tag that puts a key in it, so that a key of one's own (a
  generation marker, a counter) can sit beside any group's keys.
- :func:`scan`, :func:`unlink`, :func:`dbsize`, :func:`memory`,
  :func:`load_script`: what SCAN, UNLINK, DBSIZE, INFO memory and SCRIPT LOAD
  mean over every primary.
- :func:`on_primaries`: a function run for each primary, in parallel.
"""

from __future__ import annotations

from binascii import crc_hqx
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from itertools import count, islice, product
from typing import Any, TypeVar

import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from indexer.hot.client import RedisClient

#: Hash slots of a Redis Cluster.
SLOTS = 16384
#: The characters slot tags are made of (none of them a brace, a separator or a
#: colon, so that a tag reads plainly inside any key name).
TAG_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
#: Keys per UNLINK (and per SCAN step): large enough to amortise a round trip,
#: small enough that one command does not hold a node for long.
BATCH = 500

T = TypeVar("T")


def slot_of(key: str | bytes) -> int:
    """The hash slot of ``key`` (of its hash tag, when it has one), as Redis computes it."""
    return int(key_slot(key.encode() if isinstance(key, str) else key))


@cache
def slot_tags() -> tuple[str, ...]:
    """For every slot, the first of the shortest strings of :data:`TAG_ALPHABET` whose
    CRC16 is that slot: a key containing ``{tag}`` lives in it."""
    tags: list[str] = [""] * SLOTS
    missing = SLOTS
    for length in count(1):
        for chars in product(TAG_ALPHABET, repeat=length):
            tag = "".join(chars)
            slot = crc_hqx(tag.encode(), 0) % SLOTS
            if not tags[slot]:
                tags[slot] = tag
                missing -= 1
                if not missing:
                    return tuple(tags)
    raise AssertionError("unreachable: every slot has a tag of four characters")


def slot_tag(slot: int) -> str:
    """The hash tag of ``slot`` (:func:`slot_tags`), braces not included."""
    return slot_tags()[slot]


def primaries(client: RedisClient) -> list[redis.Redis]:
    """A client of each primary: the server itself when ``client`` is not a cluster's."""
    if isinstance(client, RedisCluster):
        return [client.get_redis_connection(node) for node in client.get_primaries()]
    return [client]


def on_primaries(client: RedisClient, work: Callable[[redis.Redis], T]) -> list[T]:
    """``work(node)`` for each primary, in parallel (threads), results in primary order.

    The first exception raised by a ``work`` is raised once every one has ended.
    """
    nodes = primaries(client)
    if len(nodes) == 1:
        return [work(nodes[0])]
    with ThreadPoolExecutor(max_workers=len(nodes), thread_name_prefix="primary") as pool:
        futures = [pool.submit(work, node) for node in nodes]
        return [future.result() for future in futures]


def scan(client: RedisClient, pattern: str, batch: int = BATCH) -> Iterator[Any]:
    """Every key matching ``pattern`` on every primary (SCAN: keys made or removed
    meanwhile may or may not be seen)."""
    for node in primaries(client):
        yield from node.scan_iter(match=pattern, count=batch)


def by_slot(keys: Iterable[Any]) -> dict[int, list[Any]]:
    """``keys`` grouped by hash slot."""
    groups: dict[int, list[Any]] = defaultdict(list)
    for key in keys:
        groups[slot_of(key)].append(key)
    return groups


def unlink(client: RedisClient, keys: Iterable[Any], batch: int = BATCH) -> int:
    """UNLINK ``keys``; how many existed.

    A command holds keys of one slot (what a cluster accepts), pipelined: a
    cluster client's pipeline sends each node its commands and follows
    redirections of slots being moved.
    """
    removed = 0
    iterator = iter(keys)
    # A bounded number of keys in hand at once: a scan of millions streams through.
    while chunk := list(islice(iterator, batch * 20)):
        pipe = client.pipeline(transaction=False)
        for group in by_slot(chunk).values():
            for start in range(0, len(group), batch):
                # execute_command: a cluster pipeline's unlink() takes one key.
                pipe.execute_command("UNLINK", *group[start : start + batch])
        removed += sum(int(result) for result in pipe.execute())
    return removed


def dbsize(client: RedisClient) -> int:
    """Keys held, summed over the primaries."""
    return sum(on_primaries(client, lambda node: int(node.dbsize())))


def memory(client: RedisClient) -> dict[str, int]:
    """INFO memory's integer figures (used_memory, used_memory_dataset, ...) summed
    over the primaries."""
    totals: dict[str, int] = defaultdict(int)
    for info in on_primaries(client, lambda node: node.info("memory")):
        for name, value in info.items():
            if isinstance(value, int):
                totals[name] += value
    return dict(totals)


def load_script(client: RedisClient, source: str) -> str:
    """SCRIPT LOAD ``source`` on every primary; its SHA1."""
    shas = set(on_primaries(client, lambda node: str(node.script_load(source))))
    (sha,) = shas
    return sha
