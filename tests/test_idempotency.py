"""Idempotency-Key: the first answer, replayed; nothing done twice; keys per user."""

from __future__ import annotations

import threading

import pytest

from condor_restd.errors import Conflict, Unavailable, Unprocessable
from condor_restd.idempotency import Replays


def test_a_retry_gets_the_first_answer_and_runs_nothing() -> None:
    replays, runs = Replays(), []
    first = replays.once("alice", "k", "f", lambda: runs.append(1) or "answer")
    again = replays.once("alice", "k", "f", lambda: runs.append(2) or "other")
    assert first == ("answer", False) and again == ("answer", True) and runs == [1]


def test_keys_belong_to_their_user() -> None:
    replays = Replays()
    replays.once("alice", "k", "f", lambda: "alice's")
    assert replays.once("bob", "k", "f", lambda: "bob's") == ("bob's", False)


def test_a_key_reused_for_another_request_is_422() -> None:
    replays = Replays()
    replays.once("alice", "k", "f", lambda: "x")
    with pytest.raises(Unprocessable):
        replays.once("alice", "k", "g", lambda: "y")


def test_a_key_still_running_is_409() -> None:
    replays, inside, release = Replays(), threading.Event(), threading.Event()

    def slow() -> str:
        inside.set()
        release.wait(5)
        return "done"

    thread = threading.Thread(target=replays.once, args=("alice", "k", "f", slow))
    thread.start()
    inside.wait(5)
    with pytest.raises(Conflict):
        replays.once("alice", "k", "f", lambda: "again")
    release.set()
    thread.join(5)
    assert replays.once("alice", "k", "f", lambda: "again") == ("done", True)


def test_a_failed_attempt_keeps_nothing() -> None:
    replays = Replays()
    with pytest.raises(Unavailable):
        replays.once("alice", "k", "f", lambda: (_ for _ in ()).throw(Unavailable("down")))
    assert replays.once("alice", "k", "f", lambda: "now") == ("now", False)


def test_answers_expire_and_are_bounded() -> None:
    now = [0.0]
    replays = Replays(keep=10, entries=2, clock=lambda: now[0])
    replays.once("alice", "a", "f", lambda: 1)
    now[0] = 11
    assert replays.once("alice", "a", "f", lambda: 2) == (2, False)
    replays.once("alice", "b", "f", lambda: 3)
    replays.once("alice", "c", "f", lambda: 4)
    assert replays.once("alice", "a", "f", lambda: 5) == (5, False)  # the oldest went
