"""The demo pool acting as a schedd: demo tokens, ownership, every action and outcome, edit, submit, the journal."""

from __future__ import annotations

import base64
import gc
import json
import multiprocessing
import os
import time
from typing import Any

import jwt
import pytest

from condor_restd import acting, demoacts
from condor_restd.__main__ import main
from condor_restd.demo import DemoPool

ALICE, BOB = demoacts.token("alice"), demoacts.token("bob")
# The base demo queue of schedd vm: 17.0, 17.1 idle (alice), 17.2 held (alice), 19.0 running
# (alice); 18.0, 18.1 held (bob), 21.0 idle (bob); 2.x running, 5.0 held, 7.0, 20.x idle (condoruser)


@pytest.fixture
def pool() -> DemoPool:
    return DemoPool()  # its own journal: these tests change the queue


def run(pool: DemoPool, token: str, kind: str, **request: Any) -> dict[str, Any]:
    return acting.run(pool.acting_argv(), token, {"kind": kind, "schedd": None, **request}, 30)


def act(pool: DemoPool, token: str, action: str, jobs: list[str] | None = None,
        constraint: str | None = None, reason: str | None = None) -> dict[str, Any]:
    user = demoacts.verify(token)
    return run(pool, token, "act", action=action, jobs=jobs, constraint=constraint, reason=reason,
               user=user["sub"] if user else None)


def outcome(**counts: int) -> dict[str, int]:
    base = dict.fromkeys(("success", "not_found", "permission_denied", "bad_status",
                          "already_done", "error"), 0)
    return {**base, **counts}


def job(pool: DemoPool, jid: str) -> Any:
    cluster, proc = jid.split(".")
    found = pool.jobs(None, f"ClusterId == {cluster} && ProcId == {proc}", [], 0)
    return found[0] if found else None


def set_status(pool: DemoPool, jid: str, status: int) -> None:
    """Put a job in a status no action reaches here (as the schedd would have)."""
    with open(pool.journal, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"op": "set", "schedd": "vm", "id": jid,
                                 "attrs": {"JobStatus": str(status)}}) + "\n")


def test_whoami_maps_the_token_to_its_user(pool: DemoPool) -> None:
    assert run(pool, ALICE, "whoami") == {"user": "alice@localhost", "method": "IDTOKENS"}
    assert run(pool, demoacts.token("condoruser@localhost"), "whoami")["user"] == "condoruser@localhost"


def test_hold_by_ids_every_outcome(pool: DemoPool) -> None:
    answer = act(pool, ALICE, "hold", ["17", "18.0", "99", "19.0"], reason="staging")
    assert answer == {"user": "alice@localhost", "matched": 5,
                      "outcome": outcome(success=3, already_done=1, permission_denied=1, not_found=1)}
    held = job(pool, "17.0")
    assert held["JobStatus"] == 5 and held["HoldReason"] == "staging" and held["HoldReasonCode"] == 1
    assert held["EnteredCurrentStatus"] >= int(time.time()) - 60
    assert job(pool, "19.0")["JobStatus"] == 5 and job(pool, "18.0")["JobStatus"] == 5
    assert job(pool, "17.2")["HoldReason"] != "staging"  # already held: untouched


def test_hold_someone_elses_job_changes_nothing(pool: DemoPool) -> None:
    answer = act(pool, BOB, "hold", ["17.0"])
    assert answer["outcome"] == outcome(permission_denied=1)
    assert job(pool, "17.0")["JobStatus"] == 1


def test_hold_of_a_finished_job_is_bad_status(pool: DemoPool) -> None:
    set_status(pool, "17.0", 4)
    set_status(pool, "17.1", 3)
    assert act(pool, ALICE, "hold", ["17.0", "17.1"])["outcome"] == outcome(bad_status=2)


def test_release(pool: DemoPool) -> None:
    assert act(pool, ALICE, "release", ["17"])["outcome"] == outcome(success=1, bad_status=2)
    released = job(pool, "17.2")
    assert released["JobStatus"] == 1 and "HoldReason" not in released
    assert act(pool, ALICE, "release", ["18.0"])["outcome"] == outcome(permission_denied=1)


def test_remove_sends_the_job_to_the_history(pool: DemoPool) -> None:
    assert act(pool, ALICE, "remove", ["17.0"], reason="done with it")["outcome"] == outcome(success=1)
    assert job(pool, "17.0") is None
    gone = pool.history(None, "ClusterId == 17 && ProcId == 0", [], 0)
    assert gone[0]["JobStatus"] == 3 and gone[0]["RemoveReason"] == "done with it"
    assert pool.history(None, "", [], 1)[0]["ClusterId"] == 17  # newest first
    assert act(pool, ALICE, "remove", ["17.0"])["outcome"] == outcome(not_found=1)
    set_status(pool, "17.1", 3)
    assert act(pool, ALICE, "remove", ["17.1"])["outcome"] == outcome(already_done=1)
    assert act(pool, ALICE, "remove", ["21.0"])["outcome"] == outcome(permission_denied=1)


def test_vacate(pool: DemoPool) -> None:
    assert act(pool, ALICE, "vacate", ["19.0", "17.0"])["outcome"] == outcome(success=1, bad_status=1)
    assert job(pool, "19.0")["JobStatus"] == 1
    assert act(pool, ALICE, "vacate", ["2.0"])["outcome"] == outcome(permission_denied=1)


def test_by_constraint_only_the_owners_jobs_change(pool: DemoPool) -> None:
    answer = act(pool, ALICE, "hold", constraint="JobStatus == 1")
    # idle: 17.0, 17.1 (alice), 7.0, 20.0, 20.1 (condoruser), 21.0 (bob)
    assert answer["matched"] == 6
    assert answer["outcome"] == outcome(success=2, permission_denied=4)
    assert act(pool, ALICE, "release", constraint="ClusterId == 12345") == {
        "user": "alice@localhost", "matched": 0, "outcome": outcome()}
    assert act(pool, BOB, "remove", constraint='Owner == "bob"')["outcome"] == outcome(success=3)
    assert pool.jobs(None, 'Owner == "bob"', [], 0) == []


def test_other_schedd(pool: DemoPool) -> None:
    answer = run(pool, ALICE, "act", schedd="schedd2@vm", action="hold", jobs=["6.0"],
                 constraint=None, reason=None, user="alice@localhost")
    assert answer["outcome"] == outcome(success=1)
    assert pool.jobs("schedd2@vm", "ClusterId == 6 && ProcId == 0", [], 0)[0]["JobStatus"] == 5
    assert job(pool, "17.0")["JobStatus"] == 1
    assert run(pool, ALICE, "act", schedd="nosuch", action="hold", jobs=["1"], constraint=None,
               user="alice@localhost")["error"] == "not_found"
    assert run(pool, ALICE, "whoami", schedd="nosuch")["error"] == "not_found"
    assert run(pool, ALICE, "whoami", schedd="schedd2@vm")["user"] == "alice@localhost"


def test_a_kind_the_front_never_asks_for_is_refused(pool: DemoPool) -> None:
    assert run(pool, ALICE, "count", jobs=None, constraint="true")["error"] == "bad_request"


def test_edit(pool: DemoPool) -> None:
    answer = run(pool, ALICE, "edit", jobs=["17"], constraint=None, user="alice@localhost",
                 attributes={"JobPrio": "10", "Note": '"from the api"'})
    assert answer == {"user": "alice@localhost", "matched": 3, "edited": 3}
    assert job(pool, "17.1")["JobPrio"] == 10 and job(pool, "17.1")["Note"] == "from the api"
    denied = run(pool, BOB, "edit", jobs=["17.0"], constraint=None, user="bob@localhost",
                 attributes={"JobPrio": "-5"})
    assert denied["error"] == "permission_denied" and job(pool, "17.0")["JobPrio"] == 10
    mixed = run(pool, ALICE, "edit", jobs=None, constraint="JobStatus == 1", user="alice@localhost",
                attributes={"JobPrio": "3"})
    assert mixed["matched"] == 6 and mixed["edited"] == 2 and job(pool, "21.0")["JobPrio"] == 0
    for name, value in (("Owner", '"alice"'), ("ClusterId", "1"), ("User", '"bob@localhost"')):
        refused = run(pool, ALICE, "edit", jobs=["17.0"], constraint=None, attributes={name: value})
        assert refused["error"] == "permission_denied"
    for attributes in ({"JobPrio": "1 +"}, {"bad name": "1"}, {}, {"JobPrio": 1}):
        bad = run(pool, ALICE, "edit", jobs=["17.0"], constraint=None, attributes=attributes)
        assert bad["error"] == "bad_request"
    assert job(pool, "17.0")["Owner"] == "alice"


def test_submit(pool: DemoPool) -> None:
    answer = run(pool, ALICE, "submit", user="alice@localhost", count=3, itemdata=None,
                 description={"executable": "/bin/sleep", "arguments": "60 $(Process)",
                              "request_memory": "128", "+ProjectName": '"demo"',
                              "MY.Tag": "1 + 1"})
    assert answer == {"user": "alice@localhost", "cluster": 22, "procs": [0, 1, 2]}
    made = sorted(pool.jobs(None, "ClusterId == 22", [], 0), key=lambda ad: ad["ProcId"])
    assert [(ad["Owner"], ad["User"], ad["JobStatus"], ad["Cmd"], ad["Args"]) for ad in made] == [
        ("alice", "alice@localhost", 1, "/bin/sleep", f"60 {p}") for p in range(3)]
    assert made[0]["RequestMemory"] == 128 and made[0]["ProjectName"] == "demo"
    assert made[0].eval("Tag") == 2 and made[0]["GlobalJobId"].startswith("vm#22.0#")
    items = run(pool, BOB, "submit", user="bob@localhost", count=0,
                itemdata=[{"x": "a"}, {"x": "b"}], description={"executable": "/bin/echo",
                                                                  "arguments": "$(x)"})
    assert items["cluster"] == 23 and items["procs"] == [0, 1]
    assert [ad["Args"] for ad in pool.jobs(None, "ClusterId == 23", [], 0)] == ["b", "a"]
    assert job(pool, "23.0")["Owner"] == "bob"


@pytest.mark.parametrize("description, kind", [
    ({"executable": "/bin/sleep", "+Owner": '"bob"'}, "permission_denied"),
    ({"executable": "/bin/sleep", "MY.User": '"bob@localhost"'}, "permission_denied"),
    ({"executable": "/bin/sleep", "accounting_group_user": "bob"}, "permission_denied"),
    ({"executable": "/bin/sleep", "+Foo": "1 +"}, "bad_request"),
    ({"arguments": "1"}, "bad_request"),
    ({}, "bad_request"),
])
def test_submit_refusals(pool: DemoPool, description: dict[str, str], kind: str) -> None:
    answer = run(pool, ALICE, "submit", user="alice@localhost", count=0, itemdata=None,
                 description=description)
    assert answer["error"] == kind
    assert pool.jobs(None, "ClusterId > 21", [], 0) == []


def test_the_user_claimed_must_be_the_tokens(pool: DemoPool) -> None:
    answer = run(pool, ALICE, "act", action="hold", jobs=["18.0"], constraint=None, reason=None,
                 user="bob@localhost")
    assert answer["error"] == "mismatch" and job(pool, "18.0")["JobStatus"] == 5
    answer = run(pool, ALICE, "submit", user="bob@localhost", count=1, itemdata=None,
                 description={"executable": "/bin/true"})
    assert answer["error"] == "mismatch"


def _forged() -> list[str]:
    now = int(time.time())
    claims = {"iss": demoacts.ISSUER, "sub": "alice@localhost", "iat": now, "exp": now + 600,
              "scope": demoacts.SCOPE}
    unsigned = ".".join(base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=")
                        for part in ({"alg": "none", "kid": "POOL"}, claims)) + "."
    return [
        jwt.encode(claims, "some other key, long enough for HS256 anyway", algorithm="HS256", headers={"kid": "POOL"}),
        demoacts.token("alice", lifetime=-10),  # expired
        unsigned,  # alg none
        jwt.encode({**claims, "iss": "elsewhere"}, demoacts.DEMO_KEY, algorithm="HS256"),
        jwt.encode(claims, demoacts.DEMO_KEY, algorithm="HS512"),
    ]


@pytest.mark.parametrize("token", _forged())
def test_forged_tokens_are_unauthenticated(pool: DemoPool, token: str) -> None:
    assert run(pool, token, "whoami")["error"] == "unauthenticated"
    answer = act(pool, token, "remove", ["17.0"])
    assert answer["error"] == "unauthenticated" and job(pool, "17.0") is not None


def test_read_only_scope_cannot_act(pool: DemoPool) -> None:
    now = int(time.time())
    token = jwt.encode({"iss": demoacts.ISSUER, "sub": "alice@localhost", "iat": now,
                        "exp": now + 60, "scope": "condor:/READ"}, demoacts.DEMO_KEY,
                       algorithm="HS256")
    assert run(pool, token, "whoami")["user"] == "alice@localhost"
    assert act(pool, token, "hold", ["17.0"])["error"] == "permission_denied"


def test_another_pool_sharing_the_journal_sees_the_changes(pool: DemoPool) -> None:
    other = DemoPool(journal=pool.journal)
    assert job(other, "17.0")["JobStatus"] == 1
    act(pool, ALICE, "hold", ["17.0"])
    assert job(other, "17.0")["JobStatus"] == 5
    run(pool, ALICE, "submit", user=None, count=1, itemdata=None, description={"executable": "/bin/true"})
    assert job(other, "22.0")["Owner"] == "alice"


def _read_in_child(pool: DemoPool, conn: Any) -> None:
    conn.recv()  # wait for the parent to act
    conn.send(job(pool, "17.0")["JobStatus"])


def test_a_forked_worker_sees_what_a_child_did(pool: DemoPool) -> None:
    job(pool, "17.0")  # the worker's copy has applied the journal so far
    context = multiprocessing.get_context("fork")
    parent, child = context.Pipe()
    worker = context.Process(target=_read_in_child, args=(pool, child))
    worker.start()
    act(pool, ALICE, "hold", ["17.0"])
    parent.send("go")
    assert parent.recv() == 5
    worker.join(10)


def test_the_journal_goes_with_its_creator_only() -> None:
    pool = DemoPool()
    directory = os.path.dirname(pool.journal)
    pid = os.fork()
    if pid == 0:  # a forked worker dropping its copy must not remove the journal
        del pool
        gc.collect()
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.path.exists(directory)
    del pool
    gc.collect()
    assert not os.path.exists(directory)


def test_demo_token_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--demo-token", "bob"]) == 0
    token = capsys.readouterr().out.strip()
    claims = demoacts.verify(token)
    assert claims is not None and claims["sub"] == "bob@localhost"
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "kid": "POOL", "typ": "JWT"}
    assert claims["scope"] == "condor:/READ condor:/WRITE" and claims["exp"] > time.time() + 3600
    with pytest.raises(SystemExit):
        main(["--demo-token", "Robert'); drop"])


def test_a_journal_left_by_a_killed_process_is_swept(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    (tmp_path / f"condor-restd-demo-{dead}-abc123").mkdir()
    (tmp_path / f"condor-restd-demo-{os.getpid()}-def456").mkdir()  # a live one's: kept
    pool = DemoPool()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"condor-restd-demo-{os.getpid()}-def456", os.path.basename(os.path.dirname(pool.journal))])
    pool.close()
    assert not os.path.exists(os.path.dirname(pool.journal))


def test_concurrent_submits_get_their_own_clusters(pool: DemoPool) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def submit(token: str) -> int:
        answer = run(pool, token, "submit", user=None, count=2, itemdata=None,
                     description={"executable": "/bin/true"})
        return int(answer["cluster"])

    with ThreadPoolExecutor(4) as threads:
        clusters = list(threads.map(submit, [ALICE, BOB, ALICE, BOB]))
    assert sorted(clusters) == [22, 23, 24, 25]
    assert len(pool.jobs(None, "ClusterId >= 22", [], 0)) == 8
