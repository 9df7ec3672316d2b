"""A streamed queue's windows (a small first one, ids in order whatever the schedd's order), and the bench's fake schedd."""

from __future__ import annotations

import json
import random
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from condor_restd import streams
from condor_restd.encoding import Shape, block
from condor_restd.responses import Rows
from condor_restd.settings import Settings

BENCH = Path(__file__).resolve().parent.parent / "bench"
JOBS = [(c, p) for c in range(1, 61) for p in range(5)]  # 300 jobs


class Queue:
    """A fetch over JOBS in a given order, as a schedd answers: it keeps what was asked."""

    def __init__(self, order: list[tuple[int, int]]) -> None:
        self.order = order
        self.asked: list[tuple[str, int]] = []
        self.lock = threading.Lock()

    def __call__(self, source: str, schedd: str | None, query: str, ask: list[str], limit: int,
                 since: str | None, shape: Shape) -> Rows:
        window = re.findall(r"ClusterId > (\d+) \|\| \(ClusterId == \d+ && ProcId >= (\d+)\)\) && "
                            r"\(ClusterId < (\d+) \|\| \(ClusterId == \d+ && ProcId <= (\d+)\)", query)
        jobs = self.order
        if window:
            c0, p0, c1, p1 = map(int, window[0])
            jobs = sorted(j for j in jobs if (c0, p0) <= j <= (c1, p1))
        with self.lock:
            self.asked.append(("ids" if shape.records == "none" else "window", len(jobs)))
        if shape.records == "none":
            return Rows(len(jobs), ids=list(jobs))
        body, ends = block([json.dumps({"jobid": "%d.%d" % j}).encode() for j in jobs])
        return Rows(len(jobs), body, ends)


def stream(order: list[tuple[int, int]], **settings: Any) -> tuple[Queue, Any]:
    fetch = Queue(order)
    pager = streams.Pager(Settings(**settings), fetch, lambda *args: None)
    return fetch, pager.queue_stream(None, "true", None, frozenset())


def jobids(listing: Any) -> list[str]:
    """The job ids a streamed listing sends: a queue's come in blocks, a history's one by one."""
    records = [record for item in listing.records
               for record in ([item] if isinstance(item, bytes) else item)]
    return [json.loads(record)["jobid"] for record in records]


@pytest.mark.parametrize("order", ["in order", "newest first", "shuffled"])
def test_a_streamed_queue_opens_with_a_small_window_and_keeps_id_order(
        monkeypatch: pytest.MonkeyPatch, order: str) -> None:
    monkeypatch.setattr(streams, "STREAM_ABOVE", 50)
    sent = {"in order": JOBS, "newest first": JOBS[::-1],
            "shuffled": random.Random(3).sample(JOBS, len(JOBS))}[order]
    fetch, listing = stream(list(sent), max_jobs=0, stream_batch=120)
    assert listing.stream and listing.stream_tag is None  # no ETag for a streamed queue
    # the ids, and the first window before the answer is handed over (its first record is ready)
    assert fetch.asked == [("ids", 300), ("window", streams.QUEUE_FIRST_WINDOW)]
    assert jobids(listing) == ["%d.%d" % j for j in JOBS]
    assert fetch.asked[1:] == [("window", 100), ("window", 120), ("window", 80)]
    assert jobids(listing) == ["%d.%d" % j for j in JOBS]  # iterated again: fetched again
    assert fetch.asked[4:] == [("window", 100), ("window", 120), ("window", 80)]


def test_a_streamed_queue_is_capped_after_its_ids_are_put_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streams, "STREAM_ABOVE", 50)
    fetch, listing = stream(JOBS[::-1], max_jobs=250, stream_batch=100)
    assert listing.truncated
    assert jobids(listing) == ["%d.%d" % j for j in JOBS[:250]]
    assert [n for _, n in fetch.asked] == [300, 100, 100, 50]


def test_concurrent_readers_of_one_streamed_queue_all_get_all_of_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cached answer is read by every request that shares it: the ids are put in order once,
    and no reader sees the list while it is being sorted."""
    monkeypatch.setattr(streams, "STREAM_ABOVE", 50)
    many = [(c, p) for c in range(1, 20_001) for p in range(5)]
    _, listing = stream(random.Random(5).sample(many, len(many)), max_jobs=0, stream_batch=40_000)
    found: list[int] = []
    readers = [threading.Thread(target=lambda: found.append(len(jobids(listing)))) for _ in range(4)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    assert found == [len(many)] * 4


class History:
    """A fetch over history records (newest first), as a schedd reads its file: it keeps what was
    asked ("ids" or "records", the limit, since)."""

    def __init__(self, records: list[tuple[int, int]]) -> None:
        self.records = records
        self.asked: list[tuple[str, int, str | None]] = []
        self.lock = threading.Lock()

    def __call__(self, source: str, schedd: str | None, query: str, ask: list[str], limit: int,
                 since: str | None, shape: Shape) -> Rows:
        low, high = map(int, re.findall(r"ClusterId >= (\d+) && ClusterId <= (\d+)", query)[0]) \
            if "ClusterId >=" in query else (0, 1 << 40)
        stop = tuple(int(x) for x in since.split(".")) if since else None
        found = []
        for job in self.records:
            if stop is not None and job[:len(stop)] == stop:
                break
            if low <= job[0] <= high:
                found.append(job)
                if 0 < limit <= len(found):
                    break
        with self.lock:
            self.asked.append(("ids" if shape.records == "none" else "records", limit, since))
        if shape.records == "none":
            return Rows(len(found), ids=found, groups=["%d.%d" % j for j in found] if shape.group else [])
        body, ends = block([json.dumps({"jobid": "%d.%d" % j}).encode() for j in found])
        return Rows(len(found), body, ends, found)


@pytest.mark.parametrize("workers, limits", [(4, [0, 1, 6, 46]), (1, [0, 1, 6])])
def test_a_history_stream_sends_its_next_batches_while_the_ids_of_the_rest_come(
        monkeypatch: pytest.MonkeyPatch, workers: int, limits: list[int]) -> None:
    monkeypatch.setattr(streams, "STREAM_FIRST_BATCH", 5)
    records = [(1000 - n // 3, n % 3) for n in range(300)]
    fetch = History(records)
    pager = streams.Pager(Settings(max_jobs=0, stream_batch=10, query_workers=workers), fetch,
                          lambda *args: None)
    listing = pager.history_stream(None, "true", None, frozenset(), None)
    assert jobids(listing) == ["%d.%d" % job for job in records]
    # the probe (1), the first batch's ids (6); with a worker to spare, the next four batches'
    # ids (5 + 40 + 1) while those of all the rest (0) come; with none, these alone
    assert sorted(limit for kind, limit, since in fetch.asked if kind == "ids" and since is None) == limits


def test_a_history_stream_stops_when_its_two_id_queries_disagree() -> None:
    records = [(1000 - n // 3, n % 3) for n in range(3000)]
    fetch = History(records)
    other = History(records[:500] + records[501:])  # what the query for all the ids sees

    def split(source: str, schedd: str | None, query: str, ask: list[str], limit: int,
              since: str | None, shape: Shape) -> Rows:
        asked = other if limit == 0 and shape.records == "none" and since is None else fetch
        return asked(source, schedd, query, ask, limit, since, shape)

    pager = streams.Pager(Settings(max_jobs=0, stream_batch=200), split, lambda *args: None)
    with pytest.raises(streams.Unavailable):
        jobids(pager.history_stream(None, "true", None, frozenset(), None))


# ----------------------------------------------------------------------- the fake schedd

@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(BENCH))
    import fakeschedd

    yield fakeschedd
    sys.modules.pop("fakeschedd", None)


def texts(count: int) -> list[str]:
    return [f'ClusterId = {1000 - n // 2}\nProcId = {n % 2}\nOwner = "u{n % 3}"\nCmd = "/bin/x"'
            for n in range(count)]


def test_the_fake_schedd_charges_the_model_and_counts_its_own_python_toward_it(fake: Any) -> None:
    schedd = fake.FakeSchedd(texts(400), scan_us=1000.0, queue_us=0.0).start()
    try:
        wire = schedd.client()
        started = time.perf_counter()
        ads = wire.history(None, 'Owner == "u1"', ["ClusterId", "ProcId"], 0)
        took = time.perf_counter() - started
        found = schedd.taken()
        assert [dict(ad) for ad in ads[:2]] == [{"ClusterId": 1000, "ProcId": 1},
                                                {"ClusterId": 998, "ProcId": 0}]
        assert found["queries"] == 1 and found["read"] == 400 and found["sent"] == len(ads) == 133
        assert found["modelled_s"] == pytest.approx(0.4)
        # never cheaper than the model: its Python time is part of it, not added to it
        assert took >= found["taken_s"] >= found["modelled_s"]
        ads = wire.jobs(None, "true", [], 0)  # the queue: only the Python's own cost here
        assert len(ads) == 400 and set(ads[0].keys()) == {"ClusterId", "ProcId", "Owner", "Cmd"}
        found = schedd.taken()
        assert found["modelled_s"] == 0 and found["taken_s"] > 0
    finally:
        schedd.stop()

