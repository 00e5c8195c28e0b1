"""A streaming replica of the test server: ``pg_basebackup -R`` into a temporary
directory, started with ``pg_ctl`` on a free port, stopped and removed at the end.

As root, the copy is taken and the server run as the ``postgres`` OS user (a
superuser through the local socket, as Debian's pg_hba allows); otherwise as
the current user with the test role, which then needs REPLICATION.  When the
replica cannot be made, :func:`replica_server` skips with the reason.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from indexer import replica
from tests.redis_server import free_port

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "")
#: Settings a standby must have at least as high as its primary's.
AT_LEAST_THE_PRIMARY = ("max_connections", "max_worker_processes", "max_wal_senders",
                        "max_prepared_transactions", "max_locks_per_transaction")  # fmt: skip
#: Seconds the replica may take to replay what the primary committed (tests wait for it).
CATCH_UP_S = 60.0


def as_postgres() -> bool:
    """Whether the replica is made and run as the ``postgres`` OS user (when root and
    there is one)."""
    if os.geteuid() != 0:
        return False
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return False
    return True


def as_server_user(argv: list[str]) -> list[str]:
    """``argv`` run as the ``postgres`` OS user when root, else as it is."""
    return ["runuser", "-u", "postgres", "--", *argv] if as_postgres() else argv


def run(argv: list[str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run a command; its output is kept for the skip or failure message."""
    return subprocess.run(
        as_server_user(argv), capture_output=True, text=True, timeout=timeout, check=False
    )


def binary(name: str, version: int) -> str | None:
    """The PostgreSQL program ``name`` of major ``version`` (Debian's directory first)."""
    debian = Path(f"/usr/lib/postgresql/{version}/bin/{name}")
    return str(debian) if debian.exists() else shutil.which(name)


class ReplicaServer:
    """A hot standby of the test server, streaming from it."""

    def __init__(self, primary_url: str, directory: Path, version: int) -> None:
        self.primary_url = primary_url
        self.directory = directory
        self.data = directory / "data"
        self.version = version
        self.port = free_port()

    def url(self, database_url: str) -> str:
        """``database_url`` (a URL of the primary) on the replica."""
        parts = urlsplit(database_url)
        netloc = parts.netloc.rsplit("@", 1)
        host = f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) > 1 else host))

    def copy(self) -> str | None:
        """Take the base backup; None, else why it could not be taken."""
        tool = binary("pg_basebackup", self.version)
        if tool is None:
            return "pg_basebackup is not installed"
        port = str(urlsplit(self.primary_url).port or 5432)
        if as_postgres():
            shutil.chown(self.directory, "postgres", "postgres")
            argv = [tool, "-p", port]
        else:
            argv = [tool, "-d", self.primary_url]
        done = run([*argv, "-D", str(self.data), "-R", "-X", "stream", "-c", "fast"])
        if done.returncode != 0:
            return f"pg_basebackup failed: {done.stderr.strip()[-500:]}"
        self.configure()
        return None

    def configure(self) -> None:
        """Settings of its own (port, socket, a small footprint) and the primary's pg_hba."""
        hba = self.data / "pg_hba.conf"
        if not hba.exists():
            self.write(hba, primary_hba(urlsplit(self.primary_url).port or 5432))
        if not (self.data / "pg_ident.conf").exists():
            self.write(self.data / "pg_ident.conf", "")
        settings = (
            f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{self.data}'\nhot_standby = on\n"
            f"hba_file = '{hba}'\nident_file = '{self.data / 'pg_ident.conf'}'\n"
            "shared_buffers = 32MB\nssl = off\nmax_standby_streaming_delay = -1\n"
        )
        with psycopg.connect(self.primary_url, autocommit=True) as conn:
            for name in AT_LEAST_THE_PRIMARY:
                row = conn.execute("SELECT current_setting(%s)", (name,)).fetchone()
                settings += f"{name} = {row[0] if row else ''}\n"
        conf = self.data / "postgresql.conf"
        self.write(conf, (conf.read_text() if conf.exists() else "") + "\n" + settings)

    def write(self, path: Path, text: str) -> None:
        """Write a file of the data directory, owned by the server's user."""
        path.write_text(text)
        if as_postgres():
            shutil.chown(path, "postgres", "postgres")

    def pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        tool = binary("pg_ctl", self.version) or "pg_ctl"
        return run([tool, "-D", str(self.data), *args], timeout=120)

    def start(self) -> None:
        """Start it and wait until it accepts connections."""
        done = self.pg_ctl("-w", "-t", "60", "-l", str(self.directory / "server.log"), "start")
        if done.returncode != 0:
            raise AssertionError(f"the replica did not start: {done.stderr}\n{self.log()}")

    def stop(self) -> None:
        """Stop it (fast: its clients are disconnected)."""
        self.pg_ctl("-w", "-m", "fast", "stop")

    def log(self) -> str:
        path = self.directory / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def superuser(self, sql: str) -> None:
        """Run ``sql`` on it as a superuser (through its socket, as ``postgres`` when root)."""
        psql = binary("psql", self.version) or "psql"
        target = ["-h", str(self.data), "-p", str(self.port), "-d", "postgres"]
        if not as_postgres():
            target = ["-d", self.url(self.primary_url)]
        done = run([psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", *target, "-c", sql], timeout=60)
        if done.returncode != 0:
            pytest.skip(f"cannot run {sql!r} on the replica as a superuser: {done.stderr}")

    def pause_replay(self) -> None:
        """Stop applying the WAL it receives (its reads fall behind the primary)."""
        self.superuser("SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        self.superuser("SELECT pg_wal_replay_resume()")

    def catch_up(self, database_url: str) -> None:
        """Wait until it has replayed everything the primary has committed now."""
        with (
            psycopg.connect(database_url, autocommit=True) as primary,
            psycopg.connect(self.url(database_url), autocommit=True) as standby,
        ):
            lsn = replica.primary_position(primary)
            assert replica.wait_for_replay(standby, lsn, CATCH_UP_S), "the replica fell behind"


def primary_hba(port: int) -> str:
    """The primary's pg_hba.conf when it can be read, else local trust and passwords."""
    if as_postgres():
        found = run(["psql", "-X", "-p", str(port), "-tAc", "SHOW hba_file"], timeout=60)
        path = Path(found.stdout.strip())
        if found.returncode == 0 and path.is_file():
            return path.read_text()
    return "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n"


@contextmanager
def replica_server(primary_url: str) -> Iterator[ReplicaServer]:
    """A started :class:`ReplicaServer` of the server of ``primary_url``; skips when none
    can be made.  Stopped and its directory removed on leaving."""
    if urlsplit(primary_url).hostname not in LOCAL_HOSTS:
        pytest.skip("the test server is not on this machine: no replica can be copied from it")
    with psycopg.connect(primary_url, autocommit=True) as conn:
        version = int(str(conn.execute("SHOW server_version_num").fetchone()[0])) // 10000  # type: ignore[index]
    directory = Path(tempfile.mkdtemp(prefix="nearby-replica-"))
    server = ReplicaServer(primary_url, directory, version)
    try:
        problem = server.copy()
        if problem is not None:
            pytest.skip(f"no read replica: {problem}")
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
