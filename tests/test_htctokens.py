"""Who HTCondor says a token is for: asked once per token, kept until it expires, bounded."""

from __future__ import annotations

import threading
import time
from typing import Any

import jwt
import pytest

from condor_restd.auth import Unauthorized
from condor_restd.errors import Unavailable
from condor_restd.htctokens import (
    KEEP_MOST,
    KEEP_NO_EXPIRY,
    REFUSED_SECONDS,
    TokenUsers,
    claims,
)

KEY = "a pool signing key, at least thirty-two bytes long"


def idtoken(sub: str = "alice@pool", exp: float | None = None, **more: Any) -> str:
    payload: dict[str, Any] = {"sub": sub, "iss": "pool", **more}
    if exp is not None:
        payload["exp"] = int(exp)
    return jwt.encode(payload, KEY, algorithm="HS256", headers={"kid": "POOL"})


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_asked_once_and_kept_until_the_token_expires() -> None:
    clock, asked = Clock(), []
    users = TokenUsers(lambda token: asked.append(token) or "alice@pool", clock=clock)
    token = idtoken(exp=clock.now + 600)
    assert users.user(token) == users.user(token) == "alice@pool"
    assert len(asked) == 1
    clock.now += 599
    assert users.user(token) == "alice@pool" and len(asked) == 1
    clock.now += 2  # expired: refused without asking
    with pytest.raises(Unauthorized):
        users.user(token)
    assert len(asked) == 1


def test_kept_an_hour_at_most_and_five_minutes_without_exp() -> None:
    clock, asked = Clock(), []
    users = TokenUsers(lambda token: asked.append(token) or "alice@pool", clock=clock)
    long_lived, forever = idtoken(exp=clock.now + 10 * KEEP_MOST), idtoken()
    users.user(long_lived), users.user(forever)
    clock.now += KEEP_NO_EXPIRY + 1
    users.user(long_lived), users.user(forever)
    assert asked == [long_lived, forever, forever]
    clock.now += KEEP_MOST
    users.user(long_lived)
    assert asked[-1] == long_lived and len(asked) == 4


def test_a_refused_token_is_refused_again_without_asking_for_a_while() -> None:
    clock, asked = Clock(), []

    def refuse(token: str) -> str:
        asked.append(token)
        raise Unauthorized("HTCondor does not accept this token")

    users = TokenUsers(refuse, clock=clock)
    token = idtoken()
    for _ in range(3):
        with pytest.raises(Unauthorized):
            users.user(token)
    assert len(asked) == 1
    clock.now += REFUSED_SECONDS + 1
    with pytest.raises(Unauthorized):
        users.user(token)
    assert len(asked) == 2


@pytest.mark.parametrize("token", ["", "nonsense", "a.b.c", "e30.e30", "x" * 20000, "W10.W10.x"])
def test_what_is_no_jwt_is_refused_without_asking(token: str) -> None:
    users = TokenUsers(lambda token: pytest.fail("asked"))
    with pytest.raises(Unauthorized):
        users.user(token)


def test_few_tokens_are_asked_about_at_once() -> None:
    """A flood of new tokens costs a bounded number of processes: the rest get a 503."""
    release = threading.Event()
    started = threading.Semaphore(0)

    def slow(token: str) -> str:
        started.release()
        release.wait(5)
        return "alice@pool"

    users = TokenUsers(slow, concurrent=2)
    threads = [threading.Thread(target=users.user, args=(idtoken(sub=f"u{i}@pool"),)) for i in range(2)]
    for thread in threads:
        thread.start()
    started.acquire(timeout=5), started.acquire(timeout=5)
    began = time.monotonic()
    with pytest.raises(Unavailable):
        users.user(idtoken(sub="third@pool"))
    assert time.monotonic() - began < 5
    release.set()
    for thread in threads:
        thread.join(5)


def test_forget_asks_again() -> None:
    asked: list[str] = []
    users = TokenUsers(lambda token: asked.append(token) or "alice@pool")
    token = idtoken()
    users.user(token)
    users.forget(token)
    users.user(token)
    assert len(asked) == 2


def test_claims() -> None:
    token = idtoken(exp=2_000_000_000)
    found = claims(token)
    assert found["sub"] == "alice@pool" and found["header.alg"] == "HS256"
    with pytest.raises(Unauthorized):
        claims("nonsense")
