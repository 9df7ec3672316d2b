"""Single flight and the TTL cache."""

from __future__ import annotations

import threading
import time

import pytest

from condor_restd.cache import FRESH, SingleFlight


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_answers_are_kept_for_the_ttl() -> None:
    clock = Clock()
    cache: SingleFlight[int] = SingleFlight(ttl=2, clock=clock)
    calls = []

    def compute() -> int:
        calls.append(1)
        return len(calls)

    assert cache.get("k", compute) == (1, False)
    assert cache.get("k", compute) == (1, True)
    clock.now = 1.9
    assert cache.get("k", compute) == (1, True)
    clock.now = 2.0
    assert cache.get("k", compute) == (2, False)
    assert cache.get("other", compute) == (3, False)


def test_ttl_zero_keeps_nothing() -> None:
    cache: SingleFlight[int] = SingleFlight(ttl=0)
    counter = iter(range(10))
    assert cache.get("k", lambda: next(counter)) == (0, False)
    assert cache.get("k", lambda: next(counter)) == (1, False)


def test_concurrent_callers_share_one_call() -> None:
    cache: SingleFlight[str] = SingleFlight(ttl=0)
    started, release = threading.Event(), threading.Event()
    calls = []

    def slow() -> str:
        calls.append(1)
        started.set()
        release.wait(5)
        return "answer"

    results: list[tuple[str, bool]] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("k", slow))) for _ in range(32)]
    threads[0].start()
    started.wait(5)
    for t in threads[1:]:
        t.start()
    time.sleep(0.1)
    release.set()
    for t in threads:
        t.join(5)
    assert len(calls) == 1
    assert sorted(results) == [("answer", False)] + [("answer", True)] * 31


def test_errors_are_shared_but_not_kept() -> None:
    cache: SingleFlight[int] = SingleFlight(ttl=10)
    with pytest.raises(ValueError):
        cache.get("k", lambda: (_ for _ in ()).throw(ValueError("down")))
    assert cache.get("k", lambda: 7) == (7, False)


def test_keep_predicate_and_size_bound() -> None:
    cache: SingleFlight[list[int]] = SingleFlight(ttl=10, entries=2)
    cache.get("big", lambda: [0] * 100, keep=lambda v: len(v) < 10)
    assert cache.get("big", lambda: [1], keep=lambda v: len(v) < 10) == ([1], False)
    cache.get("a", lambda: [1])
    cache.get("b", lambda: [2])
    cache.get("c", lambda: [3])
    assert cache.get("a", lambda: [9]) == ([9], False)  # evicted, least recently used
    assert cache.get("c", lambda: [9]) == ([3], True)


def test_weight_budget() -> None:
    cache: SingleFlight[str] = SingleFlight(ttl=10, budget=100, weigh=len)
    cache.get("a", lambda: "x" * 20)
    cache.get("b", lambda: "x" * 20)
    assert cache.get("huge", lambda: "x" * 30) == ("x" * 30, False)  # over a quarter: not kept
    assert cache.get("huge", lambda: "y") == ("y", False)
    for key in "cdefg":
        cache.get(key, lambda: "x" * 20)
    assert cache.get("a", lambda: "new") == ("new", False)  # pushed out by the budget
    assert cache.get("g", lambda: "new") == ("x" * 20, True)


def test_a_fresh_request_asks_again_and_keeps_what_it_got() -> None:
    """Cache-Control: no-cache (render sets FRESH): no kept answer, no shared flight."""
    cache: SingleFlight[int] = SingleFlight(ttl=60)
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        return len(calls)

    assert cache.get("k", compute) == (1, False)
    token = FRESH.set(True)
    try:
        assert cache.get("k", compute) == (2, False)
    finally:
        FRESH.reset(token)
    assert cache.get("k", compute) == (2, True)  # later requests share the fresh answer


def test_a_fresh_request_does_not_join_a_query_in_flight() -> None:
    cache: SingleFlight[str] = SingleFlight(ttl=0)
    started, release = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        release.wait(5)
        return "old"

    worker = threading.Thread(target=cache.get, args=("k", slow))
    worker.start()
    assert started.wait(5)
    token = FRESH.set(True)
    try:
        assert cache.get("k", lambda: "new") == ("new", False)  # did not wait for "old"
    finally:
        FRESH.reset(token)
        release.set()
        worker.join()


def test_clear_keeps_no_answer_that_was_being_computed() -> None:
    """An action clears the cache while a read is under way: that read's answer, possibly from
    before the action, is given to its callers but not kept, and a new caller computes again."""
    flights: SingleFlight[int] = SingleFlight(ttl=60)
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def slow() -> int:
        calls.append(1)
        started.set()
        release.wait(5)
        return len(calls)

    reader = threading.Thread(target=flights.get, args=("k", slow))
    reader.start()
    started.wait(5)
    flights.clear()
    release.set()
    reader.join(5)
    value, hit = flights.get("k", lambda: 99)
    assert (value, hit) == (99, False)
