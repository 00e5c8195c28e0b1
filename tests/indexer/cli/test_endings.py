"""Every error a command raises ends as the error table says: its exit status, ``Error: …``."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from discovery.cli import cli
from indexer.cli.context import NearbyGroup
from indexer.errors import ENDINGS, NearbyError, Unavailable
from indexer.store.errors import HotIndexUnavailable, NothingWritten, WriteRefused
from tests.conftest import Index
from tests.factories import HEADER, SHOPS, write_lines


@pytest.mark.parametrize(
    "error", [*ENDINGS, HotIndexUnavailable, NothingWritten, WriteRefused], ids=lambda e: e.__name__
)
def test_an_error_ends_with_its_exit_status_and_message(error: type[NearbyError]) -> None:
    @click.group(cls=NearbyGroup)
    def group() -> None:
        pass

    @group.command()
    def fail() -> None:
        raise error("it went wrong")

    result = CliRunner().invoke(group, ["fail"])
    expected = next(ENDINGS[cls] for cls in error.__mro__ if cls in ENDINGS)
    assert (result.exit_code, result.output) == (expected.exit_code, "Error: it went wrong\n")


def test_an_import_with_redis_down_ends_as_unavailable(
    index: Index, cli_env: dict[str, str], tmp_path: Path
) -> None:
    path = write_lines(tmp_path / "shops.csv", [HEADER, *SHOPS])
    env = {**cli_env, "REDIS_URL": "redis://127.0.0.1:1/0"}
    result = CliRunner().invoke(cli, ["import", "stores", str(path)], env=env)
    assert result.exit_code == ENDINGS[Unavailable].exit_code
    assert "Error: Redis is not reachable" in result.output
    assert "nothing was written" in result.output
    assert index.count() == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shops.csv"]
