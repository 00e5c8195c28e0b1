"""Requests per second over HTTP with wrk against ``nearby serve``, for the benchmarks.

A wrk script walks through a list of request paths in order, so that each
path is asked once while the list lasts: given as many paths as the run can
ask, every request is for a point the server has never seen.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

#: wrk's threads and connections: one wrk thread, so that the load generator
#: leaves the cores to the server; 16 connections, because gevent workers accept
#: greedily: 8 keep-alive connections often split 6/2 between the two workers,
#: and one core then waits.
WRK_THREADS, WRK_CONNECTIONS = 1, 16


@dataclass(frozen=True)
class Rate:
    """What one wrk run measured."""

    per_s: float
    requests: int
    #: How many distinct paths the run was given.
    paths: int

    @property
    def repeated(self) -> bool:
        """True when the run asked more requests than it had paths (some asked twice)."""
        return self.requests > self.paths


def have_wrk() -> bool:
    """True when wrk is installed."""
    return shutil.which("wrk") is not None


def wrk_script(paths: list[str]) -> str:
    """A wrk script that asks ``paths`` in order, from the first again when they run out."""
    script = "local paths = {" + ",".join(f'"{p}"' for p in paths) + "}\n"
    script += "local i = 0\nrequest = function()\n  i = i % #paths + 1\n"
    script += "  return wrk.format('GET', paths[i])\nend\n"
    return script


def wrk(port: int, paths: list[str], seconds: int) -> Rate:
    """Run wrk over ``paths`` for ``seconds`` against 127.0.0.1:``port``."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(wrk_script(paths))
    try:
        command = ["wrk", f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", f"-d{seconds}s"]
        command += ["-s", handle.name, f"http://127.0.0.1:{port}"]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(handle.name)
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.MULTILINE)
    done = re.search(r"^\s*(\d+) requests in", out, re.MULTILINE)
    return Rate(
        per_s=float(rate.group(1)) if rate else 0.0,
        requests=int(done.group(1)) if done else 0,
        paths=len(paths),
    )


def how_wrk(seconds: int) -> str:
    """How the HTTP figures were taken, for the benchmark's notes."""
    return f"wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} for {seconds} s"
