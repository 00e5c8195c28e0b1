"""Fixtures of the debug tools' tests: the planted tile, scripts/debug_tile.py run on it, and
the app served for the browser tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from flask import Flask

from indexer.model import Entity
from indexer.store.writer import write_entities
from scripts.debug_tile import main as debug_tile
from tests.browser import serving
from tests.conftest import Index
from tests.factories import planted_entities


@pytest.fixture
def planted(index: Index) -> list[Entity]:
    """The entities of :func:`tests.factories.planted_entities`, written to the index."""
    entities = planted_entities()
    write_entities(index.conn, index.hot, "t", entities)
    return entities


@pytest.fixture
def render(cli_env: dict[str, str], tmp_path: Path) -> Callable[..., tuple[Result, bytes]]:
    """Run scripts/debug_tile.py with the test index's settings; return its result and file."""

    def run(*args: str) -> tuple[Result, bytes]:
        out = tmp_path / "tile.out"
        result = CliRunner().invoke(debug_tile, [*args, "-o", str(out)], env=cli_env)
        return result, out.read_bytes() if out.exists() else b""

    return run


@pytest.fixture
def server(app: Flask) -> Iterator[str]:
    """The test app served by werkzeug on 127.0.0.1: its base URL."""
    with serving(app) as base:
        yield base
