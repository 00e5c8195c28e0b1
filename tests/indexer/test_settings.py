"""Settings come from the environment, validated, naming the bad variable."""

from __future__ import annotations

import pytest

from discovery.settings import ApiSettings
from indexer.settings import DEFAULT_EVENT_ROUND_S, DEFAULT_STALE_S, ConfigError, IndexSettings


def test_defaults_without_environment() -> None:
    settings = IndexSettings.from_env({})
    assert settings.database_url.startswith("postgresql://")
    assert settings.redis_url.startswith("redis://")
    assert dict(settings.stale_s) == DEFAULT_STALE_S
    assert settings.database_read_url is None


def test_a_read_replica_is_optional() -> None:
    settings = IndexSettings.from_env(
        {
            "DATABASE_READ_URL": "postgresql://r:r@replica:5433/nearby",
            "NEARBY_REPLICA_MAX_LAG_S": "2",
        }
    )
    assert settings.database_read_url == "postgresql://r:r@replica:5433/nearby"
    assert settings.replica_max_lag_s == 2


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "mysql://x@y/z"),
        ("DATABASE_URL", "postgresql://host:notaport/db"),
        ("DATABASE_URL", "postgresql://host:5432"),
        ("REDIS_URL", "http://localhost:6379"),
        ("REDIS_URL", "redis://:99999999/0"),
        ("NEARBY_REDIS_PREFIX", "has space"),
        ("NEARBY_STALE_BIKE_S", "ten"),
        ("NEARBY_STALE_CHARGER_S", "0"),
        ("NEARBY_STALE_SOURCES", "divvy"),
        ("DATABASE_READ_URL", "mysql://x@y/z"),
        ("DATABASE_READ_URL", "postgresql://replica:5432"),
        ("NEARBY_REPLICA_MAX_LAG_S", "soon"),
        ("NEARBY_REPLICA_MAX_LAG_S", "-1"),
        ("NEARBY_EVENT_ROUND_S", "often"),
        ("NEARBY_EVENT_ROUND_S", "5"),
        ("NEARBY_EVENT_ROUND_S", "nan"),
    ],
)
def test_malformed_value_is_named(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        IndexSettings.from_env({variable: value})
    assert caught.value.variable == variable
    assert str(caught.value).startswith(f"{variable}: ")


def test_rounds_of_usage_events_every_second_unless_told() -> None:
    assert IndexSettings.from_env({}).usage.round_s == DEFAULT_EVENT_ROUND_S == 1.0
    assert IndexSettings.from_env({"NEARBY_EVENT_ROUND_S": "0"}).usage.round_s == 0.0
    assert IndexSettings.from_env({"NEARBY_EVENT_ROUND_S": "2.5"}).usage.round_s == 2.5


def test_stale_limits_per_kind_and_source() -> None:
    settings = IndexSettings.from_env(
        {"NEARBY_STALE_BIKE_S": "120", "NEARBY_STALE_SOURCES": "divvy=60, ocm=7200"}
    )
    limits = settings.stale_limits
    assert limits.cutoff_s("citybikes", "bike", 1000.0) == 1000.0 - 120
    assert limits.cutoff_s("divvy", "bike", 1000.0) == 1000.0 - 60
    assert limits.cutoff_s("ocm", "charger", 1000.0) == 1000.0 - 7200
    assert limits.cutoff_s("osm", "store", 1000.0) is None


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("NEARBY_DEBUG", "maybe"),
        ("NEARBY_POPULARITY_WEIGHT", "nan"),
        ("NEARBY_SCALE_FRACTION", "-1"),
        ("REDIS_URL", "localhost"),
        ("NEARBY_CURSOR_SECRET", "too short"),
    ],
)
def test_api_settings_name_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ApiSettings.from_env({variable: value})
    assert caught.value.variable == variable


def test_api_keys_are_split_on_commas() -> None:
    settings = ApiSettings.from_env({"NEARBY_API_KEYS": "a, b,,c", "NEARBY_DEBUG": "1"})
    assert settings.api_keys == frozenset({"a", "b", "c"})
    assert settings.debug


def test_the_cursor_key_is_the_secret_else_random_per_process() -> None:
    secret = "s" * 16
    assert ApiSettings.from_env({"NEARBY_CURSOR_SECRET": secret}).cursor_key == secret.encode()
    assert ApiSettings.from_env({}).cursor_key != ApiSettings.from_env({}).cursor_key
    assert len(ApiSettings.from_env({}).cursor_key) == 32


def test_cli_refuses_bad_configuration(cli_env) -> None:
    from click.testing import CliRunner

    from discovery.cli import cli

    result = CliRunner().invoke(cli, ["cache", "verify"], env={**cli_env, "REDIS_URL": "nope"})
    assert result.exit_code == 2
    assert "REDIS_URL" in result.output
