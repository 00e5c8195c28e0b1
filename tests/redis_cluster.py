"""A Redis Cluster of a test run's own: three masters on free ports, no replicas, no persistence.

:class:`ClusterServers` starts the redis-server processes (``cluster-enabled
yes``) in a temporary directory, joins them with ``redis-cli --cluster create``
and waits until every node says ``cluster_state:ok``.  Tests may kill a node
(SIGKILL) and start it again on the same port with the same nodes.conf and no
data, which is what a crash without persistence gives, and move slots from one
node to another with ``redis-cli --cluster reshard`` while other threads run.

A node that is down makes only its own slots fail: the nodes run with
``cluster-require-full-coverage no``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry

from tests.redis_server import free_port

#: Masters of the test cluster.
MASTERS = 3
#: How long (ms) a node may stay silent before the others mark it failing: short,
#: so that a killed node is noticed quickly; the test machines are loaded, so not
#: shorter.
NODE_TIMEOUT_MS = 2000
#: The cluster bus of a node listens on its port plus this.
BUS_OFFSET = 10000
#: Seconds to wait for the cluster (or one node) to say it is ok.
READY_S = 60.0


def port_free(port: int) -> bool:
    """True when nothing listens on ``port`` of 127.0.0.1."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def cluster_port() -> int:
    """A free port whose cluster bus port is free too."""
    for _ in range(100):
        port = free_port()
        if port + BUS_OFFSET < 65536 and port_free(port + BUS_OFFSET):
            return port
    raise AssertionError("no free port pair for a cluster node")


class ClusterNodeServer:
    """One redis-server of the cluster, in a directory of its own (its nodes.conf stays there)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = cluster_port()
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def address(self) -> str:
        """host:port, as redis-cli takes it."""
        return f"127.0.0.1:{self.port}"

    def client(self) -> redis.Redis:
        """A plain client of this node alone, that fails at once when it is down."""
        return redis.Redis(
            port=self.port,
            socket_connect_timeout=1,
            socket_timeout=5,
            retry=Retry(NoBackoff(), 0),
        )

    def start(self) -> None:
        """Start it (empty: nothing is ever saved) and wait until it answers."""
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.directory),
             "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
             "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
             "--cluster-require-full-coverage", "no"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        client = self.client()
        try:
            until(lambda: answers(client), f"node {self.address} did not start: {self.log()}")
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL it: its connections break, its data is gone, nodes.conf stays."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def node_id(self) -> str:
        """Its cluster node id."""
        client = self.client()
        try:
            return str(client.execute_command("CLUSTER", "MYID").decode())
        finally:
            client.close()

    def state_ok(self) -> bool:
        """True when it answers and says cluster_state:ok."""
        client = self.client()
        try:
            info = client.execute_command("CLUSTER", "INFO").decode()
        except redis.RedisError:
            return False
        finally:
            client.close()
        return "cluster_state:ok" in info

    def log(self) -> str:
        """What it wrote."""
        return (self.directory / "redis.log").read_text(errors="replace")


def answers(client: redis.Redis) -> bool:
    """True when ``client``'s server answers PING."""
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def until(check: Callable[[], bool], failure: str, timeout_s: float = READY_S) -> None:
    """Wait until ``check()`` is true; AssertionError(``failure``) after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(failure)
        time.sleep(0.05)


class ClusterServers:
    """The cluster's nodes: start, join, kill, restart, reshard."""

    def __init__(self, directory: Path, masters: int = MASTERS) -> None:
        self.nodes = [ClusterNodeServer(directory / f"node{i}") for i in range(masters)]

    @property
    def url(self) -> str:
        """A seed node's redis:// URL (any node leads a cluster client to all)."""
        return f"redis://{self.nodes[0].address}/0"

    def start(self) -> None:
        """Start every node, join them in one cluster, wait until all say ok."""
        for node in self.nodes:
            node.start()
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(node.address for node in self.nodes),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        self.wait_ok()

    def wait_ok(self) -> None:
        """Wait until every node answers and says cluster_state:ok."""
        for node in self.nodes:
            until(node.state_ok, f"node {node.address} is not ok: {node.log()[-2000:]}")

    def client(self, *, decode_responses: bool = True) -> RedisCluster:
        """A cluster client that knows every node."""
        return RedisCluster(
            startup_nodes=[ClusterNode("127.0.0.1", node.port) for node in self.nodes],
            decode_responses=decode_responses,
            socket_connect_timeout=1.0,
            socket_timeout=5.0,
        )

    def kill(self, index: int) -> None:
        """SIGKILL node ``index``."""
        self.nodes[index].kill()

    def restart(self, index: int) -> None:
        """Start node ``index`` again (same port and nodes.conf, no data); wait until all are ok."""
        self.nodes[index].start()
        self.wait_ok()

    @contextmanager
    def down(self, index: int) -> Iterator[ClusterNodeServer]:
        """Node ``index`` killed while inside, restarted (empty) on leaving."""
        self.kill(index)
        try:
            yield self.nodes[index]
        finally:
            self.restart(index)

    def reshard(self, source: int, target: int, slots: int) -> None:
        """Move ``slots`` slots (and their keys) from node ``source`` to node ``target``."""
        subprocess.run(
            ["redis-cli", "--cluster", "reshard", self.nodes[source].address,
             "--cluster-from", self.nodes[source].node_id(),
             "--cluster-to", self.nodes[target].node_id(),
             "--cluster-slots", str(slots), "--cluster-yes"],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
        self.wait_ok()

    def slots_of(self, index: int) -> set[int]:
        """The slots node ``index`` serves, as it says itself."""
        client = self.nodes[index].client()
        try:
            myid = client.execute_command("CLUSTER", "MYID").decode()
            served: set[int] = set()
            for line in client.execute_command("CLUSTER", "NODES").decode().splitlines():
                fields = line.split()
                if fields[0] != myid:
                    continue
                for item in fields[8:]:
                    if item.startswith("["):  # a slot being migrated or imported
                        continue
                    low, _, high = item.partition("-")
                    served.update(range(int(low), int(high or low) + 1))
            return served
        finally:
            client.close()

    def stop(self) -> None:
        """Kill every node."""
        for node in self.nodes:
            node.kill()


@contextmanager
def redis_cluster(directory: Path) -> Iterator[ClusterServers]:
    """A started :class:`ClusterServers`, every node killed on leaving."""
    for program in ("redis-server", "redis-cli"):
        if shutil.which(program) is None:
            pytest.skip(f"{program} is not installed")
    servers = ClusterServers(directory)
    try:
        servers.start()
        yield servers
    finally:
        servers.stop()
