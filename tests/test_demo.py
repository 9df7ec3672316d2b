"""The demo pool: real ClassAds, evaluated by classad2, behaving as the real daemons do."""

from __future__ import annotations

import pytest

from condor_restd import condor
from condor_restd.demo import DemoPool
from condor_restd.errors import BadRequest, NotFound


def ids(ads: list[object]) -> list[str]:
    return [f"{condor.value_of(a, 'ClusterId')}.{condor.value_of(a, 'ProcId')}" for a in ads]


def test_holds_the_captured_pool(pool: DemoPool) -> None:
    assert {name: len(ads) for name, ads in pool.queues.items()} == {"vm": 14, "schedd2@vm": 12}
    assert {name: len(ads) for name, ads in pool.histories.items()} == {"vm": 28, "schedd2@vm": 12}
    assert len(pool.collector) == 23


def test_queue_comes_back_unordered_like_a_real_schedd(pool: DemoPool) -> None:
    got = ids(list(pool.jobs(None, "true", [], -1)))
    assert sorted(got, key=lambda j: tuple(map(int, j.split(".")))) != got


def test_constraints_and_projections_use_classad2(pool: DemoPool) -> None:
    ads = pool.jobs("schedd2@vm", 'ProjectName == "physics" && JobStatus == 1', ["Owner"], -1)
    assert len(ads) == 2  # 6.0 and 6.2; 6.1 is held, cluster 8 submitted on hold
    assert all(list(ad.keys()) == ["Owner"] for ad in ads)
    assert pool.jobs(None, "nosuchfunc(Owner)", [], -1) == []  # as the real schedd answers
    with pytest.raises(BadRequest):
        pool.jobs(None, "Owner ==", [], -1)


def test_history_limit_and_since(pool: DemoPool) -> None:
    assert ids(list(pool.history(None, "true", [], 5))) == ["15.1", "15.0", "13.3", "13.1", "13.2"]
    assert ids(list(pool.history(None, "true", [], -1, "ClusterId == 13"))) == ["15.1", "15.0"]
    assert ids(list(pool.history(None, "true", [], -1, "13"))) == ["15.1", "15.0"]
    assert ids(list(pool.history(None, "true", [], -1, "13.1"))) == ["15.1", "15.0", "13.3"]


def test_unknown_schedd(pool: DemoPool) -> None:
    with pytest.raises(NotFound):
        pool.jobs("schedd2", "true", [], -1)


def test_config_views(pool: DemoPool) -> None:
    assert pool.config_value(None, "NUM_CPUS") == 8
    assert pool.config_value("master", "num_cpus") == "8"
    with pytest.raises(NotFound):
        pool.config_value("master", "ACCOUNTANT_HOST")  # "Not defined" in the remote view
    assert "ACCOUNTANT_HOST" not in pool.config("master")
