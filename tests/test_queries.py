"""Query logic without HTTP: constraints, projections, limits, hiding, grouping, readiness."""

from __future__ import annotations

import json
from typing import Any

import pytest

from condor_restd.demo import DemoPool
from condor_restd.errors import BadRequest, NotFound, Unavailable
from condor_restd.queries import Queries, attribute_names
from condor_restd.settings import Settings


class Recording:
    """Wraps the demo pool and records what reached it."""

    def __init__(self, pool: DemoPool) -> None:
        self.pool = pool
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any) -> Any:
            self.calls.append((name, args))
            return getattr(self.pool, name)(*args)
        return call


@pytest.fixture
def backend(pool: DemoPool) -> Recording:
    return Recording(pool)


@pytest.fixture
def queries(backend: Recording) -> Any:
    q = Queries(Settings(cache_ttl=0), backend, isolate=False)
    yield q
    q.close()


def test_attribute_names() -> None:
    assert attribute_names(None) is None
    assert attribute_names("  ") is None
    assert attribute_names(" Owner , cmd,Owner ") == ["Owner", "cmd"]
    for bad in ("a b", "1x", "a,,b", "x.y", "Owner)"):
        with pytest.raises(BadRequest):
            attribute_names(bad)


def test_constraint_sent_upstream_is_parenthesised_and_anded(queries: Queries, backend: Recording) -> None:
    queries.jobs("jobs", None, 7, None, "Owner == \"bob\" || true")
    name, args = backend.calls[-1]
    assert name == "jobs"
    assert args[1] == '(Owner == "bob" || true) && ClusterId == 7'
    queries.job("history", "schedd2@vm", 5, 0)
    assert backend.calls[-1][1][1] == "ClusterId == 5 && ProcId == 0"
    queries.jobs("jobs", None)
    assert backend.calls[-1][1][1] == "true"


def test_status_name_is_a_quoted_string_literal(queries: Queries, backend: Recording) -> None:
    queries.status('x" || true || "', None, None, "startd")
    assert backend.calls[-1][1][1] == 'Name == "x\\" || true || \\""'
    queries.status("slot1@vm", None, "Memory > 0", "any")
    assert backend.calls[-1][1][1] == '(Memory > 0) && Name == "slot1@vm"'


def test_bad_input_never_reaches_the_pool(queries: Queries, backend: Recording) -> None:
    for call in (lambda: queries.jobs("jobs", None, None, None, "Owner =="),
                 lambda: queries.status(None, None, None, "bogus"),
                 lambda: queries.config(None, "shadow"),
                 lambda: queries.config("a b"),
                 lambda: queries.grouped_jobs("jobs", None, "bad-name"),
                 lambda: queries.job_attribute("jobs", None, 1, 0, "no way")):
        with pytest.raises(BadRequest):
            call()
    assert backend.calls == []


def test_projection_asks_for_the_ids_but_shows_only_what_was_asked(queries: Queries, backend: Recording) -> None:
    records = queries.jobs("jobs", None, 2, ["Cmd"]).records
    assert backend.calls[-1][1][2] == ["Cmd", "ClusterId", "ProcId"]
    assert json.loads(records[0]) == {"jobid": "2.0", "classad": {"cmd": "/bin/sleep"}}
    queries.grouped_status("State", None, ["Memory"], None, "startd")
    assert backend.calls[-1][1][2] == ["Memory", "State", "Name", "MyType"]


def test_max_jobs_is_the_upstream_limit(backend: Recording) -> None:
    q = Queries(Settings(max_jobs=5, cache_ttl=0), backend, isolate=False)
    try:
        assert len(q.jobs("history", None).records) == 5
        assert backend.calls[-1][1][3] == 6  # one more, to know the result was cut short
    finally:
        q.close()


def test_job_attribute_undefined_is_not_found(queries: Queries) -> None:
    with pytest.raises(NotFound):
        queries.job_attribute("jobs", None, 2, 0, "JobCurrentReconnectAttempt")
    assert queries.job_attribute("jobs", None, 2, 0, "CMD") == "/bin/sleep"


def test_hidden_attributes(backend: Recording) -> None:
    q = Queries(Settings(hide_job_attrs=frozenset({"environment"}), cache_ttl=0), backend)
    try:
        assert q.job_attribute("jobs", None, 18, 0, "Environment") == "<REDACTED>"
        with pytest.raises(BadRequest):
            q.jobs("jobs", None, None, None, "MY.Environment =!= undefined")
        with pytest.raises(BadRequest):
            q.grouped_jobs("jobs", None, "ENVIRONMENT")
        # status ads are not job ads: no hiding there
        assert q.status(None, None, "Environment =?= undefined", "master")
    finally:
        q.close()


def test_readiness_names_what_is_down_and_is_cached(pool: DemoPool) -> None:
    class Down(Recording):
        def __getattr__(self, name: str) -> Any:
            def call(*args: Any) -> Any:
                self.calls.append((name, args))
                if name == "jobs":
                    raise Unavailable("the schedd does not answer")
                return getattr(self.pool, name)(*args)
            return call

    down = Down(pool)
    q = Queries(Settings(cache_ttl=0), down, isolate=False)
    try:
        with pytest.raises(Unavailable) as info:
            q.readiness()
        assert "schedd" in info.value.message and "collector" not in info.value.message
        assert info.value.body()["checks"]["collector"] == "ok"
        calls = len(down.calls)
        with pytest.raises(Unavailable):
            q.readiness()
        assert len(down.calls) == calls  # answered from the brief cache
    finally:
        q.close()


def test_summary_counts_the_demo_pool(queries: Queries) -> None:
    summary = queries.summary()
    schedds = {s["name"]: s for s in summary["jobs"]["schedds"]}
    assert sorted(schedds) == ["schedd2@vm", "vm"]
    assert summary["slots"]["by_state"] == {"Unclaimed": 1, "Claimed": 6}
    assert {k: schedds["vm"][k] for k in ("running", "idle", "held")} == {"running": 4, "idle": 6, "held": 4}
    assert {k: schedds["schedd2@vm"][k] for k in ("running", "idle", "held")} == {
        "running": 2, "idle": 6, "held": 4}


def test_observer_hears_every_upstream_query(backend: Recording) -> None:
    heard: list[tuple[str, str | None]] = []

    class Ear:
        def upstream(self, daemon: str, seconds: float, failure: str | None) -> None:
            heard.append((daemon, failure))

        def cache(self, hit: bool) -> None:
            pass

    q = Queries(Settings(cache_ttl=0), backend, Ear(), isolate=False)
    try:
        q.jobs("jobs", None)
        q.status()
        q.config("NUM_CPUS", "master")
        with pytest.raises(NotFound):
            q.jobs("jobs", "nosuch")
    finally:
        q.close()
    assert heard == [("schedd", None), ("collector", None), ("master", None), ("schedd", "NotFound")]


def test_an_upstream_failure_is_logged_with_its_cause_once_per_streak(pool: DemoPool, caplog: Any) -> None:
    class Flapping(Recording):
        down = True

        def __getattr__(self, name: str) -> Any:
            def call(*args: Any) -> Any:
                if self.down:
                    raise Unavailable("querying the collector at cm.example.org:9618 failed: "
                                      "Failed communication with collector.")
                return getattr(self.pool, name)(*args)
            return call

    backend = Flapping(pool)
    q = Queries(Settings(cache_ttl=0), backend, isolate=False)
    try:
        with caplog.at_level("INFO", logger="condor_restd.queries"):
            for _ in range(3):
                with pytest.raises(Unavailable):
                    q.status()
            backend.down = False
            q.status()
            q.status()
    finally:
        q.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "condor_restd.queries"]
    assert lines == ["the collector does not answer: querying the collector at cm.example.org:9618 "
                     "failed: Failed communication with collector.", "the collector answers again"]
