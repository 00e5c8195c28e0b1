"""Settings of the API, read from the environment when the app starts."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from indexer.logs import parse_log_format
from indexer.settings import ConfigError, IndexSettings, parse_float, parse_int

#: The variable holding the secret cursors are signed with; every process serving
#: the same clients (workers, instances behind one address) must share it.
CURSOR_SECRET = "NEARBY_CURSOR_SECRET"
MIN_SECRET_CHARS = 16


@dataclass(frozen=True)
class RankingSettings:
    """Defaults of the ranking, tunable per deployment (and per query within bounds)."""

    #: Gaussian decay scale as a fraction of the radius (score halves there).
    scale_fraction: float = 0.5
    #: Weight of ln(1 + popularity) in the boost.
    popularity_weight: float = 1.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RankingSettings:
        """Read NEARBY_SCALE_FRACTION and NEARBY_POPULARITY_WEIGHT."""
        return cls(
            scale_fraction=parse_float(
                env.get("NEARBY_SCALE_FRACTION", "0.5"), "NEARBY_SCALE_FRACTION", 0.01, 10.0
            ),
            popularity_weight=parse_float(
                env.get("NEARBY_POPULARITY_WEIGHT", "1.0"), "NEARBY_POPULARITY_WEIGHT", 0.0, 10.0
            ),
        )


def parse_port(value: str, variable: str) -> int | None:
    """A TCP port, or None when the value is empty."""
    value = value.strip()
    return parse_int(value, variable, 1, 65535) if value else None


@dataclass(frozen=True)
class ObservabilitySettings:
    """Where /metrics answers, and how logs are written."""

    #: The port /metrics answers on alone; None: on the API's own port.
    metrics_port: int | None = None
    #: ``text`` or ``json`` (one object a line).
    log_format: str = "text"
    #: prometheus-client's multiprocess directory (``nearby serve`` makes one):
    #: the counts of every worker process; None: this process counts alone.
    multiproc_dir: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ObservabilitySettings:
        """Read NEARBY_METRICS_PORT, NEARBY_LOG_FORMAT and PROMETHEUS_MULTIPROC_DIR."""
        multiproc_dir = env.get("PROMETHEUS_MULTIPROC_DIR") or None
        if multiproc_dir is not None and not os.path.isdir(multiproc_dir):
            raise ConfigError("PROMETHEUS_MULTIPROC_DIR", f"{multiproc_dir} is not a directory")
        return cls(
            metrics_port=parse_port(env.get("NEARBY_METRICS_PORT", ""), "NEARBY_METRICS_PORT"),
            log_format=parse_log_format(env),
            multiproc_dir=multiproc_dir,
        )


@dataclass(frozen=True)
class ApiSettings:
    """Everything the API needs: the index's settings plus its own."""

    index: IndexSettings = field(default_factory=IndexSettings)
    ranking: RankingSettings = field(default_factory=RankingSettings)
    #: Keys that may write (pushed positions and availability).
    api_keys: frozenset[str] = frozenset()
    #: Serves the debug map at /debug/map when true.
    debug: bool = False
    #: Seconds between two checks of a process for a missing hot index (0: no healing).
    heal_check_s: float = 5.0
    #: The key cursors are signed with (HMAC-SHA256): NEARBY_CURSOR_SECRET, else
    #: random, for this process only (``nearby serve`` makes one its workers share).
    cursor_key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    observe: ObservabilitySettings = field(default_factory=ObservabilitySettings)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiSettings:
        """Read and validate; raise ConfigError naming a bad variable."""
        env = os.environ if environ is None else environ
        debug = env.get("NEARBY_DEBUG", "0").strip().lower()
        if debug not in ("0", "1", "true", "false", ""):
            raise ConfigError("NEARBY_DEBUG", f"expected 0 or 1, got {debug!r}")
        keys = frozenset(k.strip() for k in env.get("NEARBY_API_KEYS", "").split(",") if k.strip())
        secret = env.get(CURSOR_SECRET, "")
        if secret and len(secret) < MIN_SECRET_CHARS:
            raise ConfigError(CURSOR_SECRET, f"expected at least {MIN_SECRET_CHARS} characters")
        return cls(
            index=IndexSettings.from_env(env),
            ranking=RankingSettings.from_env(env),
            api_keys=keys,
            debug=debug in ("1", "true"),
            heal_check_s=parse_float(
                env.get("NEARBY_HEAL_CHECK_S", "5"), "NEARBY_HEAL_CHECK_S", 0.0, 3600.0
            ),
            cursor_key=secret.encode() if secret else secrets.token_bytes(32),
            observe=ObservabilitySettings.from_env(env),
        )
