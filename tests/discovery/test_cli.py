"""``nearby serve``: the gunicorn settings it runs with."""

from __future__ import annotations

from gunicorn.config import Config

from discovery.cli import gunicorn_options


def test_threads_run_gthread_without_access_log_by_default() -> None:
    options = gunicorn_options("127.0.0.1:8000", 2, 4, access_log=False)
    assert options["worker_class"] == "gthread" and options["accesslog"] is None


def test_one_thread_runs_sync_and_the_access_log_goes_to_stdout_when_asked() -> None:
    options = gunicorn_options("127.0.0.1:8000", 3, 1, access_log=True)
    assert options["worker_class"] == "sync" and options["accesslog"] == "-"
    assert options["workers"] == 3


def test_gunicorn_accepts_every_setting() -> None:
    config = Config()
    for name, value in gunicorn_options("127.0.0.1:8000", 2, 4, access_log=False).items():
        config.set(name, value)
    assert config.worker_class_str == "gthread" and config.threads == 4
    assert config.accesslog is None
