"""``nearby import mini-apps PATH``: the command of the mini-app catalog's import.

Exit status as ``nearby import stores``: 0 all imported; 1 some rows rejected
(the others committed), or Redis did not take the catalog; 2 bad usage,
unreadable input or a write PostGIS refused (nothing written).
"""

from __future__ import annotations

from pathlib import Path

import click

from indexer.cli.context import Context
from indexer.cli.imports import format_option, report_import
from indexer.jobs.catalog import FORMATS, import_catalog, open_catalog
from indexer.jobs.imports import default_rejects_path
from indexer.jobs.report import RejectLog

#: The name of the rejects file of standard input (``mini-apps.rejects.csv``).
STDIN_NAME = "mini-apps"


@click.command("mini-apps")
@click.argument("path", metavar="PATH")
@format_option(FORMATS)
@click.option("--replace", is_flag=True, help="Delete the entries not in the input.")
@click.option("--rejects", type=click.Path(dir_okay=False), help="CSV of rejected rows.")
@click.pass_obj
def mini_apps(
    context: Context, path: str, file_format: str, replace: bool, rejects: str | None
) -> None:
    """Import the mini-app catalog (CSV or NDJSON; gzip ok; - for stdin)."""
    source = open_catalog(path, file_format)
    target = Path(rejects) if rejects else default_rejects_path(path, STDIN_NAME)
    log = RejectLog(target, "line")
    settings = context.settings
    summary = import_catalog(
        context.conn(), context.hot(), settings.redis_prefix, source, log, replace=replace
    )
    report_import(summary, {path: log})
