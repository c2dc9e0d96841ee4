"""Benchmark: a full conformance run against the local reference server, as `kroniker conformance run` does it
(the issue's target: under 60 s on the 2-core development machine), and a rerun of its record.

    python bench/conformance.py [--cache DIR] [--repeat 3]

Prints, per repeat: starting the server (SQLite in a fresh temporary KRONIKER_HOME) and running every server
scenario; replaying the record offline; repeating it live. Plus `kroniker conformance run` as a fresh process
(wall time, including Python's start and the imports). Figures, not asserts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kroniker.conformance import session
from kroniker.conformance.targets import LocalServer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", type=Path, help="FHIR package cache (default ~/.fhir/packages)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    runs, replays, lives = [], [], []
    for i in range(args.repeat):
        t = time.perf_counter()
        with LocalServer(package_cache=args.cache) as target:
            record = session.execute(session.SERVER, target=target, cache=args.cache, seed=1000 + i)
        runs.append(time.perf_counter() - t)
        assert record["summary"]["passed"], "the suite must pass against our own server"
        t = time.perf_counter()
        again = session.execute(session.SERVER, seed=record["seed"], replay=record)
        replays.append(time.perf_counter() - t)
        t = time.perf_counter()
        with LocalServer(package_cache=args.cache) as target:
            live = session.execute(session.SERVER, target=target, cache=args.cache, seed=record["seed"])
        lives.append(time.perf_counter() - t)
        same = not session.differences(record, again) and not session.differences(record, live)
        print(f"run {i + 1}: {len(record['cases'])} cases, "
              f"{sum(len(c['evidence']['exchanges']) for c in record['cases'])} requests; "
              f"run {runs[-1]:.2f} s, replay {replays[-1]:.2f} s, live rerun {lives[-1]:.2f} s; "
              f"same results: {same}")
    print(f"median: run {statistics.median(runs):.2f} s, replay {statistics.median(replays):.2f} s, "
          f"live rerun {statistics.median(lives):.2f} s")
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        if args.cache:
            env["KRONIKER_FHIR_PACKAGES"] = str(args.cache)
        t = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "kroniker", "conformance", "run", "-o", "run.json",
                               "--html", "run.html", "--zip", "run.zip"], cwd=tmp, env=env, capture_output=True,
                              text=True, check=False)
        wall = time.perf_counter() - t
        print(f"kroniker conformance run (fresh process, with HTML and zip): {wall:.2f} s wall, "
              f"exit {done.returncode}")


if __name__ == "__main__":
    main()
