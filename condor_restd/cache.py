"""Shielding the pool: identical concurrent queries share one upstream call, and answers live for a TTL."""

from __future__ import annotations

import contextvars
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")

# Set for a request that asked for a fresh answer (Cache-Control: no-cache): SingleFlight.get
# neither reuses a kept answer nor joins a query already in flight; it asks the pool itself,
# and keeps what it got for the requests that follow.
FRESH: contextvars.ContextVar[bool] = contextvars.ContextVar("restd_fresh", default=False)


class _Flight:
    def __init__(self, generation: int = 0) -> None:
        self.generation = generation  # clear() makes answers of older generations stale
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


class SingleFlight(Generic[T]):
    """`get(key, compute)`: one `compute()` per key at a time, its answer kept `ttl` seconds.

    Callers that arrive while a computation for their key runs wait for it and share its
    answer (or its exception). With ttl 0 nothing is kept, but concurrent callers still share.
    At most `entries` answers, weighing `budget` in all, are kept, least recently used first
    out; an answer heavier than a quarter of the budget is shared but not kept.
    """

    def __init__(self, ttl: float, entries: int = 128, budget: int = 0,
                 weigh: Callable[[T], int] = lambda _: 0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.entries = entries
        self.budget = budget
        self.weigh = weigh
        self.clock = clock
        self._lock = threading.Lock()
        self._kept: OrderedDict[Hashable, tuple[float, T, int]] = OrderedDict()
        self._weight = 0
        self._flying: dict[Hashable, _Flight] = {}
        self._generation = 0

    def get(self, key: Hashable, compute: Callable[[], T],
            keep: Callable[[T], bool] = lambda _: True) -> tuple[T, bool]:
        """The answer for `key`, and whether it came without a call of our own (kept or shared)."""
        if FRESH.get():
            generation = self._generation
            value = compute()
            if self.ttl > 0 and keep(value):
                with self._lock:
                    if generation == self._generation:
                        self._keep(key, value)
            return value, False
        with self._lock:
            hit = self._kept.get(key)
            if hit is not None:
                if self.clock() < hit[0]:
                    self._kept.move_to_end(key)
                    return hit[1], True
                self._drop(key)
            flight = self._flying.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flying[key] = _Flight(self._generation)
        if not leader:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            return flight.value, True
        try:
            flight.value = compute()
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                if self._flying.get(key) is flight:
                    del self._flying[key]
                if (flight.error is None and self.ttl > 0 and keep(flight.value)
                        and flight.generation == self._generation):
                    self._keep(key, flight.value)
            flight.done.set()
        return flight.value, False

    def _keep(self, key: Hashable, value: T) -> None:
        weight = self.weigh(value)
        if self.budget and weight > self.budget // 4:
            return
        if key in self._kept:
            self._drop(key)
        self._kept[key] = (self.clock() + self.ttl, value, weight)
        self._weight += weight
        while self._kept and (len(self._kept) > self.entries
                              or (self.budget and self._weight > self.budget)):
            self._drop(next(iter(self._kept)))

    def _drop(self, key: Hashable) -> None:
        self._weight -= self._kept.pop(key)[2]

    def clear(self) -> None:
        """Forget every answer, and keep none of those being computed now: they may have been
        read before what made the caller clear (an action on jobs)."""
        with self._lock:
            self._kept.clear()
            self._weight = 0
            self._generation += 1
            self._flying.clear()  # later callers start a fresh computation, not join an old one
