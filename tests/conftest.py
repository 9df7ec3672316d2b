"""Shared fixtures: the demo pool of real ClassAds, and an in-process WSGI client (no sockets)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import cherrypy
import pytest

from bench.wsgi_client import Client, Response, lowered  # noqa: F401 (tests import them from here)
from condor_restd.demo import DemoPool
from condor_restd.settings import Settings
from condor_restd.web import make_app

DATA = Path(__file__).with_name("data")

cherrypy.log.screen = False


@pytest.fixture(scope="session")
def pool() -> DemoPool:
    return DemoPool()


# What every make_client() app starts from; a fixture may add to it (see test_web.small_batches).
CLIENT_SETTINGS: dict[str, Any] = {"cache_ttl": 0}


@pytest.fixture
def make_client(pool: DemoPool) -> Iterator[Callable[..., Client]]:
    """Build a client over an app with the given settings (keyword overrides) and backend."""
    apps = []

    def build(backend: Any = None, isolate: bool = True, **overrides: Any) -> Client:
        # No answer is reused unless a test asks for RESTD_CACHE_TTL: most tests change the pool
        # between requests. Identical concurrent requests still share one upstream call.
        # isolate=False runs pool calls in the request's thread: for tests that watch their
        # backend from here (a worker process's copy of it changes only there)
        app = make_app(Settings(**CLIENT_SETTINGS).replace(**overrides),
                       backend if backend is not None else pool, isolate)
        apps.append(app)
        return Client(app)

    yield build
    for app in apps:
        app.queries.close()


@pytest.fixture
def client(make_client: Callable[..., Client]) -> Client:
    return make_client()
