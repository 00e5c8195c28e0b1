"""``nearby serve``: the gunicorn settings it runs with."""

from __future__ import annotations

import pytest
from gunicorn.config import Config

from discovery.cli import WORKER_CLASSES, gunicorn_command, gunicorn_options


def test_gevent_serves_without_access_log_by_default() -> None:
    options = gunicorn_options("127.0.0.1:8000", 2, "gevent", 4, access_log=False)
    assert options["worker_class"] == "gevent_pywsgi" and options["accesslog"] is None
    assert "threads" not in options


def test_gthread_takes_the_threads_and_the_access_log_goes_to_stdout_when_asked() -> None:
    options = gunicorn_options("127.0.0.1:8000", 3, "gthread", 6, access_log=True)
    assert options["worker_class"] == "gthread" and options["accesslog"] == "-"
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
    assert command[-1] == "discovery.wsgi:application"
    config = Config()
    parsed = config.parser().parse_args(command[3:])
    assert (parsed.bind, parsed.workers, parsed.worker_class) == (["127.0.0.1:8000"], 3, "gthread")
    assert (parsed.threads, parsed.accesslog, parsed.keepalive) == (6, "-", 5)
    default = gunicorn_command(gunicorn_options("127.0.0.1:8000", 2, "gevent", 4, False))
    assert "--access-logfile" not in default and "--threads" not in default
