"""Who a bearer token is for, as HTCondor says: asked once per token, kept until it expires.

HTCondor's own tokens (IDTOKENS) are signed with the pool's key, which the daemon neither has nor
wants; so the daemon does not check them itself. It hands the token to HTCondor: a fresh process
pings the schedd with it, and the mapping the schedd reports is the user. The answer is kept
(by the token's SHA-256, never the token) until the token expires, at most KEEP_MOST seconds; a
token HTCondor refused is refused again for REFUSED_SECONDS without asking. At most CONCURRENT
tokens are asked about at once: more get a 503, so that a flood of made-up tokens costs a few
processes, not one each.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from collections import OrderedDict
from typing import Any, Callable

from .auth import MAX_TOKEN_LENGTH, Unauthorized
from .errors import Unavailable

KEEP_MOST = 3600.0  # seconds a user is kept for a token with no expiry (or a later one)
KEEP_NO_EXPIRY = 300.0  # seconds for a token without exp: HTCondor may revoke it
REFUSED_SECONDS = 60.0
ENTRIES = 4096
CONCURRENT = 2
WAIT = 2.0  # seconds a request waits for a free slot before the 503
JWT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def _part(text: str) -> dict[str, Any]:
    try:
        value = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, UnicodeError):
        raise Unauthorized("the token is not a well-formed JWT") from None
    if not isinstance(value, dict):
        raise Unauthorized("the token is not a well-formed JWT")
    return value


def claims(token: str) -> dict[str, Any]:
    """A JWT's payload, with its header's fields as "header.<name>", unverified (to read alg and
    exp); Unauthorized if the token is no JWT at all."""
    if len(token) > MAX_TOKEN_LENGTH or not JWT.fullmatch(token):
        raise Unauthorized("the token is not a well-formed JWT")
    header, payload = token.split(".")[:2]
    return {**_part(payload), **{f"header.{k}": v for k, v in _part(header).items()}}


class TokenUsers:
    """`user(token)`: the HTCondor user (user@domain) a token authenticates as, from
    `ask(token)` (a ping with it, in a fresh process) the first time."""

    def __init__(self, ask: Callable[[str], str], clock: Callable[[], float] = time.time,
                 entries: int = ENTRIES, concurrent: int = CONCURRENT) -> None:
        self.ask, self.clock, self.entries = ask, clock, entries
        self._slots = threading.BoundedSemaphore(concurrent)
        self._lock = threading.Lock()
        self._known: OrderedDict[str, tuple[float, str | None]] = OrderedDict()

    def user(self, token: str) -> str:
        found = claims(token)
        now = self.clock()
        expires = found.get("exp")
        if isinstance(expires, (int, float)) and not isinstance(expires, bool) and expires < now:
            raise Unauthorized("the token has expired")
        digest = hashlib.sha256(token.encode()).hexdigest()
        with self._lock:
            kept = self._known.get(digest)
            if kept is not None and kept[0] > now:
                self._known.move_to_end(digest)
                if kept[1] is None:
                    raise Unauthorized("HTCondor does not accept this token")
                return kept[1]
        if not self._slots.acquire(timeout=WAIT):
            raise Unavailable("too many new tokens are being checked at once; try again shortly")
        try:
            user = self.ask(token)
        except Unauthorized:
            self._remember(digest, now + REFUSED_SECONDS, None)
            raise
        finally:
            self._slots.release()
        until = now + KEEP_NO_EXPIRY
        if isinstance(expires, (int, float)) and not isinstance(expires, bool):
            until = min(float(expires), now + KEEP_MOST)
        self._remember(digest, until, user)
        return user

    def forget(self, token: str) -> None:
        """Ask HTCondor again next time (its answer changed: the token no longer maps so)."""
        with self._lock:
            self._known.pop(hashlib.sha256(token.encode()).hexdigest(), None)

    def _remember(self, digest: str, until: float, user: str | None) -> None:
        with self._lock:
            self._known[digest] = (until, user)
            self._known.move_to_end(digest)
            while len(self._known) > self.entries:
                self._known.popitem(last=False)
