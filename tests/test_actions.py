"""Acting on jobs over HTTP, on the demo pool: each action really runs in a fresh child process
that authenticates to the (demo) schedd with the user's token, as on a real pool."""

from __future__ import annotations

import json
import logging
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from condor_restd import acting, demoacts
from condor_restd.demo import DemoPool
from condor_restd.settings import Settings
from condor_restd.web import make_app

from .conftest import Client

ALICE, BOB = demoacts.token("alice"), demoacts.token("bob")
# The demo queue of schedd vm: 17.0, 17.1 idle (alice), 17.2 held (alice), 19.0 running (alice);
# 18.0, 18.1 held (bob), 21.0 idle (bob); 2.x running, 5.0 held, 7.0, 20.x idle (condoruser)
JSON = "application/json"


@pytest.fixture
def acts() -> Iterator[Any]:
    """A client over an app with actions on, over a demo pool of its own (actions change it)."""
    apps = []

    def build(**overrides: Any) -> Client:
        settings = Settings(cache_ttl=0, actions=True,
                            edit_attributes=frozenset({"jobprio", "requestmemory"}))
        app = make_app(settings.replace(**overrides), DemoPool())
        apps.append(app)
        return Client(app)

    yield build
    for app in apps:
        app.queries.close()


def send(client: Client, method: str, path: str, body: Any = None, token: str | None = ALICE,
         **headers: str) -> Any:
    sent = {"Content-Type": JSON, **{k.replace("_", "-"): v for k, v in headers.items()}}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    data = body if isinstance(body, bytes) else json.dumps(body if body is not None else {}).encode()
    return client.request(method, path, headers=sent, body=data)


def status_of(client: Client, job: str) -> int:
    cluster, proc = job.split(".")
    value: int = client.get(f"/v1/jobs/DEFAULT/{cluster}/{proc}/JobStatus").json()
    return value


def outcome(**counts: int) -> dict[str, int]:
    return {**dict.fromkeys(("success", "not_found", "permission_denied", "bad_status",
                             "already_done", "error"), 0), **counts}


# ------------------------------------------------------------------------ who may act

def test_actions_are_off_by_default(make_client: Any) -> None:
    r = send(make_client(), "POST", "/v1/jobs/DEFAULT/17/0/hold")
    assert r.status == 405 and "RESTD_ACTIONS" in r.json()["message"]
    assert "POST" not in r.headers["allow"]


def test_an_action_needs_a_token(acts: Any) -> None:
    r = send(acts(), "POST", "/v1/jobs/DEFAULT/17/0/hold", token=None)
    assert r.status == 401 and r.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("token", ["nonsense", "a.b.c", "x" * 20000])
def test_what_is_no_jwt_is_401_without_asking_htcondor(acts: Any, token: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(acting, "run", lambda *a: pytest.fail("a child was started"))
    r = send(acts(), "POST", "/v1/jobs/DEFAULT/17/0/hold", token=token)
    assert r.status == 401


def test_a_forged_token_is_refused_by_the_schedd(acts: Any) -> None:
    import jwt
    forged = jwt.encode({"iss": demoacts.ISSUER, "sub": "alice@localhost", "iat": int(time.time()),
                         "exp": int(time.time()) + 600}, "not the pool's key, though as long as one", algorithm="HS256")
    client = acts()
    r = send(client, "POST", "/v1/jobs/DEFAULT/17/0/hold", token=forged)
    assert r.status == 401
    assert status_of(client, "17.0") == 1


def test_alice_acts_on_her_job_and_gets_403_on_bobs(acts: Any) -> None:
    client = acts()
    r = send(client, "POST", "/v1/jobs/DEFAULT/17/0/hold", {"reason": "checking inputs"})
    assert r.status == 200, r.json()
    assert r.json()["outcome"] == outcome(success=1) and r.json()["user"] == "alice@localhost"
    assert status_of(client, "17.0") == 5
    assert client.get("/v1/jobs/DEFAULT/17/0/HoldReason").json() == "checking inputs"
    r = send(client, "POST", "/v1/jobs/DEFAULT/21/0/hold")
    assert r.status == 403 and r.json()["outcome"] == outcome(permission_denied=1)
    assert status_of(client, "21.0") == 1
    r = send(client, "POST", "/v1/jobs/DEFAULT/21/0/hold", token=BOB)
    assert r.status == 200 and status_of(client, "21.0") == 5


def test_every_action_and_outcome(acts: Any) -> None:
    client = acts()
    r = send(client, "POST", "/v1/jobs/DEFAULT/17/2/hold")  # already held
    assert r.status == 200 and r.json()["outcome"] == outcome(already_done=1)
    r = send(client, "POST", "/v1/jobs/DEFAULT/17/1/release")  # idle: not held
    assert r.status == 409 and r.json()["outcome"] == outcome(bad_status=1)
    r = send(client, "POST", "/v1/jobs/DEFAULT/17/2/release")
    assert r.status == 200 and status_of(client, "17.2") == 1
    r = send(client, "POST", "/v1/jobs/DEFAULT/19/0/vacate")
    assert r.status == 200 and status_of(client, "19.0") == 1
    r = send(client, "POST", "/v1/jobs/DEFAULT/17/1/remove", {"reason": "wrong inputs"})
    assert r.status == 200
    assert client.get("/v1/jobs/DEFAULT/17/1").status == 404
    assert client.get("/v1/history/DEFAULT/17/1/JobStatus").json() == 3
    r = send(client, "POST", "/v1/jobs/DEFAULT/17/1/remove")  # gone from the queue
    assert r.status == 404
    r = send(client, "POST", "/v1/jobs/DEFAULT/999/hold")
    assert r.status == 404


def test_a_cluster_and_a_constraint_mixed_outcomes_are_207(acts: Any) -> None:
    client = acts()
    r = send(client, "POST", "/v1/jobs/DEFAULT/17/hold")  # 17.0, 17.1 idle; 17.2 held
    assert r.status == 200 and r.json()["matched"] == 3
    assert r.json()["outcome"] == outcome(success=2, already_done=1)
    r = send(client, "POST", "/v1/jobs/DEFAULT/hold", {"constraint": "JobStatus == 5"})
    body = r.json()  # alice's three, now held; condoruser's 5.0 and bob's 18.x
    assert r.status == 207, body
    assert body["outcome"] == outcome(already_done=3, permission_denied=3) and body["matched"] == 6
    r = send(client, "POST", "/v1/jobs/DEFAULT/hold", {"constraint": "JobStatus == 1"})
    assert r.status == 403 and r.json()["outcome"] == outcome(permission_denied=4)


def test_a_big_constraint_waits_for_confirm(acts: Any) -> None:
    client = acts(action_confirm_above=2)
    r = send(client, "POST", "/v1/jobs/DEFAULT/hold", {"constraint": 'Owner == "alice"'})
    assert r.status == 409 and r.json()["matched"] == 4
    assert status_of(client, "17.0") == 1  # nothing done
    r = send(client, "POST", "/v1/jobs/DEFAULT/hold", {"constraint": 'Owner == "alice"', "confirm": 3})
    assert r.status == 409
    r = send(client, "POST", "/v1/jobs/DEFAULT/hold", {"constraint": 'Owner == "alice"', "confirm": 4})
    assert r.status == 200 and r.json()["outcome"] == outcome(success=3, already_done=1)


def test_a_constraint_is_checked_before_anything_runs(acts: Any) -> None:
    client = acts()
    for constraint in ["JobStatus ==", "", 5, "(" * 500 + "1" + ")" * 500]:
        r = send(client, "POST", "/v1/jobs/DEFAULT/hold", {"constraint": constraint})
        assert r.status == 400, (constraint, r.json())
    r = send(client, "POST", "/v1/jobs/DEFAULT/hold", {})
    assert r.status == 400 and "constraint" in r.json()["message"]
    r = send(client, "POST", "/v1/jobs/DEFAULT/17/0/hold", {"reason": "x", "constriant": "true"})
    assert r.status == 400 and "constriant" in r.json()["message"]  # a typo never widens an action
    r = send(client, "POST", "/v1/jobs/DEFAULT/17/0/suspend")
    assert r.status == 404 and "hold" in r.json()["message"]
    r = send(client, "POST", "/v1/jobs/DEFAULT/17/0/hold", {"reason": "two\nlines"})
    assert r.status == 400
    r = send(client, "POST", "/v1/history/DEFAULT/17/0/hold")
    assert r.status == 405


def test_hidden_attributes_cannot_be_probed_through_an_action(acts: Any) -> None:
    client = acts(hide_job_attrs=frozenset({"environment"}), action_confirm_above=1000)
    r = send(client, "POST", "/v1/jobs/DEFAULT/hold", {"constraint": 'Environment =!= ""'})
    assert r.status == 400 and "environment" in r.json()["message"].lower()


def test_own_scope_hides_other_users_jobs_from_actions(acts: Any) -> None:
    client = acts(authentication="TOKEN", user_job_scope="OWN", uid_domain="localhost")
    r = send(client, "POST", "/v1/jobs/DEFAULT/21/0/hold")  # bob's: not found for alice
    assert r.status == 404
    r = send(client, "POST", "/v1/jobs/DEFAULT/hold", {"constraint": "true", "confirm": 100})
    assert r.status == 200 and r.json()["matched"] == 4, r.json()


def test_reads_with_an_htcondor_token_are_that_user(acts: Any) -> None:
    client = acts(authentication="TOKEN", user_job_scope="OWN", uid_domain="localhost",
                  htcondor_tokens=True, actions=False)
    owners = {job["classad"]["owner"] for job in client.get(
        "/v1/jobs/DEFAULT", {"projection": "Owner"},
        headers={"Authorization": f"Bearer {BOB}"}).json()}
    assert owners == {"bob"}
    assert client.get("/v1/jobs/DEFAULT", headers={"Authorization": "Bearer a.b.c"}).status == 401


def test_the_cache_is_dropped_after_an_action(acts: Any) -> None:
    client = acts(cache_ttl=60)
    assert status_of(client, "17.0") == 1
    assert send(client, "POST", "/v1/jobs/DEFAULT/17/0/hold").status == 200
    assert status_of(client, "17.0") == 5


def test_preflight_names_the_write_methods_and_headers(acts: Any) -> None:
    r = acts().request("OPTIONS", "/v1/jobs/DEFAULT/17/0/hold", headers={
        "Origin": "https://gateway.example.org", "Access-Control-Request-Method": "POST"})
    assert "POST" in r.headers["access-control-allow-methods"]
    assert "PATCH" in r.headers["allow"]
    assert "Idempotency-Key" in r.headers["access-control-allow-headers"]


# --------------------------------------------------------------------------------- edit

def test_edit_sets_listed_attributes_as_expressions(acts: Any) -> None:
    client = acts()
    r = send(client, "PATCH", "/v1/jobs/DEFAULT/17/0", {"attributes": {"JobPrio": "5 + 2"}})
    assert r.status == 200 and r.json()["edited"] == 1
    assert client.get("/v1/jobs/DEFAULT/17/0/JobPrio").json() == "/Expr(5 + 2)/"
    r = send(client, "PATCH", "/v1/jobs/DEFAULT/17/0", {"attributes": {"RequestMemory": 4096}})
    assert r.status == 200
    r = send(client, "PATCH", "/v1/jobs/DEFAULT/21/0", {"attributes": {"JobPrio": "1"}})
    assert r.status == 403  # bob's job


@pytest.mark.parametrize("attributes", [
    {"Owner": '"bob"'}, {"User": '"bob@localhost"'}, {"Cmd": '"/bin/sh"'}, {"AcctGroupUser": '"bob"'}])
def test_edit_refuses_what_is_not_on_the_list(acts: Any, attributes: dict[str, str]) -> None:
    r = send(acts(), "PATCH", "/v1/jobs/DEFAULT/17/0", {"attributes": attributes})
    assert r.status == 403 and "RESTD_EDIT_ATTRIBUTES" in r.json()["message"]


@pytest.mark.parametrize("value", [
    '1; Owner = "bob"', '1\nOwner = "bob"', '5 ] [ Owner = "bob"', "", "  ", None, [1],
    "(" * 300 + "1" + ")" * 300, "x" * 20000])
def test_edit_values_are_one_expression(acts: Any, value: Any) -> None:
    client = acts()
    r = send(client, "PATCH", "/v1/jobs/DEFAULT/17/0", {"attributes": {"JobPrio": value}})
    assert r.status == 400, r.json()
    assert client.get("/v1/jobs/DEFAULT/17/0/Owner").json() == "alice"


def test_edit_with_nothing_editable_is_403(acts: Any) -> None:
    r = send(acts(edit_attributes=frozenset()), "PATCH", "/v1/jobs/DEFAULT/17/0",
             {"attributes": {"JobPrio": "1"}})
    assert r.status == 403


def test_an_edit_value_cannot_name_a_hidden_attribute(acts: Any) -> None:
    r = send(acts(hide_job_attrs=frozenset({"environment"})), "PATCH", "/v1/jobs/DEFAULT/17/0",
             {"attributes": {"JobPrio": "size(Environment)"}})
    assert r.status == 400


# ------------------------------------------------------------------------------- submit

SLEEP = {"description": {"executable": "/opt/gateway/run.sh", "arguments": "60"}}


def test_submit_is_201_with_the_cluster_and_a_location(acts: Any) -> None:
    client = acts()
    r = send(client, "POST", "/v1/jobs/DEFAULT", {**SLEEP, "count": 3})
    assert r.status == 201, r.json()
    body = r.json()
    assert body["jobs"] == [f"{body['cluster']}.{p}" for p in range(3)]
    assert r.headers["location"] == f"/v1/jobs/DEFAULT/{body['cluster']}"
    jobs = client.get(r.headers["location"], {"projection": "Owner,User,Cmd"}).json()
    assert {(j["classad"]["owner"], j["classad"]["user"]) for j in jobs} == {("alice", "alice@localhost")}


def test_submit_with_item_data(acts: Any) -> None:
    client = acts()
    r = send(client, "POST", "/v1/jobs/DEFAULT",
             {"description": {"executable": "/bin/echo", "arguments": "$(word)"},
              "itemdata": [{"word": "a"}, {"word": "b"}]})
    assert r.status == 201 and len(r.json()["jobs"]) == 2


def test_a_retried_submit_with_the_same_key_submits_nothing(acts: Any) -> None:
    client = acts()
    first = send(client, "POST", "/v1/jobs/DEFAULT", SLEEP, Idempotency_Key="gw-42")
    again = send(client, "POST", "/v1/jobs/DEFAULT", SLEEP, Idempotency_Key="gw-42")
    assert first.status == again.status == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    mine = client.get("/v1/jobs/DEFAULT", {"constraint": 'Cmd == "/opt/gateway/run.sh"'}).json()
    assert len(mine) == 1
    other = send(client, "POST", "/v1/jobs/DEFAULT", {**SLEEP, "count": 2}, Idempotency_Key="gw-42")
    assert other.status == 422
    bobs = send(client, "POST", "/v1/jobs/DEFAULT", SLEEP, token=BOB, Idempotency_Key="gw-42")
    assert bobs.status == 201 and bobs.json()["cluster"] != first.json()["cluster"]  # his own key


@pytest.mark.parametrize("description", [
    {"executable": "/opt/gateway/run.sh", "+Owner": '"bob"'},
    {"executable": "/opt/gateway/run.sh", "MY.User": '"bob@localhost"'},
    {"executable": "/opt/gateway/run.sh", "+AccountingGroup": '"group_physics.bob"'},
    {"executable": "/opt/gateway/run.sh", "accounting_group_user": "bob"},
    {"executable": "/opt/gateway/run.sh", "getenv": "true"},
    {"executable": "/opt/gateway/run.sh", "arguments": "$ENV(HOME)"},
    {"executable": "/opt/gateway/run.sh", "arguments": "$(SEC_TOKEN_DIRECTORY)"},
    {"executable": "/opt/gateway/run.sh", "include": "/etc/passwd"},
    {"executable": "/opt/gateway/run.sh", "queue": "100"},
    {"executable": "/opt/gateway/run.sh", "arguments": "60\nqueue 1000"},
    {"executable": "/opt/gateway/run.sh", "bad key": "1"},
    {"executable": "/opt/gateway/run.sh", "Executable": "/bin/sh"},
    {},
])
def test_submit_escalations_are_refused(acts: Any, description: dict[str, str]) -> None:
    client = acts()
    r = send(client, "POST", "/v1/jobs/DEFAULT", {"description": description})
    assert r.status == 400, r.json()
    assert client.get("/v1/jobs/DEFAULT", {"constraint": 'Cmd == "/opt/gateway/run.sh"'}).json() == []


@pytest.mark.parametrize(("body", "status"), [
    (b"{", 400), (b"[]", 400), (b'"text"', 400), (b'{"description": NaN}', 400),
    (b'{"description": {}, "description": {}}', 400), (b"\xff\xfe", 400),
    (b"[" * 100000 + b"]" * 100000, 400), (b"", 400),
    (json.dumps({"description": {"executable": "/bin/sleep"}, "count": 10**6}).encode(), 400),
    (json.dumps({"description": {"executable": "/bin/sleep"}, "count": -1}).encode(), 400),
    (json.dumps({"description": {"executable": "/bin/sleep"}, "itemdata": "a,b"}).encode(), 400),
    (json.dumps({"description": {"executable": "/bin/sleep"}, "spool": True}).encode(), 400),
])
def test_hostile_bodies_are_clear_4xx(acts: Any, body: bytes, status: int) -> None:
    r = send(acts(), "POST", "/v1/jobs/DEFAULT", body)
    assert r.status == status, r.body[:300]
    assert r.json()["status"] == status and r.json()["message"]


def test_a_body_must_be_json(acts: Any) -> None:
    r = send(acts(), "POST", "/v1/jobs/DEFAULT", json.dumps(SLEEP).encode(),
             Content_Type="application/x-www-form-urlencoded")
    assert r.status == 415  # a cross-site form cannot send application/json without a preflight


def test_an_oversized_body_is_413(acts: Any) -> None:
    r = send(acts(), "POST", "/v1/jobs/DEFAULT", b"{" + b" " * (1 << 20) + b"}")
    assert r.status == 413


# ------------------------------------------------------------------- processes and logs

def test_no_process_acts_for_two_users(acts: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every child process carries one token; none is used again, for the same user or another."""
    started: list[tuple[int, bytes]] = []
    real = subprocess.Popen

    class Spy(real):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            started.append((self.pid, kwargs.get("env", {}).get("_CONDOR_SEC_TOKEN_DIRECTORY", "")))

    monkeypatch.setattr(subprocess, "Popen", Spy)
    client = acts()
    for token, job in [(ALICE, "17/0"), (BOB, "21/0"), (ALICE, "17/1"), (BOB, "18/0")]:
        assert send(client, "POST", f"/v1/jobs/DEFAULT/{job}/hold", token=token).status == 200
    pids = [pid for pid, _ in started]
    assert len(pids) == len(set(pids)) >= 4  # 4 actions (and a whoami per user): all fresh
    assert len({directory for _, directory in started}) == len(started)


def test_actions_are_audited_and_tokens_never_logged(acts: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = acts()
    send(client, "POST", "/v1/jobs/DEFAULT/17/hold", {"reason": "audit me"})
    send(client, "POST", "/v1/jobs/DEFAULT/21/0/remove")
    send(client, "POST", "/v1/jobs/DEFAULT", SLEEP)
    send(client, "POST", "/v1/jobs/DEFAULT/17/0/hold", token=ALICE[:-4] + "AAAA")
    lines = [r.getMessage() for r in caplog.records if r.name == "condor_restd.audit"]
    assert any("hold by alice@localhost on schedd DEFAULT" in line and "17.0, 17.1, 17.2" in line
               and "success 2" in line for line in lines), lines
    assert any("remove by alice@localhost" in line and "permission_denied 1" in line
               for line in lines), lines
    assert any("submit by alice@localhost" in line and "cluster" in line for line in lines), lines
    for token in (ALICE, BOB, ALICE[:-4] + "AAAA"):
        assert token not in caplog.text
        assert token.split(".")[2] not in caplog.text  # not even the signature


def test_a_refused_request_leaves_the_cache_alone(acts: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a request that reached the schedd drops cached answers: refused ones cannot be
    used to keep the cache empty."""
    client = acts(cache_ttl=60)
    dropped: list[int] = []
    app_queries = client.app.queries  # type: ignore[attr-defined]
    monkeypatch.setattr(app_queries, "forget", lambda: dropped.append(1))
    send(client, "POST", "/v1/jobs/DEFAULT/999/hold")  # 404: nothing asked of the schedd
    send(client, "POST", "/v1/jobs/DEFAULT/hold", {"constraint": "JobStatus =="})  # 400
    assert dropped == []
    send(client, "POST", "/v1/jobs/DEFAULT/21/0/hold")  # the schedd refused: it was asked
    assert dropped == [1]
