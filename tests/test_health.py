"""Health probes: /healthz never touches the pool; /readyz names what is down, and caches its answer."""

from __future__ import annotations

import time
from typing import Any, Callable

import pytest

from condor_restd import queries
from condor_restd.demo import DemoPool
from condor_restd.errors import Timeout, Unavailable

from .conftest import Client


class CountingPool(DemoPool):
    """The demo pool, counting calls; `down` names the parts that raise Unavailable."""

    def __init__(self, down: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.down = down
        self.calls: list[str] = []

    def status(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append("status")
        if "collector" in self.down:
            raise Unavailable("cannot reach the collector at cm.example.org")
        return super().status(*args, **kwargs)

    def jobs(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append("jobs")
        if "schedd" in self.down:
            raise Unavailable("cannot reach the schedd")
        return super().jobs(*args, **kwargs)


class NoPool:
    """A backend every call to which fails the test."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"/healthz touched the pool ({name})")


# ---------------------------------------------------------------------------- /healthz

def test_healthz_is_ok_without_touching_the_pool(make_client: Callable[..., Client]) -> None:
    client = make_client(NoPool())
    r = client.get("/healthz")
    assert r.status == 200 and r.json() == {"status": "ok"}
    assert client.request("HEAD", "/healthz").status == 200


def test_healthz_is_ok_while_the_pool_is_down(make_client: Callable[..., Client]) -> None:
    pool = CountingPool(down=("collector", "schedd"))
    client = make_client(pool, isolate=False)
    assert client.get("/healthz").json() == {"status": "ok"}
    assert pool.calls == []


def test_healthz_takes_no_parameters_but_the_cache_buster(client: Client) -> None:
    assert client.get("/healthz", {"_": "1700000000"}).status == 200
    r = client.get("/healthz", {"verbose": "1"})
    assert r.status == 200 and "ignored unknown query parameter 'verbose'" in r.headers["warning"]


# ----------------------------------------------------------------------------- /readyz

def test_readyz_when_the_pool_answers(client: Client) -> None:
    r = client.get("/readyz")
    assert r.status == 200
    assert r.json() == {"status": "ready", "checks": {"collector": "ok", "schedd": "ok"}}


@pytest.mark.parametrize("down,named", [(("collector",), "collector"), (("schedd",), "schedd"),
                                        (("collector", "schedd"), "collector and schedd")])
def test_readyz_names_what_is_down(make_client: Callable[..., Client], down: tuple[str, ...],
                                   named: str) -> None:
    client = make_client(isolate=False, backend=CountingPool(down=down))
    r = client.get("/readyz")
    assert r.status == 503
    assert r.headers["retry-after"].isdigit()
    body = r.json()
    assert body["status"] == 503
    assert body["message"] == f"not ready: {named} not reachable"
    for part in ("collector", "schedd"):
        if part in down:
            assert body["checks"][part] != "ok" and "cannot reach" in body["checks"][part]
        else:
            assert body["checks"][part] == "ok"


def test_readyz_reports_a_timeout(make_client: Callable[..., Client]) -> None:
    class SlowSchedd(DemoPool):
        def jobs(self, *args: Any, **kwargs: Any) -> Any:
            raise Timeout("the schedd query took too long")

    r = make_client(SlowSchedd()).get("/readyz")
    assert r.status == 503 and "schedd" in r.json()["message"]


def test_readyz_caches_its_answer(make_client: Callable[..., Client]) -> None:
    pool = CountingPool()
    client = make_client(pool, isolate=False)
    for _ in range(20):
        assert client.get("/readyz").status == 200
    assert pool.calls == ["status", "jobs"], "twenty probes, one look at the pool"


def test_readyz_caches_failures_too_and_looks_again_later(make_client: Callable[..., Client],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queries, "READY_CACHE_SECONDS", 0.2)
    pool = CountingPool(down=("schedd",))
    client = make_client(pool, isolate=False)
    assert client.get("/readyz").status == 503
    assert client.get("/readyz").status == 503
    assert pool.calls == ["status", "jobs"]
    pool.down = ()
    assert client.get("/readyz").status == 503  # still the cached answer
    time.sleep(0.25)
    assert client.get("/readyz").status == 200
    assert pool.calls == ["status", "jobs", "status", "jobs"]


def test_readyz_cache_is_a_few_seconds() -> None:
    assert 1 <= queries.READY_CACHE_SECONDS <= 10


def test_readyz_in_yaml(make_client: Callable[..., Client]) -> None:
    client = make_client(isolate=False, backend=CountingPool(down=("collector",)))
    r = client.get("/readyz", {"format": "yaml"})
    assert r.status == 503 and r.headers["content-type"].startswith("application/yaml")
    assert "checks:" in r.text
