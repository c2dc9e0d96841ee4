"""`kroniker serve --workers 2` as an operator runs it: prompt answers on kept-alive connections, and no worker
left serving when the server is killed.

Both found while benchmarking (bench/server.py) and testing durability (tests/test_server_durability.py).
"""

from __future__ import annotations

import os
import signal
import statistics
import time
from pathlib import Path

import httpx

from kroniker.validators.packages import PackageCache
from tests.server_process import ServerProcess


def test_two_workers_answer_kept_alive_requests_promptly(package_cache: PackageCache, tmp_path: Path) -> None:
    with ServerProcess(f"sqlite:///{tmp_path / 'k.db'}", package_cache.root, tmp_path / "home", workers=2) as server:
        server.start()
        with httpx.Client(base_url=server.url, timeout=10.0) as client:
            client.get("/health")
            ms = []
            for _ in range(20):
                t = time.perf_counter()
                assert client.get("/health").status_code == 200
                ms.append((time.perf_counter() - t) * 1000)
    assert statistics.median(ms) < 25, f"/health on a kept-alive connection: median {statistics.median(ms):.1f} ms"


def test_killing_a_multi_worker_server_stops_all_of_it(package_cache: PackageCache, tmp_path: Path) -> None:
    with ServerProcess(f"sqlite:///{tmp_path / 'k.db'}", package_cache.root, tmp_path / "home", workers=2) as server:
        server.start()
        assert server.proc is not None
        os.kill(server.proc.pid, signal.SIGKILL)  # the supervisor only, as a crash or the OOM killer would
        server.proc.wait(timeout=10)
        deadline = time.monotonic() + 3.0
        answering = True
        while answering and time.monotonic() < deadline:
            try:
                httpx.get(f"{server.url}/health", timeout=1.0)
                time.sleep(0.2)
            except httpx.TransportError:
                answering = False
        # the `with` block ends the whole session, orphans included
    assert not answering, "the workers of a killed server still answer 3 s later"
