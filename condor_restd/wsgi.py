"""condor_restd as a WSGI application, `condor_restd.wsgi:application`, for gunicorn or mod_wsgi."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any, Callable

import cherrypy

from . import condor
from .condor import Condor
from .settings import Settings
from .web import make_app


def create_app(config: Mapping[str, Any] | None = None, backend: Condor | None = None) -> Any:
    """The API over the pool the HTCondor configuration names, with its RESTD_* settings.

    RESTD_ADDRESS, RESTD_PORT, RESTD_THREADS, RESTD_LOG and the like belong to the hosting server
    there; a bad value of any knob raises errors.ConfigError naming it.
    """
    settings = Settings.from_config(config if config is not None else condor.param())
    cherrypy.log.screen = False  # log records propagate to the hosting server's logging instead
    return make_app(settings, backend if backend is not None else condor.HTCondor())


class LazyApplication:
    """A WSGI callable that builds the app on its first request, once, in the serving process."""

    def __init__(self, factory: Callable[[], Any] = create_app) -> None:
        self.factory = factory
        self._app: Any = None
        self._lock = threading.Lock()

    @property
    def app(self) -> Any:
        if self._app is None:
            with self._lock:
                if self._app is None:
                    self._app = self.factory()
        return self._app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        result: Iterable[bytes] = self.app(environ, start_response)
        return result


application = LazyApplication()
