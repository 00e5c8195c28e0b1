"""The ``nearby`` console script: the index's commands plus ``serve``."""

from __future__ import annotations

import os
import sys
import tempfile

import click

from indexer.cli import cli

#: gunicorn worker classes ``nearby serve`` offers, by the name it takes.
WORKER_CLASSES = {
    "gevent": "gevent_pywsgi",
    "gthread": "gthread",
    "sync": "sync",
}


def gunicorn_options(
    bind: str,
    workers: int,
    worker_class: str,
    threads: int,
    access_log: bool,
    metrics_bind: str | None = None,
) -> dict[str, object]:
    """gunicorn settings for ``nearby serve``.

    ``gevent`` (the default) serves each connection in a greenlet with gevent's
    WSGI server, connections kept alive: of the worker classes gunicorn has, the
    cheapest per request (measured on 1 km searches: about 0.65 ms of worker CPU
    a request against 1.0 ms for ``gthread``, which runs ``threads`` threads per
    worker). ``sync`` closes every connection (a TCP handshake per request).
    The access log is off unless asked for: writing a line per request costs a
    fair share of a short request's time; its lines, and gunicorn's own, are
    written by :class:`discovery.accesslog.AccessLogger`. ``metrics_bind``: a
    second address, where only /metrics answers.
    """
    options: dict[str, object] = {
        "config": "python:discovery.gunicorn_conf",
        "bind": [bind] if metrics_bind is None else [bind, metrics_bind],
        "workers": workers,
        "worker_class": WORKER_CLASSES[worker_class],
        "accesslog": "-" if access_log else None,
        "logger_class": "discovery.accesslog.AccessLogger",
        "keepalive": 5,
    }
    if worker_class == "gthread":
        options["threads"] = threads
    return options


#: gunicorn's command-line flag for each of :func:`gunicorn_options`' settings.
FLAGS = {
    "config": "--config",
    "bind": "--bind",
    "workers": "--workers",
    "worker_class": "--worker-class",
    "accesslog": "--access-logfile",
    "keepalive": "--keep-alive",
    "logger_class": "--logger-class",
    "threads": "--threads",
}


def gunicorn_command(options: dict[str, object]) -> list[str]:
    """The gunicorn command line that runs the API with ``options`` (None: left unset)."""
    command = [sys.executable, "-m", "gunicorn"]
    for name, value in options.items():
        for item in value if isinstance(value, list) else [value]:
            if item is not None:
                command += [FLAGS[name], str(item)]
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
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    help="Serve /metrics on this port only, at --host [default: NEARBY_METRICS_PORT, "
    "else /metrics on --port]",
)
def serve(
    host: str,
    port: int,
    workers: int,
    worker_class: str,
    threads: int,
    access_log: bool,
    metrics_port: int | None,
) -> None:
    """Serve the HTTP API with gunicorn.

    The settings are checked here; then this process becomes gunicorn's master
    (same pid, so signals reach it), a fresh interpreter that has imported none
    of the app: each worker imports it after its worker class has set up (see
    :mod:`discovery.wsgi`). The workers count into a fresh metrics directory of
    this run's own (see :mod:`discovery.metrics`), which they and every process
    they start inherit.
    """
    from discovery.settings import ApiSettings
    from indexer.settings import ConfigError

    try:
        settings = ApiSettings.from_env()
    except ConfigError as exc:
        raise click.UsageError(f"bad configuration: {exc}") from exc
    metrics_port = metrics_port or settings.observe.metrics_port
    if metrics_port == port:
        raise click.UsageError("the metrics port must differ from --port")
    prepare_worker_environment(metrics_port)
    metrics_bind = None if metrics_port is None else f"{host}:{metrics_port}"
    options = gunicorn_options(
        f"{host}:{port}", workers, worker_class, threads, access_log, metrics_bind
    )
    command = gunicorn_command(options)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], command)


def prepare_worker_environment(metrics_port: int | None) -> None:
    """Set what the workers read: the metrics port, and a fresh multiprocess directory.

    The directory is made before gunicorn starts, so that it is set before any
    worker imports prometheus-client (which reads it once, at import); inside
    PROMETHEUS_MULTIPROC_DIR when that is set, else in the temporary directory.
    """
    from discovery.gunicorn_conf import METRICS_DIR_PREFIX

    parent = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix=METRICS_DIR_PREFIX, dir=parent)
    if metrics_port is None:
        os.environ.pop("NEARBY_METRICS_PORT", None)
    else:
        os.environ["NEARBY_METRICS_PORT"] = str(metrics_port)


def main() -> None:
    """Entry point of the console script."""
    cli()
