"""``make bench``: every benchmark, each figure beside its baseline from the same run.

    python -m scripts.bench [--quick]

Runs, in order: the store import (``scripts.bench_import``), the nearby search
on the dense synthetic city (``scripts.bench_search``), live position updates
under query load (``scripts.bench_live``) and the pull-down screen
(``scripts.bench_discover``).  ``--quick`` runs each at a
tenth of the standard size, for a look in a couple of minutes.  Each part keeps
its own scratch database and Redis prefix; the demo's are never touched.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

STANDARD = {
    "bench_import": ["--rows", "1000000"],
    "bench_search": ["--stores", "1000000", "--bikes", "100000", "--chargers", "50000"],
    "bench_live": ["--bikes", "100000"],
    "bench_discover": ["--stores", "1000000"],
}
QUICK = {
    "bench_import": ["--rows", "100000"],
    "bench_search": ["--stores", "100000", "--bikes", "10000", "--chargers", "5000"],
    "bench_live": ["--bikes", "10000", "--seconds", "4"],
    "bench_discover": ["--stores", "100000", "--queries", "100"],
}


def main(argv: list[str] | None = None) -> int:
    """Run every benchmark; return non-zero if one failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the standard size")
    parser.add_argument("--only", choices=sorted(STANDARD), action="append")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else STANDARD
    failed = 0
    for name, arguments in plan.items():
        if args.only and name not in args.only:
            continue
        print(f"\n== {name} {' '.join(arguments)}", flush=True)
        failed += subprocess.call([sys.executable, "-m", f"scripts.{name}", *arguments]) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
