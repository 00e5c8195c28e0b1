"""scripts/debug_tile.py: bad usage exits 2 and names the problem, writing nothing."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from click.testing import Result


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give Z X Y, or --lat, --lng and --zoom"),
        (["15", "99999999", "1"], "no tile 15/99999999/1"),
        (["15", "1", "1", "--lat", "1"], "not both"),
        (["15", "1", "1", "--query", "1,2"], "expected LAT,LNG,RADIUS_M"),
        (["15", "1", "1", "--query", "1,2,3,limit"], "expected name=value"),
    ],
)
def test_bad_usage_exits_2_naming_the_problem(
    args: list[str], message: str, render: Callable[..., tuple[Result, bytes]]
) -> None:
    result, data = render(*args)
    assert result.exit_code == 2
    assert message in result.output
    assert data == b""
