"""Progress for long jobs: a bar with a rate on a terminal, silence elsewhere."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import click

#: A progress bar's context, yielding its ``advance(n)``.
ProgressBar = AbstractContextManager[Callable[[int], None]]


def format_count(number: int) -> str:
    """1234567 -> '1,234,567'."""
    return f"{number:,}"


@contextmanager
def progress_bar(label: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``; draws a bar with rows/s only when stderr is a terminal.

    With no known ``total`` (a stream), it shows the count and the rate instead.
    """
    if not sys.stderr.isatty():
        yield lambda n: None
        return
    if not total:
        with counter(label) as advance:
            yield advance
        return
    started = time.monotonic()
    done = 0
    bar: Any
    with click.progressbar(
        length=total,
        label=label,
        file=sys.stderr,
        show_pos=True,
        item_show_func=lambda _: f"{done / max(time.monotonic() - started, 1e-9):,.0f} rows/s",
    ) as bar:

        def advance(n: int) -> None:
            nonlocal done
            done += n
            bar.update(n, done)

        yield advance


@contextmanager
def counter(label: str) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)`` that redraws "label: N rows, R rows/s" at most 10 times a second."""
    started = last = time.monotonic()
    done = 0

    def draw() -> None:
        rate = done / max(time.monotonic() - started, 1e-9)
        sys.stderr.write(f"\r{label}: {done:,} rows, {rate:,.0f} rows/s")
        sys.stderr.flush()

    def advance(n: int) -> None:
        nonlocal done, last
        done += n
        if time.monotonic() - last >= 0.1:
            last = time.monotonic()
            draw()

    yield advance
    draw()
    sys.stderr.write("\n")
