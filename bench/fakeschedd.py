"""A fake schedd in a process of its own, and the client side a daemon's workers use to ask it.

The daemon's memory is measured without the pool's data in it, as on a real pool, where the
jobs live in the schedd: the schedd process holds the ads, evaluates constraints on them, and
sends the matching ads as text; the client parses them into ClassAds, as the bindings build
them. Each call costs the client `call_us` with the GIL held (what the bindings hold while a
schedd answers), and the schedd `scan_us` for every record it reads before it stops.
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


def _serve(address: Any, texts: Sequence[str], scan_us: float, ready: Any, counts: Any) -> None:
    ads = [ad for text in texts for ad in condor.parse_ads(text)]
    keys = [condor.job_id(ad)[0] for ad in ads]
    with Listener(address) as listener:
        ready.set()
        while True:
            conn = listener.accept()
            threading.Thread(target=_answer, args=(conn, ads, keys, texts, scan_us, counts),
                             daemon=True).start()


def _answer(conn: Any, ads: list[Any], keys: list[tuple[int, int]], texts: Sequence[str],
            scan_us: float, counts: Any) -> None:
    with conn:
        try:
            constraint, projection, limit, since = conn.recv()
        except EOFError:
            return
        expr = condor.check_expression(constraint or "true")
        everything = constraint.strip().lower() in ("", "true")
        stop = tuple(int(x) for x in since.split(".")) if since else None
        picked, scanned = [], 0
        for i, ad in enumerate(ads):  # newest first, as a schedd reads its history file
            scanned += 1
            if stop is not None and keys[i][:len(stop)] == stop:
                break
            if everything or condor.matches(expr, ad):
                picked.append(i)
                if 0 < limit <= len(picked):
                    break
        with counts.get_lock():
            counts[0] += 1
            counts[1] += scanned
            counts[2] += len(picked)
        time.sleep(scan_us * scanned / 1e6)
        if projection:
            out = [_projected(ads[i], projection) for i in picked]
        else:
            out = [texts[i] for i in picked]
        conn.send_bytes("\n\n".join(out).encode())


def _projected(ad: Any, projection: Sequence[str]) -> str:
    small = condor.project(ad, projection)
    return "\n".join(f"{name} = {small.lookup(name)}" for name in small.keys())


class FakeSchedd:
    """The schedd process: start() it, hand `client()` to the daemon, stop() it."""

    def __init__(self, texts: Sequence[str], scan_us: float = 0.0) -> None:
        self.texts, self.scan_us = texts, scan_us
        self.address = ("127.0.0.1", 0)
        self.process: Any = None
        # queries, records read, records sent: shared with the schedd process
        self.counts = multiprocessing.get_context("fork").Array("q", 3)

    def start(self) -> FakeSchedd:
        context = multiprocessing.get_context("fork")
        ready = context.Event()
        with Listener(("127.0.0.1", 0)) as probe:  # a free port
            self.address = probe.address
        self.process = context.Process(target=_serve, args=(self.address, self.texts, self.scan_us,
                                                            ready, self.counts), daemon=True)
        self.process.start()
        if not ready.wait(600):
            raise RuntimeError("the fake schedd did not start")
        self.texts = ()  # the data is the schedd's now
        return self

    def client(self, call_us: float = 0.0, send_us: float = 0.0) -> Wire:
        return Wire(self.address, call_us, send_us)

    def taken(self) -> tuple[int, int, int]:
        """Queries answered, records read and records sent since the last call."""
        with self.counts.get_lock():
            found = (self.counts[0], self.counts[1], self.counts[2])
            self.counts[0] = self.counts[1] = self.counts[2] = 0
        return found

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.join(10)


class Wire:
    """The daemon's side: the Condor protocol's jobs and history over the fake schedd's socket."""

    def __init__(self, address: Any, call_us: float, send_us: float) -> None:
        self.address, self.call_us, self.send_us = address, call_us, send_us
        self.calls = 0

    def _ask(self, constraint: str, projection: Sequence[str], limit: int,
             since: str | None) -> list[Any]:
        self.calls += 1
        with Client(self.address) as conn:
            conn.send((constraint, list(projection), limit, since))
            text = conn.recv_bytes().decode()
        ads = condor.parse_ads(text + "\n\n") if text else []
        hold_gil(self.call_us + self.send_us * len(ads))
        return ads

    def jobs(self, schedd: str | None, constraint: str, projection: Sequence[str],
             limit: int) -> list[Any]:
        return self._ask(constraint, projection, limit, None)

    def history(self, schedd: str | None, constraint: str, projection: Sequence[str], limit: int,
                since: str | None = None) -> list[Any]:
        return self._ask(constraint, projection, limit, since)

    def status(self, ad_type: str, constraint: str, projection: Sequence[str]) -> list[Any]:
        return []

    def config(self, daemon: str | None) -> dict[str, Any]:
        return {}

    def config_value(self, daemon: str | None, name: str) -> Any:
        raise KeyError(name)
