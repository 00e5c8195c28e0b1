"""gunicorn's configuration for ``nearby serve`` (``-c python:discovery.server.gunicorn_conf``).

Loaded by gunicorn's master, before any worker: it imports nothing of the app.
``nearby serve`` makes a fresh prometheus-client multiprocess directory for
each run (the workers' counts); the master removes it when it exits. A worker
closes its connections when it exits.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

#: The name every directory that ``nearby serve`` makes starts with.
METRICS_DIR_PREFIX = "nearby-metrics-"


def on_exit(server: Any) -> None:
    """Remove this run's metrics directory (gunicorn calls it once the workers are gone)."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    if os.path.basename(directory.rstrip("/")).startswith(METRICS_DIR_PREFIX):
        shutil.rmtree(directory, ignore_errors=True)


def worker_exit(server: Any, worker: Any) -> None:
    """Flush the worker's counts; close its PostGIS pool and Redis connections while its
    hub still runs.

    Left to the interpreter's end, the pool's threads (greenlets under gevent)
    are finalized first, and its clean-up prints a traceback past the logs.
    In the master (a worker that died) there is no app: nothing to close.
    """
    extensions = getattr(getattr(worker, "wsgi", None), "extensions", None) or {}
    metrics = extensions.get("nearby.metrics")
    if metrics is not None:
        metrics.close()  # its last counts to the metrics directory
    services = extensions.get("nearby")
    if services is not None:
        services.close()
