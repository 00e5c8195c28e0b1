"""The ``nearby`` console script: the index's commands plus ``serve``."""

from __future__ import annotations

import click

from indexer.cli import cli


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1, 64))
def serve(host: str, port: int, workers: int, threads: int) -> None:
    """Serve the HTTP API with gunicorn."""
    from gunicorn.app.base import BaseApplication

    from discovery.app import create_app
    from discovery.settings import ApiSettings
    from indexer.settings import ConfigError

    try:
        settings = ApiSettings.from_env()
    except ConfigError as exc:
        raise click.UsageError(f"bad configuration: {exc}") from exc

    class Server(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("threads", threads)
            self.cfg.set("accesslog", "-")
            self.cfg.set("keepalive", 5)

        def load(self) -> object:
            return create_app(settings)

    Server().run()


def main() -> None:
    """Entry point of the console script."""
    cli()
