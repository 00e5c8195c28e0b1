"""The connection to the hot index: Redis clients, its scripts, its generation, apply.lua.

What every part of the hot index (its writes, the bulk fill, ``cache verify``,
the census) shares: a Redis client with the deployment's key prefix (the
layout named in it), a second client of the same server that leaves replies as
bytes (members are binary), the scripts registered with the layout's header
(:mod:`indexer.hot.lua`), and apply.lua's batched calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import cached_property
from itertools import islice
from typing import Any, TypeAlias, overload

import redis
from redis.cluster import ClusterNode, RedisCluster

from indexer.errors import Unavailable
from indexer.hot import layout, lua
from indexer.rules import usage_factor
from indexer.settings import DEFAULT_HALF_LIFE_S

#: Records per script call: large enough to amortise the call, small enough
#: that one call does not hold Redis for long (a query waits behind a running
#: script; docs/bench-live.md weighs query latency against update rate).
APPLY_BATCH = 10
#: What the writers' scripts (apply.lua, masses.lua) are read after (what they share).
WRITER_HELPERS = ("writers.lua",)
#: Masses per masses.lua call (about 40 µs of Redis each), and calls per round
#: trip: Redis runs every command of a read before it serves another client, so
#: a pipeline of calls holds a query back for all of them.
MASSES_BATCH = 25
MASSES_PIPELINE = 2
#: Script calls sent per round trip (Redis serves other clients between them).
PIPELINE_CALLS = 20


class NoGeneration(Unavailable):
    """Redis holds no generation of the index (the next write or healing check builds one)."""


#: What a deployment's Redis is: one server, or a Redis Cluster.
RedisClient: TypeAlias = redis.Redis | RedisCluster
#: Settings every client of the hot index gets (a cluster's node clients too).
CLIENT_SETTINGS: dict[str, Any] = {"socket_connect_timeout": 1.0, "socket_timeout": 5.0}
#: Keys of a cluster client's connection settings that a twin is not given: the
#: database (a cluster has only 0, and refuses to be told) and what belongs to
#: that client object alone (a twin makes its own).
_NOT_COPIED = ("db", "redis_connect_func", "oss_cluster_maint_notifications_handler")


@overload
def connect_redis(url: str) -> redis.Redis: ...
@overload
def connect_redis(url: str, *, cluster: bool) -> RedisClient: ...
def connect_redis(url: str, *, cluster: bool = False) -> RedisClient:
    """A Redis client that decodes replies as text and fails fast when Redis is down;
    with ``cluster``, a Redis Cluster client that learns every node from the one
    ``url`` names (NEARBY_REDIS_CLUSTER=1)."""
    if cluster:
        return RedisCluster.from_url(url, decode_responses=True, **CLIENT_SETTINGS)
    return redis.Redis.from_url(url, decode_responses=True, **CLIENT_SETTINGS)


@overload
def raw_client(client: redis.Redis) -> redis.Redis: ...
@overload
def raw_client(client: RedisClient) -> RedisClient: ...
def raw_client(client: RedisClient) -> RedisClient:
    """A client of the same server or cluster that leaves replies as bytes (members
    are binary)."""
    if isinstance(client, RedisCluster):
        kwargs = dict(client.nodes_manager.connection_kwargs)
        for key in _NOT_COPIED:
            kwargs.pop(key, None)
        kwargs["decode_responses"] = False
        nodes = [ClusterNode(node.host, node.port) for node in client.get_nodes()]
        return RedisCluster(startup_nodes=nodes, **kwargs)
    kwargs = {**client.connection_pool.connection_kwargs, "decode_responses": False}
    pool = redis.ConnectionPool(connection_class=client.connection_pool.connection_class, **kwargs)
    return redis.Redis(connection_pool=pool)


def chunked(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Lists of up to ``size`` items, in order."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


class HotClient:
    """The hot index of one deployment as Redis holds it: clients and a key prefix."""

    def __init__(
        self, client: redis.Redis, prefix: str, half_life_s: float = float(DEFAULT_HALF_LIFE_S)
    ) -> None:
        self.client = client
        #: The usage half-life the generations' bounds are made with (as queries use).
        self.half_life_s = half_life_s
        #: Every key of this index starts with it (the layout is part of it).
        self.prefix = layout.layout_prefix(prefix)
        self._apply = self.script("apply.lua", helpers=WRITER_HELPERS)
        self._masses = self.script("masses.lua", helpers=WRITER_HELPERS)

    def bound_factor(self, gen: str) -> float:
        """Generation ``gen``'s usage bound factor (:mod:`indexer.hot.layout`; 1 when unset)."""
        value = self.client.get(layout.usage_bound_key(self.prefix, gen))
        return 1.0 if value is None else float(value)

    def new_bound_factor(self, now_s: float) -> float:
        """The usage bound factor of a generation made at ``now_s``: the factor of
        :data:`indexer.hot.layout.USAGE_BOUND_LEAD_S` earlier."""
        return usage_factor(now_s - layout.USAGE_BOUND_LEAD_S, self.half_life_s)

    def script(self, name: str, *, raw: bool = False, helpers: tuple[str, ...] = ()) -> Any:
        """Script ``name`` of this package registered (EVALSHA, loaded again after a
        restart), after ``helpers``, on the bytes client with ``raw``."""
        client = self.raw if raw else self.client
        return client.register_script(lua.source("indexer.hot", name, helpers))

    @cached_property
    def raw(self) -> redis.Redis:
        """The same server, replies left as bytes: set members are binary."""
        return raw_client(self.client)

    def close(self) -> None:
        """Close both clients' connections."""
        if "raw" in self.__dict__:
            self.raw.close()
        self.client.close()

    def generation(self) -> str | None:
        """The current generation, or None when there is no hot index."""
        value = self.client.get(layout.gen_key(self.prefix))
        return None if value is None else str(value)

    def require_generation(self) -> str:
        """The current generation; NoGeneration when there is none."""
        gen = self.generation()
        if gen is None:
            raise NoGeneration("Redis holds no index generation")
        return gen

    def apply(
        self, records: Iterable[list[Any]], *, target: str = "live", batch: int = APPLY_BATCH
    ) -> int:
        """Apply apply.lua records; return how many were newer than what Redis held.

        ``batch`` records go in one script call.  Raises :class:`NoGeneration`
        when Redis holds no generation to write to (nothing written).
        """
        applied = 0
        for calls in chunked(chunked(records, batch), PIPELINE_CALLS):
            pipe = self.client.pipeline(transaction=False)
            for call in calls:
                args = [self.prefix, target]
                for record in call:
                    args.extend(record)
                self._apply(keys=[], args=args, client=pipe)
            for result in pipe.execute():
                if result == layout.NO_GENERATION:
                    raise NoGeneration("Redis holds no index generation")
                applied += int(result)
        return applied

    def apply_masses(
        self, records: Iterable[tuple[str, int, int, float]], *, batch: int = MASSES_BATCH
    ) -> list[str]:
        """Write new usage masses into the members held (masses.lua): ``records`` of
        (id, the revision changed, the revision made, the new mass), ids distinct.
        Returns the ids the script could not patch, whose whole rows must be
        applied; raises :class:`NoGeneration` when there is no generation."""
        whole: list[str] = []
        for calls in chunked(chunked(records, batch), MASSES_PIPELINE):
            pipe = self.client.pipeline(transaction=False)
            for call in calls:
                args: list[Any] = [self.prefix, "live"]
                for entity_id, old_rev, rev, mass in call:
                    args += (entity_id, old_rev, rev, repr(float(mass)))
                self._masses(keys=[], args=args, client=pipe)
            for result in pipe.execute():
                if result == layout.NO_GENERATION:
                    raise NoGeneration("Redis holds no index generation")
                whole.extend(result)
        return whole
