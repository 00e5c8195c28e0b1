"""``nearby import stores PATH…``: the command of the batch import of store listings.

Exit status: 0 all imported; 1 some records rejected (the others committed), or
a store failed; 2 bad usage, unreadable input or a write PostGIS refused
(nothing written).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from indexer.cli.context import NOT_CLEAN, Context
from indexer.jobs.imports import (
    SOURCE_PATTERN,
    commit_rejects,
    default_source,
    import_listings,
    make_reject_logs,
    open_all,
    spools_removed,
)
from indexer.jobs.report import ImportSummary, RejectLog
from indexer.progress import format_count, progress_bar
from indexer.sources.csv import parse_column_map
from indexer.sources.inputs import FORMATS
from indexer.store.errors import REPAIRED_BY

F = TypeVar("F", bound=Callable[..., Any])

#: What an import says when PostGIS has it and Redis may not.
LOST_MIDWAY = "Redis lost its index generation during the import"


def resolve_sources(paths: Sequence[str], source: str | None) -> list[str]:
    """The source of each path: ``source`` if given, else the file's name.

    Raises
    ------
    click.UsageError
        Standard input without ``--source``, or a source name that is not a slug.
    """
    sources = []
    for path in paths:
        if source is None and path == "-":
            raise click.UsageError("reading standard input needs --source")
        name = source or default_source(path)
        if not SOURCE_PATTERN.match(name):
            raise click.UsageError(
                f"source {name!r} must be 1-64 letters, digits, '_', '.' or '-': use --source"
            )
        sources.append(name)
    return sources


def report_import(summary: ImportSummary, logs: dict[str, RejectLog]) -> None:
    """Put the rejects files in place, print the summary; exit 1 when some were rejected."""
    for log in commit_rejects(logs):
        if log.count:
            click.echo(f"{format_count(log.count)} rejected records in {log.target}", err=True)
    if summary.no_generation:
        click.echo(f"{LOST_MIDWAY}; {REPAIRED_BY}", err=True)
    click.echo(summary.line())
    if summary.rejected:
        raise click.exceptions.Exit(NOT_CLEAN)


def import_stores(
    context: Context,
    paths: Sequence[str],
    file_format: str,
    source: str | None,
    replace: bool,
    rejects: str | None,
    col: Sequence[str],
) -> None:
    """The body of ``nearby import stores``: open every input, import, summarise."""
    try:
        columns = parse_column_map(col)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--col") from exc
    sources = resolve_sources(paths, source)
    listings = open_all(paths, sources, file_format, columns)
    logs = make_reject_logs(listings, rejects)
    bar = progress_bar if sys.stderr.isatty() else None
    with spools_removed(listings):
        context.ensure_index()
        summary = import_listings(
            context.conn(), context.hot(), listings, logs, replace=replace, bar=bar
        )
    report_import(summary, logs)


def format_option(formats: Sequence[str]) -> Callable[[F], F]:
    """An import's ``--format``: ``auto`` (told from the content) or one of ``formats``."""
    return click.option(
        "--format",
        "file_format",
        type=click.Choice(("auto", *formats)),
        default="auto",
        show_default=True,
        help="Format of the input; auto tells it from the content.",
    )


@click.command("stores")
@click.argument("paths", nargs=-1, required=True, metavar="PATH…")
@format_option(FORMATS)
@click.option("--source", help="Source of the entities (default: the file's name).")
@click.option("--replace", is_flag=True, help="Delete the source's entities not in the input.")
@click.option("--rejects", type=click.Path(dir_okay=False), help="CSV of rejected records.")
@click.option("--col", multiple=True, metavar="FIELD=HEADER", help="Read FIELD from column HEADER.")
@click.pass_obj
def stores(
    context: Context,
    paths: tuple[str, ...],
    file_format: str,
    source: str | None,
    replace: bool,
    rejects: str | None,
    col: tuple[str, ...],
) -> None:
    """Import store listings (CSV, GeoJSON, NDJSON, OSM PBF; gzip ok; - for stdin)."""
    import_stores(context, paths, file_format, source, replace, rejects, col)
