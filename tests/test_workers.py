"""Worker processes: calls cross as bytes, workers are recycled and reaped, and a backend that holds
the GIL as the bindings do shows why processes and not threads."""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable

import pytest

from condor_restd.demo import CostlyPool, DemoPool, hold_gil
from condor_restd.encoding import Shape
from condor_restd.errors import NotFound
from condor_restd.responses import Rows
from condor_restd.workers import Pool

from .conftest import Client


def children() -> set[int]:
    """This process's live (not zombie) child processes."""
    found = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            fields = open(f"/proc/{name}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z":
            found.add(int(name))
    return found


@pytest.fixture
def workers(pool: DemoPool) -> Any:  # the session's demo pool, in worker processes
    running = Pool(pool, workers=2, timeout=10)
    yield running
    running.close()


def test_a_call_comes_back_as_rows_of_bytes_from_another_process(workers: Pool) -> None:
    pool = workers
    rows = pool.call("jobs", None, "ClusterId == 2", [], 0, Shape(sort=True))
    assert isinstance(rows, Rows) and rows.ids == [(2, 0), (2, 1), (2, 2)]
    assert all(isinstance(record, bytes) for record in rows.records)
    assert pool.pids() and os.getpid() not in pool.pids()
    with pytest.raises(NotFound):  # a RestdError crosses with its class and message
        pool.call("jobs", "nosuch", "true", [], 0, Shape())


def test_workers_are_replaced_after_their_calls(pool: DemoPool) -> None:
    workers = Pool(pool, workers=1, timeout=10, max_calls=3)
    try:
        seen = []
        for _ in range(7):
            workers.call("config_value", None, "NUM_CPUS")
            seen += workers.pids()
        assert len(set(seen)) == 3  # calls 1-3, 4-6, then 7 in a third worker
    finally:
        workers.close()


class Hungry(DemoPool):
    """Leaves 80 MiB behind in the worker on every history call, as a big answer does."""

    kept: list[bytes] = []

    def history(self, *args: Any, **kwargs: Any) -> Any:
        Hungry.kept.append(b"x" * (80 << 20))  # touched, so resident
        return super().history(*args, **kwargs)


def test_a_worker_that_grew_too_much_is_replaced_and_its_memory_returned() -> None:
    workers = Pool(Hungry(), workers=1, timeout=10, max_growth=32 << 20)
    try:
        workers.call("jobs", None, "true", [], 0, Shape())
        (small,) = workers.pids()
        workers.call("jobs", None, "true", [], 0, Shape())
        assert workers.pids() == [small]  # small calls keep their worker
        workers.call("history", None, "true", [], 0, None, Shape())
        assert workers.pids() == []  # replaced after its call: the next call gets a fresh one
        deadline = time.monotonic() + 5
        while small in children() and time.monotonic() < deadline:
            time.sleep(0.02)
            workers.call("status", "any", "false", [], Shape(records="status"))
        assert small not in children()
    finally:
        workers.close()


def test_close_leaves_no_process_behind(pool: DemoPool) -> None:
    before = children()
    workers = Pool(pool, workers=3, timeout=10)
    calls = [threading.Thread(target=workers.call, args=("jobs", None, "true", [], 0, Shape()))
             for _ in range(3)]
    for t in calls:
        t.start()
    for t in calls:
        t.join(10)
    assert len(children() - before) >= 1
    workers.close()
    assert children() - before == set()


def _spin_during(wait: Callable[[], None]) -> int:
    """How far a spinning thread gets while this thread runs `wait`."""
    ran = [0]
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            ran[0] += 1

    thread = threading.Thread(target=spin)
    thread.start()
    try:
        time.sleep(0.02)
        before = ran[0]
        wait()
        return ran[0] - before
    finally:
        stop.set()
        thread.join()


def test_the_costly_pool_holds_the_gil_while_the_schedd_works() -> None:
    for _ in range(5):  # a busy machine can starve the spinning thread of the second core too
        held = _spin_during(lambda: hold_gil(200_000))  # 0.2 s inside one C call keeping the GIL
        free = _spin_during(lambda: time.sleep(0.2))  # the same wait, releasing it
        if free > 20 * max(held, 1_000):
            return
    raise AssertionError((held, free))


def _burst(client: Client, count: int) -> float:
    """Seconds for `count` different single-job requests sent at once."""
    statuses: list[int] = []
    threads = [threading.Thread(target=lambda n=n: statuses.append(
        client.get(f"/v1/jobs/DEFAULT/2/{n % 3}", {"projection": f"Attr{n}"}).status))
        for n in range(count)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert statuses == [200] * count
    return time.perf_counter() - started


def test_workers_run_gil_holding_calls_side_by_side_where_threads_queue(
        make_client: Callable[..., Client]) -> None:
    costly = CostlyPool(call_us=40_000)  # 40 ms a query, the GIL held throughout
    workers = make_client(backend=costly, query_workers=4, threads=8)
    threads = make_client(backend=costly, query_workers=4, threads=8, isolate=False)
    _burst(workers, 4)  # fork the workers first
    in_workers, in_threads = _burst(workers, 8), _burst(threads, 8)
    # 8 calls of 40 ms: one after the other in threads (0.32 s), four at a time in workers
    assert in_threads > 0.3 and in_threads / in_workers > 2, (in_threads, in_workers)
