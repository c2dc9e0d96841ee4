"""The app as uvicorn's workers build it (each worker process builds its own from the environment)."""

from __future__ import annotations

from starlette.applications import Starlette

from kroniker.reference_server.app import create_app
from kroniker.reference_server.settings import Settings


def app_from_env() -> Starlette:
    return create_app(Settings.from_env(), run_migrations=False)
