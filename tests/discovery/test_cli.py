"""``nearby serve``: the gunicorn settings it runs with."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from gunicorn.config import Config

from discovery.cli import (
    WORKER_CLASSES,
    cli,
    control_socket_path,
    gunicorn_command,
    gunicorn_options,
)


def test_gevent_serves_without_access_log_by_default() -> None:
    options = gunicorn_options("127.0.0.1:8000", 2, "gevent", 4, access_log=False)
    assert options["worker_class"] == "discovery.server.workers.GeventWorker"
    assert options["accesslog"] is None
    assert "threads" not in options


def test_gthread_takes_the_threads_and_the_access_log_goes_to_stdout_when_asked() -> None:
    options = gunicorn_options("127.0.0.1:8000", 3, "gthread", 6, access_log=True)
    assert options["worker_class"] == "discovery.server.workers.ThreadedWorker"
    assert options["accesslog"] == "-"
    assert (options["workers"], options["threads"]) == (3, 6)


@pytest.mark.parametrize("worker_class", sorted(WORKER_CLASSES))
def test_gunicorn_accepts_every_setting(worker_class: str) -> None:
    config = Config()
    for name, value in gunicorn_options("127.0.0.1:8000", 2, worker_class, 4, False).items():
        config.set(name, value)
    assert config.worker_class_str == WORKER_CLASSES[worker_class]
    assert config.accesslog is None
    # gunicorn can load the class (gevent is installed).
    assert config.worker_class is not None


def test_the_command_line_carries_every_setting_gunicorn_takes() -> None:
    options = gunicorn_options("127.0.0.1:8000", 3, "gthread", 6, access_log=True)
    command = gunicorn_command(options)
    assert command[-1] == "discovery.server.wsgi:application"
    config = Config()
    parsed = config.parser().parse_args(command[3:])
    assert (parsed.bind, parsed.workers, parsed.worker_class) == (
        ["127.0.0.1:8000"],
        3,
        "discovery.server.workers.ThreadedWorker",
    )
    assert (parsed.threads, parsed.accesslog, parsed.keepalive) == (6, "-", 5)
    assert parsed.control_socket_disable is True
    default = gunicorn_command(gunicorn_options("127.0.0.1:8000", 2, "gevent", 4, False))
    assert "--access-logfile" not in default and "--threads" not in default
    socket = gunicorn_options("127.0.0.1:8000", 2, "gevent", 4, False, "/run/x.ctl")
    parsed = config.parser().parse_args(gunicorn_command(socket)[3:])
    assert (parsed.control_socket, parsed.control_socket_disable) == ("/run/x.ctl", None)


def test_each_address_has_a_control_socket_of_its_own(tmp_path: Path) -> None:
    env = {"XDG_RUNTIME_DIR": str(tmp_path)}
    assert control_socket_path("127.0.0.1", 8000, env) == str(
        tmp_path / "nearby-127.0.0.1-8000.ctl"
    )
    assert control_socket_path("127.0.0.1", 8001, env) == str(
        tmp_path / "nearby-127.0.0.1-8001.ctl"
    )
    home = Path.home() / ".gunicorn" / "nearby-0.0.0.0-80.ctl"
    assert control_socket_path("0.0.0.0", 80, {"XDG_RUNTIME_DIR": "/no/such/dir"}) == str(home)


def test_a_metrics_port_binds_a_second_address_and_our_logger_writes_the_lines() -> None:
    options = gunicorn_options(
        "127.0.0.1:8000", 2, "gevent", 4, False, metrics_bind="127.0.0.1:9464"
    )
    parsed = Config().parser().parse_args(gunicorn_command(options)[3:])
    assert parsed.bind == ["127.0.0.1:8000", "127.0.0.1:9464"]
    assert parsed.logger_class == "discovery.server.accesslog.AccessLogger"
    assert parsed.config == "python:discovery.server.gunicorn_conf"
    config = Config()
    for name, value in options.items():
        config.set(name, value)
    assert config.logger_class.__name__ == "AccessLogger"


def test_serve_refuses_a_bad_metrics_port(cli_env: dict[str, str]) -> None:
    runner = CliRunner()
    same = runner.invoke(cli, ["serve", "--port", "8000", "--metrics-port", "8000"], env=cli_env)
    assert same.exit_code == 2 and "must differ from --port" in same.output
    bad = runner.invoke(cli, ["serve"], env={**cli_env, "NEARBY_METRICS_PORT": "metrics"})
    assert bad.exit_code == 2 and "NEARBY_METRICS_PORT" in bad.output
