"""The ``nearby`` console script: the index's commands plus ``serve``."""

from __future__ import annotations

import os
import sys

import click

from indexer.cli import cli

#: gunicorn worker classes ``nearby serve`` offers, by the name it takes.
WORKER_CLASSES = {
    "gevent": "gevent_pywsgi",
    "gthread": "gthread",
    "sync": "sync",
}


def gunicorn_options(
    bind: str, workers: int, worker_class: str, threads: int, access_log: bool
) -> dict[str, object]:
    """gunicorn settings for ``nearby serve``.

    ``gevent`` (the default) serves each connection in a greenlet with gevent's
    WSGI server, connections kept alive: of the worker classes gunicorn has, the
    cheapest per request (measured on 1 km searches: about 0.65 ms of worker CPU
    a request against 1.0 ms for ``gthread``, which runs ``threads`` threads per
    worker). ``sync`` closes every connection (a TCP handshake per request).
    The access log is off unless asked for: writing a line per request costs a
    fair share of a short request's time.
    """
    options: dict[str, object] = {
        "bind": bind,
        "workers": workers,
        "worker_class": WORKER_CLASSES[worker_class],
        "accesslog": "-" if access_log else None,
        "keepalive": 5,
    }
    if worker_class == "gthread":
        options["threads"] = threads
    return options


#: gunicorn's command-line flag for each of :func:`gunicorn_options`' settings.
FLAGS = {
    "bind": "--bind",
    "workers": "--workers",
    "worker_class": "--worker-class",
    "accesslog": "--access-logfile",
    "keepalive": "--keep-alive",
    "threads": "--threads",
}


def gunicorn_command(options: dict[str, object]) -> list[str]:
    """The gunicorn command line that runs the API with ``options`` (None: left unset)."""
    command = [sys.executable, "-m", "gunicorn"]
    for name, value in options.items():
        if value is not None:
            command += [FLAGS[name], str(value)]
    return [*command, "discovery.wsgi:application"]


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--worker-class",
    type=click.Choice(sorted(WORKER_CLASSES)),
    default="gevent",
    show_default=True,
    help="gevent: a greenlet per connection; gthread: --threads threads per worker; sync",
)
@click.option(
    "--threads",
    default=4,
    show_default=True,
    type=click.IntRange(1, 64),
    help="threads per worker, with --worker-class gthread",
)
@click.option("--access-log/--no-access-log", default=False, show_default=True)
def serve(
    host: str, port: int, workers: int, worker_class: str, threads: int, access_log: bool
) -> None:
    """Serve the HTTP API with gunicorn.

    The settings are checked here; then this process becomes gunicorn's master
    (same pid, so signals reach it), a fresh interpreter that has imported none
    of the app: each worker imports it after its worker class has set up (see
    :mod:`discovery.wsgi`).
    """
    from discovery.settings import ApiSettings
    from indexer.settings import ConfigError

    try:
        ApiSettings.from_env()
    except ConfigError as exc:
        raise click.UsageError(f"bad configuration: {exc}") from exc
    options = gunicorn_options(f"{host}:{port}", workers, worker_class, threads, access_log)
    command = gunicorn_command(options)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], command)


def main() -> None:
    """Entry point of the console script."""
    cli()
