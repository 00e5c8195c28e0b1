"""Script calls fanned out over the nodes of a Redis Cluster (or sent to one Redis).

A query whose covering spans several hash-tag groups makes one script call per
group, each within one hash slot.  :class:`Fanout` sends a list of such calls:
the calls of one node pipelined on one connection, every node's sent before any
reply is read, so that the nodes work at once and a query waits about as long
as its slowest node.  Commands are packed and replies parsed by hiredis over
connections of its own, for the reasons :class:`discovery.search.caller.ScriptCaller`
gives (redis-py's general path costs more than the call, and its pool's count
of connections leaks on errors).

What comes back is one item per call, in order: its reply, or the exception
that ended it.  The calls of one list are independent: a call sent again (below)
runs after calls that came after it.  Along the way:

- NOSCRIPT: the node gets the script (SCRIPT LOAD) and the call goes again;
- MOVED: the slot is noted at its new node and the call goes there; the slot
  map is read again from the cluster after the calls (at most once in
  :data:`REFRESH_MIN_S`), so that the other moved slots are found too;
- ASK (a slot being migrated, the key already moved): the call goes to the
  named node after ASKING;
- TRYAGAIN (a multi-key call during a migration): it goes again after a pause;
- a node that does not answer: its calls come back as the connection error,
  the other nodes' replies are returned all the same.

Redirections and retries are bounded (:data:`ROUNDS`): a call still redirected
or refused after them comes back as the last error it met.  An idle connection
found closed (the node restarted, the client killed) makes its calls go again
once on a new connection: the scripts sent are reads, or writes guarded by
revisions, so that a call received twice does no harm.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict, deque
from collections.abc import Sequence
from typing import Any, NamedTuple

import hiredis
import redis
from redis.cluster import RedisCluster

from indexer.hot.client import RedisClient
from indexer.hot.cluster import SLOTS, slot_of

#: Rounds of sending (redirections, reloads and retries included) before a call
#: is given up as failed.
ROUNDS = 6
#: Seconds to wait before sending again calls answered TRYAGAIN.
TRYAGAIN_S = 0.02
#: Least seconds between two readings of the cluster's slot map.
REFRESH_MIN_S = 1.0
#: The node name calls to a single Redis go to.
SINGLE = ""
#: Errors that mean a node's connection is unusable (it is closed afterwards).
BROKEN = (redis.ConnectionError, redis.TimeoutError, OSError)


class Script:
    """A Lua script as calls name it: its source and its SHA1."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


class Call(NamedTuple):
    """One script call: every key it touches (all in one hash slot), then its ARGV."""

    script: Script
    keys: Sequence[Any]
    args: Sequence[Any]


class Sending(NamedTuple):
    """A call on its way: its place in the list, the node it goes to, whether ASKING first."""

    at: int
    node: str
    asking: bool = False


class Endpoint:
    """Connections to one node, made with its client's settings and kept in a free list
    (each thread or greenlet takes one at a time)."""

    def __init__(self, connection_class: Any, settings: dict[str, Any]) -> None:
        self.connection_class = connection_class
        self.settings = settings
        self.idle: deque[Any] = deque()

    def take(self) -> tuple[Any, bool]:
        """An idle connection (True: it was idle, perhaps closed since) or a new one."""
        try:
            return self.idle.pop(), True
        except IndexError:
            return self.connection_class(**self.settings), False

    def give(self, connection: Any) -> None:
        """Keep ``connection`` for the next call."""
        self.idle.append(connection)

    def close(self) -> None:
        """Close the idle connections."""
        while self.idle:
            self.idle.pop().disconnect()

    def elsewhere(self, host: str, port: int) -> Endpoint:
        """An endpoint with these settings for another node."""
        return Endpoint(self.connection_class, {**self.settings, "host": host, "port": port})


def read_one(connection: Any) -> Any:
    """The next reply on ``connection``; an error reply as its exception (not raised)."""
    try:
        return connection.read_response()
    except redis.ResponseError as exc:
        return exc


class Round:
    """What one round of sending leaves: calls to send again, scripts to load first."""

    def __init__(self) -> None:
        self.again: list[Sending] = []
        self.loads: list[tuple[str, int]] = []
        self.pause = False
        self.moved = False


class Fanout:
    """Sends lists of script calls over a cluster's nodes (or to one Redis); see the module."""

    def __init__(self, client: RedisClient) -> None:
        self.client = client
        self.endpoints: dict[str, Endpoint] = {}
        #: Each slot's node; None: one Redis.
        self.slots: list[str] | None = None
        self.refreshed_at = -REFRESH_MIN_S
        if isinstance(client, RedisCluster):
            self.refresh(force=True)
        else:
            pool = client.connection_pool
            self.endpoints[SINGLE] = Endpoint(pool.connection_class, pool.connection_kwargs)

    def refresh(self, *, force: bool = False) -> None:
        """Read the slot map again from the cluster (unless it was read lately); with
        ``force``, take the cluster client's map as it is."""
        client = self.client
        if not isinstance(client, RedisCluster):
            return
        now = time.monotonic()
        if not force and now - self.refreshed_at < REFRESH_MIN_S:
            return
        if not force:
            self.refreshed_at = now
            try:
                client.nodes_manager.initialize()
            except redis.RedisError:
                return  # no node answered: the map in hand is the best there is
        for node in client.get_nodes():
            if node.name not in self.endpoints:
                pool = client.get_redis_connection(node).connection_pool
                self.endpoints[node.name] = Endpoint(pool.connection_class, pool.connection_kwargs)
        # Any: the redis stubs take a slot for a str.
        serving: Any = client.nodes_manager.get_node_from_slot
        self.slots = [serving(slot).name for slot in range(SLOTS)]

    def node_of(self, call: Call) -> str:
        """The node that serves the call's slot (of its first key; slot 0 without keys)."""
        if self.slots is None:
            return SINGLE
        return self.slots[slot_of(call.keys[0]) if call.keys else 0]

    def endpoint(self, name: str) -> Endpoint:
        """The endpoint of node ``name`` (host:port), made on first use."""
        found = self.endpoints.get(name)
        if found is None:
            host, _, port = name.rpartition(":")
            found = next(iter(self.endpoints.values())).elsewhere(host, int(port))
            found = self.endpoints.setdefault(name, found)
        return found

    def close(self) -> None:
        """Close every idle connection."""
        for endpoint in self.endpoints.values():
            endpoint.close()

    def __call__(self, calls: Sequence[Call]) -> list[Any]:
        """Each call's reply, or the exception that ended it, in the order of ``calls``."""
        results: list[Any] = [None] * len(calls)
        pending = [Sending(i, self.node_of(call)) for i, call in enumerate(calls)]
        moved = False
        for _ in range(ROUNDS):
            if not pending:
                break
            state = self.round(calls, pending, results)
            moved = moved or state.moved
            self.load(calls, state, results)
            if state.pause:
                time.sleep(TRYAGAIN_S)
            pending = state.again
        # A call still pending after every round keeps the last error it met.
        if moved:
            self.refresh()
        return results

    def round(self, calls: Sequence[Call], pending: list[Sending], results: list[Any]) -> Round:
        """Send every pending call (each node's pipelined, all nodes before any reply is
        read), then read and sort out the replies."""
        state = Round()
        by_node: dict[str, list[Sending]] = defaultdict(list)
        for sending in pending:
            by_node[sending.node].append(sending)
        sent = []
        for name, group in by_node.items():
            endpoint = self.endpoint(name)
            connection, reused = endpoint.take()
            try:
                connection.send_packed_command(packed(calls, group), check_health=False)
            except BROKEN as exc:
                self.broken(endpoint, connection, reused, group, exc, results, state)
                continue
            sent.append((endpoint, connection, reused, group))
        for endpoint, connection, reused, group in sent:
            self.collect(endpoint, connection, reused, group, results, state)
        return state

    def collect(
        self,
        endpoint: Endpoint,
        connection: Any,
        reused: bool,
        group: list[Sending],
        results: list[Any],
        state: Round,
    ) -> None:
        """Read the replies of one node's calls and sort them out."""
        replies: list[Any] = []
        try:
            for sending in group:
                if sending.asking:
                    read_one(connection)  # ASKING's +OK
                replies.append(read_one(connection))
        except BROKEN as exc:
            self.broken(endpoint, connection, reused and not replies, group[len(replies) :], exc,
                        results, state)  # fmt: skip
        else:
            endpoint.give(connection)
        for sending, reply in zip(group, replies, strict=False):
            self.sort_out(sending, reply, results, state)

    def broken(
        self,
        endpoint: Endpoint,
        connection: Any,
        again: bool,
        group: list[Sending],
        exc: BaseException,
        results: list[Any],
        state: Round,
    ) -> None:
        """A node's connection failed: its calls go again on a new connection when
        ``again`` (it had been idle, the node likely closed it), else fail."""
        connection.disconnect()
        for sending in group:
            results[sending.at] = exc
        if again:
            endpoint.close()
            state.again.extend(group)
            return
        state.moved = True  # a node gone may have handed its slots over

    def sort_out(self, sending: Sending, reply: Any, results: list[Any], state: Round) -> None:
        """Keep a reply (an error reply too, until the call is answered), and send
        the call again where a redirection says."""
        results[sending.at] = reply
        if not isinstance(reply, redis.ResponseError):
            return
        if isinstance(reply, redis.exceptions.MovedError):
            node = f"{reply.host}:{reply.port}"
            if self.slots is not None:
                self.slots[reply.slot_id] = node
            state.again.append(Sending(sending.at, node))
            state.moved = True
        elif isinstance(reply, redis.exceptions.AskError):
            state.again.append(Sending(sending.at, f"{reply.host}:{reply.port}", True))
        elif isinstance(reply, redis.exceptions.TryAgainError):
            state.again.append(sending)
            state.pause = True
        elif isinstance(reply, redis.exceptions.NoScriptError):
            state.again.append(sending)
            state.loads.append((sending.node, sending.at))

    def load(self, calls: Sequence[Call], state: Round, results: list[Any]) -> None:
        """SCRIPT LOAD what nodes lacked; the calls of a script that could not be loaded fail."""
        wanted: dict[tuple[str, str], list[int]] = defaultdict(list)
        for node, index in state.loads:
            wanted[node, calls[index].script.sha].append(index)
        failed: set[int] = set()
        for (node, _), indexes in wanted.items():
            try:
                self.send_one(node, ("SCRIPT", "LOAD", calls[indexes[0]].script.source))
            except redis.RedisError as exc:
                for index in indexes:
                    results[index] = exc
                failed.update(indexes)
        if failed:
            state.again = [sending for sending in state.again if sending.at not in failed]

    def send_one(self, node: str, command: tuple[Any, ...]) -> Any:
        """One command to ``node``, its reply (an error reply raised)."""
        endpoint = self.endpoint(node)
        connection, _ = endpoint.take()
        try:
            connection.send_packed_command([hiredis.pack_command(command)], check_health=False)
            reply = connection.read_response()
        except redis.ResponseError:
            endpoint.give(connection)
            raise
        except BaseException:
            connection.disconnect()
            raise
        endpoint.give(connection)
        return reply


def packed(calls: Sequence[Call], group: list[Sending]) -> list[bytes]:
    """The commands of ``group``'s calls, packed (ASKING before those redirected so)."""
    commands = []
    for sending in group:
        call = calls[sending.at]
        if sending.asking:
            commands.append(hiredis.pack_command(("ASKING",)))
        command = ("EVALSHA", call.script.sha, len(call.keys), *call.keys, *call.args)
        commands.append(hiredis.pack_command(command))
    return commands
