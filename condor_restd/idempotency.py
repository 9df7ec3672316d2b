"""Idempotency-Key: a retried action gets the first attempt's answer, and nothing is done twice.

Keys belong to the user who sent them (another user's same key is another key), and are kept
KEEP_SECONDS after their answer, at most ENTRIES of them, in this process's memory: a restart
forgets them. A key that comes back with another request is refused (422), and one whose first
attempt is still running gets 409, as the IETF's Idempotency-Key draft has it. An attempt that
failed before anything was done (a refused token, an unreachable schedd) keeps nothing, so
that the retry can succeed.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Callable, TypeVar

from .errors import Conflict, Unprocessable

T = TypeVar("T")
KEEP_SECONDS = 24 * 3600.0
ENTRIES = 10000


class _Running:
    """The marker of a key whose first attempt has not answered yet."""


class Replays:
    """The answers of keyed requests; `once(user, key, fingerprint, attempt)` runs `attempt` the
    first time only."""

    def __init__(self, keep: float = KEEP_SECONDS, entries: int = ENTRIES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.keep, self.entries, self.clock = keep, entries, clock
        self._lock = threading.Lock()
        self._answers: OrderedDict[tuple[str, str], tuple[float, str, object]] = OrderedDict()

    def once(self, user: str, key: str, fingerprint: str, attempt: Callable[[], T]) -> tuple[T, bool]:
        """The answer to the keyed request, and whether it is a replay of an earlier one."""
        slot = (user, key)
        with self._lock:
            self._expire()
            kept = self._answers.get(slot)
            if kept is not None:
                _, their_fingerprint, answer = kept
                if their_fingerprint != fingerprint:
                    raise Unprocessable("this Idempotency-Key was used for another request; "
                                        "use a new key for a new request")
                if isinstance(answer, _Running):
                    raise Conflict("a request with this Idempotency-Key is still being done; "
                                   "retry when it has answered")
                return answer, True  # type: ignore[return-value]
            self._answers[slot] = (self.clock() + self.keep, fingerprint, _Running())
            while len(self._answers) > self.entries:
                self._answers.popitem(last=False)
        try:
            answer = attempt()
        except BaseException:
            with self._lock:
                self._answers.pop(slot, None)
            raise
        with self._lock:
            self._answers[slot] = (self.clock() + self.keep, fingerprint, answer)
        return answer, False

    def _expire(self) -> None:
        now = self.clock()
        while self._answers:
            slot, (until, _, answer) = next(iter(self._answers.items()))
            if until > now or isinstance(answer, _Running):
                break
            del self._answers[slot]
