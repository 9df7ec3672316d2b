"""The WSGI entry point condor_restd.wsgi:application, with param and the adapter swapped for the demo pool."""

from __future__ import annotations

import io
import json
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from condor_restd import condor, wsgi
from condor_restd.demo import DemoPool
from condor_restd.errors import ConfigError


def call(app: Any, path: str, query: str = "") -> tuple[str, Any]:
    environ = {
        "REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": query, "SERVER_NAME": "localhost",
        "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "localhost",
        "REMOTE_ADDR": "127.0.0.1", "wsgi.input": io.BytesIO(), "wsgi.errors": sys.stderr,
        "wsgi.url_scheme": "http", "wsgi.version": (1, 0), "wsgi.multithread": True,
        "wsgi.multiprocess": True, "wsgi.run_once": False,
    }
    status: list[str] = []
    result = app(environ, lambda s, headers, exc_info=None: status.append(s))
    try:
        body = b"".join(result)
    finally:
        getattr(result, "close", lambda: None)()
    return status[0], json.loads(body)


@pytest.fixture
def pool_config(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """htcondor2.param answers from a dict, and the real adapter is the demo pool: no pool needed."""
    config: dict[str, Any] = {}
    built: list[DemoPool] = []

    def adapter() -> DemoPool:
        built.append(DemoPool())
        return built[-1]

    monkeypatch.setattr(condor, "param", lambda: config)
    monkeypatch.setattr(condor, "HTCondor", adapter)
    yield config


def test_application_builds_on_its_first_request(pool_config: dict[str, Any]) -> None:
    pool_config["RESTD_MAX_JOBS"] = "3"
    app = wsgi.LazyApplication()
    assert app._app is None  # importing the module touched nothing
    status, body = call(app, "/v1/jobs/DEFAULT", "projection=Owner")
    assert status.startswith("200") and len(body) == 3  # RESTD_MAX_JOBS read through param
    first = app.app
    assert call(app, "/v1")[0].startswith("200")
    assert app.app is first  # built once
    first.queries.close()


def test_the_module_level_application_is_lazy() -> None:
    assert isinstance(wsgi.application, wsgi.LazyApplication)
    assert callable(wsgi.application)


def test_create_app_reads_restd_settings(pool_config: dict[str, Any]) -> None:
    pool_config.update(RESTD_HIDE_JOB_ATTRS="Environment", RESTD_CORS_ORIGINS="https://dash.example.org")
    app = wsgi.create_app()
    try:
        assert app.queries.settings.cors_origins == ("https://dash.example.org",)
        status, value = call(app, "/v1/jobs/DEFAULT/18/0/Environment")
        assert status.startswith("200") and value == "<REDACTED>"
    finally:
        app.queries.close()


def test_create_app_with_explicit_config_and_backend() -> None:
    app = wsgi.create_app({"RESTD_MAX_JOBS": "1"}, DemoPool())
    try:
        status, body = call(app, "/v1/history/DEFAULT", "projection=Owner")
        assert status.startswith("200") and len(body) == 1
    finally:
        app.queries.close()


def test_a_bad_knob_is_a_config_error_naming_it(pool_config: dict[str, Any]) -> None:
    pool_config["RESTD_QUERY_TIMEOUT"] = "forever"
    with pytest.raises(ConfigError) as info:
        wsgi.create_app()
    assert info.value.knob == "RESTD_QUERY_TIMEOUT" and info.value.value == "forever"


def test_concurrent_first_requests_build_one_app() -> None:
    built: list[Any] = []
    gate = threading.Barrier(8)

    def factory() -> Any:
        built.append(1)
        return lambda environ, start_response: [b"ok"]

    app = wsgi.LazyApplication(factory)

    def first_request() -> None:
        gate.wait(5)
        app({}, lambda *args: None)

    threads = [threading.Thread(target=first_request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert built == [1]
