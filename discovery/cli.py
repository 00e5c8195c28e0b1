"""The ``nearby`` console script: the index's commands plus ``serve``."""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
from collections.abc import Mapping

import click

from indexer.cli.main import cli

#: gunicorn worker classes ``nearby serve`` offers, by the name it takes: gunicorn's
#: ``gevent_pywsgi``, ``gthread`` and ``sync``, answering their own errors as JSON.
WORKER_CLASSES = {
    "gevent": "discovery.server.workers.GeventWorker",
    "gthread": "discovery.server.workers.ThreadedWorker",
    "sync": "discovery.server.workers.PlainWorker",
}


def control_socket_path(host: str, port: int, environ: Mapping[str, str] | None = None) -> str:
    """The control socket of the instance serving ``host:port``: one of its own.

    gunicorn's default (``$XDG_RUNTIME_DIR/gunicorn.ctl``, else
    ``~/.gunicorn/gunicorn.ctl``) is one path for every instance a user runs:
    each would take it over from the one before and remove it on exit. Two
    instances never serve the same address, so the path names it, in the same
    folder.
    """
    env = os.environ if environ is None else environ
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        folder = runtime
    else:
        folder = os.path.join(os.path.expanduser("~"), ".gunicorn")
    return os.path.join(folder, f"nearby-{host}-{port}.ctl")


def gunicorn_options(
    bind: str,
    workers: int,
    worker_class: str,
    threads: int,
    access_log: bool,
    control_socket: str | None = None,
    metrics_bind: str | None = None,
) -> dict[str, object]:
    """gunicorn settings for ``nearby serve``.

    ``gevent`` (the default) serves each connection in a greenlet with gevent's
    WSGI server, connections kept alive: of the worker classes gunicorn has, the
    one that spends the least worker CPU a request (``gthread`` runs ``threads``
    threads per worker). ``sync`` closes every connection (a TCP handshake per request).
    The access log is off unless asked for: writing a line per request costs a
    fair share of a short request's time; its lines, and gunicorn's own, are
    written by :class:`discovery.server.accesslog.AccessLogger`. ``metrics_bind``: a
    second address, where only /metrics answers. Without ``control_socket``
    there is none (gunicorn's ``gunicornc`` cannot reach the instance).
    """
    options: dict[str, object] = {
        "config": "python:discovery.server.gunicorn_conf",
        "bind": [bind] if metrics_bind is None else [bind, metrics_bind],
        "workers": workers,
        "worker_class": WORKER_CLASSES[worker_class],
        "accesslog": "-" if access_log else None,
        "logger_class": "discovery.server.accesslog.AccessLogger",
        "keepalive": 5,
        "control_socket": control_socket,
        "control_socket_disable": control_socket is None,
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
    "control_socket": "--control-socket",
    "control_socket_disable": "--no-control-socket",
}


def gunicorn_command(options: dict[str, object]) -> list[str]:
    """The gunicorn command line that runs the API with ``options``.

    None and False leave a setting unset; True is a flag without a value.
    """
    command = [sys.executable, "-m", "gunicorn"]
    for name, value in options.items():
        for item in value if isinstance(value, list) else [value]:
            if item is True:
                command.append(FLAGS[name])
            elif item is not None and item is not False:
                command += [FLAGS[name], str(item)]
    return [*command, "discovery.server.wsgi:application"]


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
    "--control-socket",
    type=click.Path(dir_okay=False),
    help="gunicorn's control socket (gunicornc -s PATH) "
    "[default: $XDG_RUNTIME_DIR/nearby-HOST-PORT.ctl, else ~/.gunicorn/nearby-HOST-PORT.ctl]",
)
@click.option("--no-control-socket", is_flag=True, help="run without a control socket")
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
    control_socket: str | None,
    no_control_socket: bool,
    metrics_port: int | None,
) -> None:
    """Serve the HTTP API with gunicorn.

    The settings are checked here (and a cursor secret made for the workers
    to share when none is set); then this process becomes gunicorn's master
    (same pid, so signals reach it), a fresh interpreter that has imported none
    of the app: each worker imports it after its worker class has set up (see
    :mod:`discovery.server.wsgi`). The workers count into a fresh metrics directory of
    this run's own (see :mod:`discovery.api.metrics`), which they and every process
    they start inherit.
    """
    from discovery.settings import CURSOR_SECRET, ApiSettings
    from indexer.settings import ConfigError

    try:
        settings = ApiSettings.from_env()
    except ConfigError as exc:
        raise click.UsageError(f"bad configuration: {exc}") from exc
    metrics_port = metrics_port or settings.observe.metrics_port
    if metrics_port == port:
        raise click.UsageError("the metrics port must differ from --port")
    # Every worker must sign cursors alike: without a configured secret, one
    # made here for this run (a restart makes the cursors handed out invalid).
    if not os.environ.get(CURSOR_SECRET):
        os.environ[CURSOR_SECRET] = secrets.token_urlsafe(32)
    prepare_worker_environment(metrics_port)
    if not no_control_socket and control_socket is None:
        control_socket = control_socket_path(host, port)
    metrics_bind = None if metrics_port is None else f"{host}:{metrics_port}"
    options = gunicorn_options(
        f"{host}:{port}",
        workers,
        worker_class,
        threads,
        access_log,
        None if no_control_socket else control_socket,
        metrics_bind,
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
    from discovery.server.gunicorn_conf import METRICS_DIR_PREFIX

    parent = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix=METRICS_DIR_PREFIX, dir=parent)
    if metrics_port is None:
        os.environ.pop("NEARBY_METRICS_PORT", None)
    else:
        os.environ["NEARBY_METRICS_PORT"] = str(metrics_port)


def main() -> None:
    """Entry point of the console script."""
    cli()
