"""A fake schedd in a process of its own, and the client side a daemon's workers use to ask it.

The daemon's memory is measured without the pool's data in it, as on a real pool, where the
jobs live in the schedd: the schedd process holds the ads, evaluates constraints on them, and
sends the matching ads as text; the client parses them into ClassAds, as the bindings build them.

The cost model (what a real schedd costs, not what this Python stand-in happens to cost):

- The schedd: `read_us` for every record it reads before it stops, which covers evaluating the
  constraint on it and projecting it (a real schedd does both in C++). History: `scan_us`, 66 µs
  a record on the real pool (a history helper reads the file record, parses it and evaluates
  it). Queue: `queue_us`, 0.66 µs a job at most (the whole 6.6 ms of a one-job query on a schedd
  of 10,007 jobs charged to its reads). The fake's own Python time answering a query (classad2
  evaluation, projection, joining the texts) counts toward that cost, and it sleeps only the
  rest (`max(0, modelled - spent)`): never cheaper than the model, costlier only where its
  Python is (classad2 evaluates an ad in about 3 µs here, above a queue read's 0.66 µs). The
  ads never change, so a projection's text is made once per ad (the id projection at start).
- The client (a worker, where the bindings run): `call_us` a call, and `send_us` for every KiB of
  ad text it receives and builds into ClassAds, the GIL held throughout as the bindings hold it.
  Building the ads is the real classad2 parse; its time counts toward `send_us` (the GIL is held
  for whatever of the modelled cost the parse did not take), never toward `call_us`.

`taken()` reports, besides queries and records read and sent, the schedd's modelled time and
the time it actually took (more where its Python exceeds the model), so that a bench can say
what a real schedd predicts.
"""

from __future__ import annotations

import multiprocessing
import sys
import threading
import time
from collections.abc import Sequence
from multiprocessing.connection import Client, Listener
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from condor_restd import condor
from condor_restd.demo import hold_gil

ID_PROJECTION = ("ClusterId", "ProcId")
QUEUE_US = 0.66  # a queue read, at most: a one-job query took 6.6 ms on a schedd of 10,007 jobs
# the shared counters: queries, records read, records sent, modelled µs, taken µs
QUERIES, READ, SENT, MODELLED, TAKEN = range(5)


class _Schedd:
    """The schedd process's state: its ads (newest first, as a history file is read), their
    texts, and each projection's texts made once."""

    def __init__(self, texts: Sequence[str], scan_us: float, queue_us: float, counts: Any) -> None:
        self.texts = texts
        self.ads = [ad for text in texts for ad in condor.parse_ads(text)]
        self.keys = [condor.job_id(ad)[0] for ad in self.ads]
        self.scan_us, self.queue_us, self.counts = scan_us, queue_us, counts
        self.projections: dict[tuple[str, ...], list[str | None]] = {}
        self.lock = threading.Lock()
        for i in range(len(self.ads)):  # the id pass's small ads, ready before any query
            self.projected(i, ID_PROJECTION)

    def _projection(self, names: Sequence[str]) -> list[str | None]:
        key = tuple(sorted(n.lower() for n in names))
        with self.lock:
            made = self.projections.get(key)
            if made is None:
                made = self.projections[key] = [None] * len(self.ads)
        return made

    def projected(self, i: int, names: Sequence[str]) -> str:
        made = self._projection(names)
        text = made[i]
        if text is None:
            text = made[i] = _projected(self.ads[i], names)
        return text

    def answer(self, conn: Any) -> None:
        with conn:
            try:
                source, constraint, projection, limit, since = conn.recv()
            except EOFError:
                return
            started = time.perf_counter()
            expr = condor.check_expression(constraint or "true")
            everything = constraint.strip().lower() in ("", "true")
            stop = tuple(int(x) for x in since.split(".")) if since else None
            ads, keys = self.ads, self.keys
            picked, scanned = [], 0
            for i, ad in enumerate(ads):  # newest first, as a schedd reads its history file
                scanned += 1
                if stop is not None and keys[i][:len(stop)] == stop:
                    break
                if everything or condor.matches(expr, ad):
                    picked.append(i)
                    if 0 < limit <= len(picked):
                        break
            if projection:
                made = self._projection(projection)
                body = "\n\n".join([made[i] or self.projected(i, projection)
                                     for i in picked]).encode()
            else:
                body = "\n\n".join([self.texts[i] for i in picked]).encode()
            modelled = (self.scan_us if source == "history" else self.queue_us) * scanned
            spent = (time.perf_counter() - started) * 1e6
            if modelled > spent:  # the model's cost less what the Python already took
                time.sleep((modelled - spent) / 1e6)
            taken = (time.perf_counter() - started) * 1e6
            with self.counts.get_lock():
                for field, value in ((QUERIES, 1), (READ, scanned), (SENT, len(picked)),
                                     (MODELLED, int(modelled)), (TAKEN, int(taken))):
                    self.counts[field] += value
            conn.send_bytes(body)


def _serve(address: Any, texts: Sequence[str], scan_us: float, queue_us: float, ready: Any,
           counts: Any) -> None:
    schedd = _Schedd(texts, scan_us, queue_us, counts)
    with Listener(address) as listener:
        ready.set()
        while True:
            conn = listener.accept()
            threading.Thread(target=schedd.answer, args=(conn,), daemon=True).start()


def _projected(ad: Any, projection: Sequence[str]) -> str:
    small = condor.project(ad, projection)
    return "\n".join(f"{name} = {small.lookup(name)}" for name in small.keys())


class FakeSchedd:
    """The schedd process: start() it, hand `client()` to the daemon, stop() it."""

    def __init__(self, texts: Sequence[str], scan_us: float = 0.0,
                 queue_us: float = QUEUE_US) -> None:
        self.texts, self.scan_us, self.queue_us = texts, scan_us, queue_us
        self.address = ("127.0.0.1", 0)
        self.process: Any = None
        self.counts = multiprocessing.get_context("fork").Array("q", 5)  # shared with the schedd

    def start(self) -> FakeSchedd:
        context = multiprocessing.get_context("fork")
        ready = context.Event()
        with Listener(("127.0.0.1", 0)) as probe:  # a free port
            self.address = probe.address
        self.process = context.Process(target=_serve, args=(self.address, self.texts, self.scan_us,
                                                            self.queue_us, ready, self.counts),
                                       daemon=True)
        self.process.start()
        if not ready.wait(900):
            raise RuntimeError("the fake schedd did not start")
        self.texts = ()  # the data is the schedd's now
        return self

    def client(self, call_us: float = 0.0, send_us: float = 0.0) -> Wire:
        return Wire(self.address, call_us, send_us)

    def peek(self) -> dict[str, float]:
        """Queries answered, records read and sent, and the schedd's modelled and actual
        seconds, since the last taken()."""
        with self.counts.get_lock():
            found = list(self.counts)
        return {"queries": found[QUERIES], "read": found[READ], "sent": found[SENT],
                "modelled_s": found[MODELLED] / 1e6, "taken_s": found[TAKEN] / 1e6}

    def taken(self) -> dict[str, float]:
        """peek(), and the counts back to zero."""
        with self.counts.get_lock():
            found = self.peek()
            for i in range(len(self.counts)):
                self.counts[i] = 0
        return found

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.join(10)


class Wire:
    """The daemon's side: the Condor protocol's jobs and history over the fake schedd's socket.
    Each call holds the GIL for `call_us`, and for `send_us` a KiB of ad text received, of which
    building the ads (the real parse) takes its part."""

    def __init__(self, address: Any, call_us: float, send_us: float) -> None:
        self.address, self.call_us, self.send_us = address, call_us, send_us
        self.calls = 0

    def _ask(self, source: str, constraint: str, projection: Sequence[str], limit: int,
             since: str | None) -> list[Any]:
        self.calls += 1
        with Client(self.address) as conn:
            conn.send((source, constraint, list(projection), limit, since))
            data = conn.recv_bytes()
        started = time.perf_counter()
        ads = condor.parse_ads(data.decode() + "\n\n") if data else []
        built = (time.perf_counter() - started) * 1e6
        hold_gil(self.call_us + max(0.0, self.send_us * len(data) / 1024 - built))
        return ads

    def jobs(self, schedd: str | None, constraint: str, projection: Sequence[str],
             limit: int) -> list[Any]:
        return self._ask("jobs", constraint, projection, limit, None)

    def history(self, schedd: str | None, constraint: str, projection: Sequence[str], limit: int,
                since: str | None = None) -> list[Any]:
        return self._ask("history", constraint, projection, limit, since)

    def status(self, ad_type: str, constraint: str, projection: Sequence[str]) -> list[Any]:
        return []

    def config(self, daemon: str | None) -> dict[str, Any]:
        return {}

    def config_value(self, daemon: str | None, name: str) -> Any:
        raise KeyError(name)
