"""The app as uvicorn's workers build it (each worker process builds its own from the environment)."""

from __future__ import annotations

import os
import signal
import threading
import time

from starlette.applications import Starlette

from kroniker.reference_server.app import create_app
from kroniker.reference_server.settings import Settings


def app_from_env() -> Starlette:
    _follow_supervisor()
    return create_app(Settings.from_env(), run_migrations=False)


def _follow_supervisor() -> None:
    """A worker stops when its supervisor is gone (SIGKILLed supervisors leave no orphans holding the port)."""
    supervisor = os.environ.get("KRONIKER_SUPERVISOR_PID")
    if not supervisor or not supervisor.isdigit():
        return
    if os.getppid() != int(supervisor):
        os._exit(0)  # the supervisor died while this worker was still starting

    _death_signal(signal.SIGTERM)

    def watch() -> None:
        while os.getppid() == int(supervisor):
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)  # let the worker finish its requests …
        time.sleep(5)
        os.kill(os.getpid(), signal.SIGKILL)  # … but not hold the port for ever

    threading.Thread(target=watch, name="kroniker-supervisor-watch", daemon=True).start()


def _death_signal(sig: int) -> None:
    """Linux: the kernel sends `sig` to this process when its parent dies (prctl PR_SET_PDEATHSIG)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(sig), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass
