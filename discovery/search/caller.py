"""Script calls over connections of their own: EVALSHA packed and parsed by hiredis."""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Sequence
from typing import Any

import hiredis
import redis


class ScriptCaller:
    """Calls one script of this package with EVALSHA over connections of its own,
    the command packed and the reply parsed by hiredis.

    A search is one call, and redis-py's general path (pool checkout, retry,
    response callbacks) cost about 160 µs of CPU a call against some 90 µs so
    (measured on a search's arguments and replies).  Connections are made with
    ``client``'s pool's class and settings (auth, TLS, database and timeouts)
    but not by the pool, and kept in a free list: a call takes one, or makes
    one, and gives it back, so that threads and greenlets alike each use one at
    a time.  (The pool counts each connection it makes against its
    ``max_connections`` until one is released to it, which these never are: a
    connection dropped after an error kept its count, and after a hundred
    errors every search failed with MaxConnectionsError while Redis was well.)
    A server that lost the script (restarted, flushed) gets it again; an idle
    connection found closed (Redis restarted, the client killed) makes the call
    go again once on a new connection, the other idle ones dropped; any other
    error drops the connection and is raised.
    """

    def __init__(self, client: redis.Redis, source: str) -> None:
        self.pool = client.connection_pool
        self.source = source
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()
        self.idle: deque[Any] = deque()

    def __call__(self, args: Sequence[Any]) -> Any:
        """The script's reply to ``args`` (its ARGV; no keys)."""
        packed = [hiredis.pack_command(("EVALSHA", self.sha, 0, *args))]
        try:
            return self.send(packed)
        except redis.exceptions.NoScriptError:
            load = ("SCRIPT", "LOAD", self.source)
            self.send([hiredis.pack_command(load)])  # type: ignore[arg-type]  # stubs: a 1-tuple
            return self.send(packed)

    def connect(self) -> Any:
        """A new connection with the pool's settings (not counted by the pool)."""
        return self.pool.connection_class(**self.pool.connection_kwargs)

    def send(self, packed: list[bytes]) -> Any:
        """Send one packed command on an idle connection (or a new one); its reply.

        The commands sent are scripts that only read: sending one again is harmless.
        """
        try:
            connection = self.idle.pop()
        except IndexError:
            return self.exchange(self.connect(), packed)
        try:
            return self.exchange(connection, packed)
        except redis.ConnectionError:
            self.close()  # idle since before the server closed them, most likely
            return self.exchange(self.connect(), packed)

    def exchange(self, connection: Any, packed: list[bytes]) -> Any:
        """Send on ``connection``, read the reply, give the connection back (or drop it)."""
        try:
            connection.send_packed_command(packed, check_health=False)
            reply = connection.read_response()
        except redis.ResponseError:
            self.idle.append(connection)
            raise
        except BaseException:
            connection.disconnect()
            raise
        self.idle.append(connection)
        return reply

    def close(self) -> None:
        """Close the idle connections."""
        while self.idle:
            self.idle.pop().disconnect()
