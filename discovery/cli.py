"""The ``nearby`` console script: the index's commands plus ``serve``."""

from __future__ import annotations

import click

from indexer.cli import cli


def gunicorn_options(bind: str, workers: int, threads: int, access_log: bool) -> dict[str, object]:
    """gunicorn settings for ``nearby serve``.

    One thread per worker runs the sync worker; more run gthread, which also
    keeps client connections alive between requests (the sync worker closes
    each one, so a client pays a TCP handshake per request).  The access log
    is off unless asked for: writing a line per request costs a fair share of
    a short request's time.
    """
    return {
        "bind": bind,
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread" if threads > 1 else "sync",
        "accesslog": "-" if access_log else None,
        "keepalive": 5,
    }


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--threads",
    default=4,
    show_default=True,
    type=click.IntRange(1, 64),
    help="threads per worker (more than 1: gthread worker, connections kept alive)",
)
@click.option("--access-log/--no-access-log", default=False, show_default=True)
def serve(host: str, port: int, workers: int, threads: int, access_log: bool) -> None:
    """Serve the HTTP API with gunicorn."""
    from gunicorn.app.base import BaseApplication

    from discovery.app import create_app
    from discovery.settings import ApiSettings
    from indexer.settings import ConfigError

    try:
        settings = ApiSettings.from_env()
    except ConfigError as exc:
        raise click.UsageError(f"bad configuration: {exc}") from exc
    options = gunicorn_options(f"{host}:{port}", workers, threads, access_log)

    class Server(BaseApplication):
        def load_config(self) -> None:
            for name, value in options.items():
                self.cfg.set(name, value)

        def load(self) -> object:
            return create_app(settings)

    Server().run()


def main() -> None:
    """Entry point of the console script."""
    cli()
