"""Settings of the index, read from the environment when a command or the app starts.

Nothing here runs at import time: call :func:`IndexSettings.from_env`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from indexer.rules import StaleLimits


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


DEFAULT_DATABASE_URL = "postgresql://nearby:nearby@127.0.0.1:5432/nearby"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
#: Staleness limits by kind, in seconds: a live entity not confirmed by its
#: feed for longer is never shown.
DEFAULT_STALE_S = {"bike": 600, "charger": 1800}
#: Seconds a read replica may lag behind the primary before reads leave it.
DEFAULT_REPLICA_MAX_LAG_S = 5


def parse_database_url(value: str, variable: str = "DATABASE_URL") -> str:
    """Return ``value`` if it is a PostgreSQL URL with a host or socket and a database."""
    parts = urlsplit(value)
    if parts.scheme not in ("postgresql", "postgres", "postgresql+psycopg"):
        raise ConfigError(variable, f"expected a postgresql:// URL, got {value!r}")
    if not parts.path.strip("/"):
        raise ConfigError(variable, "the URL names no database")
    try:
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise ConfigError(variable, f"bad port in {value!r}") from exc
    return value.replace("postgresql+psycopg://", "postgresql://", 1)


def parse_redis_url(value: str, variable: str = "REDIS_URL") -> str:
    """Return ``value`` if it is a redis://, rediss:// or unix:// URL."""
    parts = urlsplit(value)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(variable, f"expected a redis:// URL, got {value!r}")
    if parts.scheme != "unix" and not parts.hostname:
        raise ConfigError(variable, "the URL names no host")
    try:
        parts.port  # noqa: B018
    except ValueError as exc:
        raise ConfigError(variable, f"bad port in {value!r}") from exc
    return value


def parse_cluster_url(value: str, variable: str = "REDIS_URL") -> str:
    """Return ``value`` if it can name a seed node of a Redis Cluster: redis:// or
    rediss://, database 0 (a cluster has no other)."""
    parts = urlsplit(value)
    if parts.scheme not in ("redis", "rediss"):
        raise ConfigError(variable, f"a cluster's seed node needs a redis:// URL, got {value!r}")
    if parts.path.strip("/") not in ("", "0"):
        raise ConfigError(variable, "a Redis Cluster has only database 0")
    return value


def parse_flag(value: str, variable: str) -> bool:
    """A yes/no setting: 1/true or 0/false (empty: no)."""
    flag = value.strip().lower()
    if flag not in ("0", "1", "true", "false", ""):
        raise ConfigError(variable, f"expected 0 or 1, got {flag!r}")
    return flag in ("1", "true")


def parse_int(value: str, variable: str, low: int, high: int) -> int:
    """Parse an integer setting within [low, high]."""
    try:
        number = int(value)
    except ValueError as exc:
        raise ConfigError(variable, f"expected an integer, got {value!r}") from exc
    if not low <= number <= high:
        raise ConfigError(variable, f"{number} is outside [{low}, {high}]")
    return number


def parse_float(value: str, variable: str, low: float, high: float) -> float:
    """Parse a float setting within [low, high]."""
    try:
        number = float(value)
    except ValueError as exc:
        raise ConfigError(variable, f"expected a number, got {value!r}") from exc
    if not low <= number <= high:  # also refuses NaN
        raise ConfigError(variable, f"{value} is outside [{low}, {high}]")
    return number


def parse_stale_sources(value: str, variable: str) -> dict[str, int]:
    """Parse ``source=seconds,source=seconds`` into a dict."""
    limits: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        source, sep, seconds = item.partition("=")
        if not sep or not source:
            raise ConfigError(variable, f"expected source=seconds, got {item!r}")
        limits[source.strip()] = parse_int(seconds.strip(), variable, 1, 30 * 86400)
    return limits


#: Usage event types and their default weights (``NEARBY_EVENT_WEIGHTS`` changes them):
#: an order or a booking says more about a place than opening its mini-app does.
DEFAULT_EVENT_WEIGHTS = {"open": 1.0, "order": 5.0, "booking": 5.0, "unlock": 3.0, "charge": 3.0}
#: Highest weight an event type may have.
MAX_EVENT_WEIGHT = 1000.0
#: The half-life of usage (a week), and its bounds: below a day the stored masses
#: would outgrow a double within a few years (indexer/store/usage.py).
DEFAULT_HALF_LIFE_S = 7 * 86400
HALF_LIFE_S = (86400, 365 * 86400)
#: How far an event's time may run ahead of our clock (clock skew).
DEFAULT_EVENT_FUTURE_S = 300
#: Seconds between two rounds that count the stored events, and the bounds: a round
#: at most every 4 s keeps an event's effect within 5 s while a round takes < 1 s.
DEFAULT_EVENT_ROUND_S = 1.0
EVENT_ROUND_S = (0.0, 4.0)


def parse_event_weights(value: str, variable: str) -> dict[str, float]:
    """Parse ``type:weight,type:weight`` over the defaults; every type must be a known one."""
    weights = dict(DEFAULT_EVENT_WEIGHTS)
    for item in filter(None, (part.strip() for part in value.split(","))):
        kind, sep, text = item.partition(":")
        kind = kind.strip()
        if not sep or kind not in weights:
            raise ConfigError(
                variable, f"expected type:weight with a type of {', '.join(weights)}, got {item!r}"
            )
        try:
            weight = float(text)
        except ValueError as exc:
            raise ConfigError(variable, f"expected a number for {kind}, got {text!r}") from exc
        if not 0 < weight <= MAX_EVENT_WEIGHT:  # also refuses NaN
            raise ConfigError(
                variable, f"the weight of {kind} must be in (0, {MAX_EVENT_WEIGHT:g}]"
            )
        weights[kind] = weight
    return weights


@dataclass(frozen=True)
class UsageSettings:
    """How usage events weigh and decay."""

    #: Weight of each event type.
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS))
    #: Seconds in which an event's weight halves.
    half_life_s: float = float(DEFAULT_HALF_LIFE_S)
    #: Seconds an event's time may be ahead of now.
    future_s: float = float(DEFAULT_EVENT_FUTURE_S)
    #: Seconds between two rounds that count the stored events (0: each batch is
    #: counted in its own request; indexer/store/usage_rounds.py).
    round_s: float = DEFAULT_EVENT_ROUND_S

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> UsageSettings:
        """Read NEARBY_EVENT_WEIGHTS, NEARBY_USAGE_HALF_LIFE_S, NEARBY_EVENT_FUTURE_S and
        NEARBY_EVENT_ROUND_S."""
        half_life = env.get("NEARBY_USAGE_HALF_LIFE_S", str(DEFAULT_HALF_LIFE_S))
        future = env.get("NEARBY_EVENT_FUTURE_S", str(DEFAULT_EVENT_FUTURE_S))
        round_s = env.get("NEARBY_EVENT_ROUND_S", str(DEFAULT_EVENT_ROUND_S))
        return cls(
            weights=parse_event_weights(
                env.get("NEARBY_EVENT_WEIGHTS", ""), "NEARBY_EVENT_WEIGHTS"
            ),
            half_life_s=float(parse_int(half_life, "NEARBY_USAGE_HALF_LIFE_S", *HALF_LIFE_S)),
            future_s=float(parse_int(future, "NEARBY_EVENT_FUTURE_S", 0, 86400)),
            round_s=parse_float(round_s, "NEARBY_EVENT_ROUND_S", *EVENT_ROUND_S),
        )


_PREFIX = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True)
class IndexSettings:
    """Where the index lives and how long live entities stay fresh."""

    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str = DEFAULT_REDIS_URL
    #: ``redis_url`` names a seed node of a Redis Cluster (NEARBY_REDIS_CLUSTER=1):
    #: the client learns the other nodes from it.
    redis_cluster: bool = False
    #: Namespace of every Redis key of this deployment (tests use their own).
    redis_prefix: str = "nearby"
    stale_s: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_STALE_S))
    #: Per-source overrides of ``stale_s``.
    stale_sources: Mapping[str, int] = field(default_factory=dict)
    #: A streaming replica of ``database_url`` that reads may use; None: none.
    database_read_url: str | None = None
    #: Reads leave the replica while it lags more than this; a rebuild waits at
    #: most this long for it to replay what the primary had written.
    replica_max_lag_s: int = DEFAULT_REPLICA_MAX_LAG_S
    #: How usage events weigh and decay.
    usage: UsageSettings = field(default_factory=UsageSettings)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> IndexSettings:
        """Read and validate the settings; raise ConfigError naming a bad variable."""
        env = os.environ if environ is None else environ
        prefix = env.get("NEARBY_REDIS_PREFIX", "nearby")
        if not _PREFIX.match(prefix):
            raise ConfigError("NEARBY_REDIS_PREFIX", "use 1-64 letters, digits, '_', '.', '-'")
        stale = dict(DEFAULT_STALE_S)
        for kind in stale:
            variable = f"NEARBY_STALE_{kind.upper()}_S"
            if variable in env:
                stale[kind] = parse_int(env[variable], variable, 1, 30 * 86400)
        read_url = env.get("DATABASE_READ_URL", "").strip() or None
        redis_url = parse_redis_url(env.get("REDIS_URL", DEFAULT_REDIS_URL))
        redis_cluster = parse_flag(env.get("NEARBY_REDIS_CLUSTER", ""), "NEARBY_REDIS_CLUSTER")
        return cls(
            database_url=parse_database_url(env.get("DATABASE_URL", DEFAULT_DATABASE_URL)),
            database_read_url=read_url and parse_database_url(read_url, "DATABASE_READ_URL"),
            replica_max_lag_s=parse_int(
                env.get("NEARBY_REPLICA_MAX_LAG_S", str(DEFAULT_REPLICA_MAX_LAG_S)),
                "NEARBY_REPLICA_MAX_LAG_S",
                0,
                3600,
            ),
            redis_url=parse_cluster_url(redis_url) if redis_cluster else redis_url,
            redis_cluster=redis_cluster,
            redis_prefix=prefix,
            stale_s=stale,
            stale_sources=parse_stale_sources(
                env.get("NEARBY_STALE_SOURCES", ""), "NEARBY_STALE_SOURCES"
            ),
            usage=UsageSettings.from_env(env),
        )

    @property
    def stale_limits(self) -> StaleLimits:
        """The staleness limits, as the rules read them."""
        return StaleLimits(by_kind=dict(self.stale_s), by_source=dict(self.stale_sources))
