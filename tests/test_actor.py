"""The real-bindings acting child's logic, over a fake htcondor2 (no HTCondor pool runs here)."""

from __future__ import annotations

import sys
import types
from typing import Any

import classad2
import pytest

from condor_restd import actor


class FakeHTCondorException(Exception):
    pass


class FakeSchedd:
    calls: list[tuple[Any, ...]] = []
    act_result: dict[str, int] = {}
    jobs: list[dict[str, Any]] = []
    edit_error: str | None = None

    def __init__(self, location: Any) -> None:
        self.location = location

    def act(self, action: Any, spec: Any, reason: str | None = None) -> classad2.ClassAd:
        FakeSchedd.calls.append(("act", action, spec, reason))
        ad = classad2.ClassAd()
        for name, value in self.act_result.items():
            ad[name] = value
        return ad

    def query(self, constraint: str, projection: list[str]) -> list[classad2.ClassAd]:
        FakeSchedd.calls.append(("query", constraint, tuple(projection)))
        expr = classad2.ExprTree(constraint)
        ads = [classad2.ClassAd(job) for job in self.jobs]
        return [ad for ad in ads if expr.eval(ad) is True]

    def edit(self, spec: Any, attr: str, value: Any) -> int:
        FakeSchedd.calls.append(("edit", spec, attr, str(value)))
        if self.edit_error:
            raise FakeHTCondorException(self.edit_error)
        return 2

    def submit(self, description: Any, count: int = 0, itemdata: Any = None) -> Any:
        items = list(itemdata) if itemdata is not None else None
        FakeSchedd.calls.append(("submit", dict(description.d), count, items))
        result = types.SimpleNamespace(cluster=lambda: 42, first_proc=lambda: 0,
                                       num_procs=lambda: max(count, 1) * len(items or [1]))
        return result


class FakeCollector:
    def __init__(self, pool: str | None = None) -> None:
        self.pool = pool

    def locate(self, kind: str, name: str | None = None) -> dict[str, str] | None:
        if name not in (None, "schedd2@vm"):
            return None
        return {"MyAddress": "<127.0.0.1:9618>", "Name": name or "vm"}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A fake htcondor2 in sys.modules, as the child imports it; the real classad2."""
    module = types.ModuleType("htcondor2")
    module.HTCondorException = FakeHTCondorException  # type: ignore[attr-defined]
    module.DaemonType = types.SimpleNamespace(Schedd="Schedd")  # type: ignore[attr-defined]
    module.Collector = FakeCollector  # type: ignore[attr-defined]
    module.Schedd = FakeSchedd  # type: ignore[attr-defined]
    module.JobAction = types.SimpleNamespace(  # type: ignore[attr-defined]
        Hold="Hold", Release="Release", Remove="Remove", Vacate="Vacate")
    module.Submit = lambda d: types.SimpleNamespace(d=d)  # type: ignore[attr-defined]
    module.ping_ad = {"MyRemoteUserName": "alice@localhost", "AuthMethods": "IDTOKENS",  # type: ignore[attr-defined]
                      "AuthorizationSucceeded": True}

    def ping(location: Any, authz: str | None = None) -> Any:
        FakeSchedd.calls.append(("ping", location["Name"], authz))
        if isinstance(module.ping_ad, Exception):  # type: ignore[attr-defined]
            raise module.ping_ad  # type: ignore[attr-defined]
        return dict(module.ping_ad)  # type: ignore[attr-defined]

    module.ping = ping  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "htcondor2", module)
    FakeSchedd.calls = []
    FakeSchedd.act_result = {}
    FakeSchedd.jobs = []
    FakeSchedd.edit_error = None
    return module


def serve(**request: Any) -> dict[str, Any]:
    return actor.serve(None, {"schedd": None, **request})


def test_whoami_is_the_ping_mapping(fake: types.ModuleType) -> None:
    assert serve(kind="whoami") == {"user": "alice@localhost", "method": "IDTOKENS"}
    assert FakeSchedd.calls == [("ping", "vm", "READ")]
    fake.ping_ad = {"MyRemoteUserName": "bob@example.org", "AuthMethods": "SCITOKENS"}
    assert serve(kind="whoami", schedd="schedd2@vm") == {"user": "bob@example.org", "method": "SCITOKENS"}


@pytest.mark.parametrize("ad", [
    {"MyRemoteUserName": "unauthenticated@unmapped", "AuthMethods": "IDTOKENS"},
    {"MyRemoteUserName": "", "AuthMethods": "IDTOKENS"},
    {"AuthMethods": "IDTOKENS"},
    {"MyRemoteUserName": "condor@family", "AuthMethods": "FAMILY"},
    {"MyRemoteUserName": "alice@localhost", "AuthMethods": "FS"},
])
def test_no_real_user_or_no_token_method_is_unauthenticated(fake: types.ModuleType,
                                                            ad: dict[str, str]) -> None:
    fake.ping_ad = ad
    assert serve(kind="whoami")["error"] == "unauthenticated"
    assert serve(kind="act", action="hold", jobs=["1"], constraint=None)["error"] == "unauthenticated"
    assert not [c for c in FakeSchedd.calls if c[0] == "act"]


def test_denied_authorization(fake: types.ModuleType) -> None:
    fake.ping_ad = {**fake.ping_ad, "AuthorizationSucceeded": False}
    assert serve(kind="act", action="hold", jobs=["1"], constraint=None)["error"] == "permission_denied"


def test_act_pings_for_write_then_maps_the_result_ad(fake: types.ModuleType) -> None:
    FakeSchedd.act_result = {"TotalJobAds": 5, "TotalSuccess": 2, "TotalNotFound": 1,
                             "TotalPermissionDenied": 1, "TotalBadStatus": 0,
                             "TotalAlreadyDone": 1, "TotalError": 0, "TotalChangedAds": 2}
    answer = serve(kind="act", action="hold", jobs=["5", "6.0"], constraint=None, reason="why",
                   user="alice@localhost")
    assert answer == {"user": "alice@localhost", "matched": 5, "outcome": {
        "success": 2, "not_found": 1, "permission_denied": 1, "bad_status": 0,
        "already_done": 1, "error": 0}}
    assert FakeSchedd.calls == [("ping", "vm", "WRITE"), ("act", "Hold", ["5", "6.0"], "why")]


def test_act_by_constraint(fake: types.ModuleType) -> None:
    FakeSchedd.act_result = {"TotalJobAds": 0}
    answer = serve(kind="act", action="remove", jobs=None, constraint='Owner == "alice"', reason=None)
    assert answer["matched"] == 0 and set(answer["outcome"].values()) == {0}
    assert FakeSchedd.calls[-1] == ("act", "Remove", 'Owner == "alice"', None)


def test_mismatch_refuses_before_acting(fake: types.ModuleType) -> None:
    for request in ({"kind": "act", "action": "hold", "jobs": ["1"], "constraint": None},
                    {"kind": "edit", "jobs": ["1"], "constraint": None, "attributes": {"A": "1"}},
                    {"kind": "submit", "description": {"executable": "/bin/true"}, "count": 1}):
        answer = serve(**request, user="bob@localhost")
        assert answer["error"] == "mismatch" and "alice@localhost" in answer["message"]
    assert {c[0] for c in FakeSchedd.calls} == {"ping"}


@pytest.mark.parametrize("request_, kind", [
    ({"kind": "act", "action": "explode", "jobs": ["1"], "constraint": None}, "bad_request"),
    ({"kind": "act", "action": "hold", "jobs": ["1"], "constraint": "true"}, "bad_request"),
    ({"kind": "act", "action": "hold", "jobs": None, "constraint": None}, "bad_request"),
    ({"kind": "act", "action": "hold", "jobs": ["1; rm"], "constraint": None}, "bad_request"),
    ({"kind": "act", "action": "hold", "jobs": None, "constraint": "true", "schedd": "nosuch"},
     "not_found"),
    ({"kind": "count", "jobs": None, "constraint": "true"}, "bad_request"),  # the front never asks
    ({"kind": "nothing"}, "bad_request"),
    ({"kind": "edit", "jobs": ["1"], "constraint": None, "attributes": {"A": "1 +"}}, "bad_request"),
])
def test_bad_requests(fake: types.ModuleType, request_: dict[str, Any], kind: str) -> None:
    FakeSchedd.jobs = [{"ClusterId": 1, "ProcId": 0, "Owner": "alice", "User": "alice@localhost"}]
    assert serve(**request_)["error"] == kind


@pytest.mark.parametrize("message, kind", [
    ("Failed communication with schedd.", "unavailable"),
    ("AUTHENTICATE:1003:Failed to authenticate with any method", "unauthenticated"),
    ("Permission denied", "permission_denied"),
])
def test_bindings_exceptions_are_error_kinds(fake: types.ModuleType, message: str, kind: str) -> None:
    fake.ping_ad = FakeHTCondorException(message)
    answer = serve(kind="whoami")
    assert answer["error"] == kind and message in answer["message"]


def test_error_kind_of_other_exceptions(fake: types.ModuleType) -> None:
    def kind(exc: BaseException) -> str:
        return actor.error_kind(fake, classad2, exc)
    assert kind(classad2.ClassAdException("Unable to parse")) == "bad_request"
    assert kind(ValueError("invalid constraint")) == "bad_request"
    assert kind(KeyError("x")) == "not_found"
    assert kind(RuntimeError("x")) == "unavailable"


def test_edit(fake: types.ModuleType) -> None:
    FakeSchedd.jobs = [{"ClusterId": 5, "ProcId": p, "Owner": o, "User": f"{o}@localhost"}
                       for p, o in enumerate(["alice", "alice", "bob"])]
    answer = serve(kind="edit", jobs=None, constraint="ClusterId == 5", user="alice@localhost",
                   attributes={"JobPrio": "10"})
    assert answer == {"user": "alice@localhost", "matched": 3, "edited": 2}
    assert FakeSchedd.calls[-1] == ("edit", "ClusterId == 5", "JobPrio", "10")
    FakeSchedd.edit_error = "Failed to set attribute"
    assert serve(kind="edit", jobs=["5.2"], constraint=None, attributes={"A": "1"})["error"] == \
        "permission_denied"  # the schedd refused, and the user owns none of them
    assert serve(kind="edit", jobs=["5"], constraint=None, attributes={"A": "1"})["error"] == "refused"


def test_edit_of_nothing_asks_nothing(fake: types.ModuleType) -> None:
    answer = serve(kind="edit", jobs=["77"], constraint=None, attributes={"A": "1"})
    assert answer == {"user": "alice@localhost", "matched": 0, "edited": 0}
    assert "edit" not in {c[0] for c in FakeSchedd.calls}


def test_submit(fake: types.ModuleType) -> None:
    answer = serve(kind="submit", description={"executable": "/bin/sleep", "arguments": 60},
                   count=2, itemdata=[{"x": "a"}, {"x": "b"}], user="alice@localhost")
    assert answer == {"user": "alice@localhost", "cluster": 42, "procs": [0, 1, 2, 3]}
    assert FakeSchedd.calls[-1] == ("submit", {"executable": "/bin/sleep", "arguments": "60"}, 2,
                                    [{"x": "a"}, {"x": "b"}])
    assert serve(kind="submit", description={}, count=0)["error"] == "bad_request"
    assert serve(kind="submit", description={"executable": "x"}, count=-1)["error"] == "bad_request"


def test_ids_constraint() -> None:
    assert actor.ids_constraint(["5", "6.1"]) == "(ClusterId == 5) || (ClusterId == 6 && ProcId == 1)"


def test_method_offered_when_the_ping_ad_does_not_say(fake: types.ModuleType,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_CONDOR_SEC_CLIENT_AUTHENTICATION_METHODS", "SCITOKENS")
    fake.ping_ad = {"MyRemoteUserName": "carol@example.org"}
    assert serve(kind="whoami") == {"user": "carol@example.org", "method": "SCITOKENS"}


def test_backends_say_how_their_child_starts() -> None:
    from condor_restd import condor
    from condor_restd.demo import DemoPool

    assert condor.HTCondor("cm.example.org:9618").acting_argv() == ["--pool", "cm.example.org:9618"]
    assert condor.HTCondor().acting_argv() == ["--pool", ""]
    pool = DemoPool()
    assert pool.acting_argv() == ["--demo", pool.journal]


def test_the_pool_argument_reaches_the_collector(fake: types.ModuleType,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    pools = []
    monkeypatch.setattr(FakeCollector, "__init__", lambda self, pool=None: pools.append(pool))
    actor.serve("cm.example.org", {"kind": "whoami", "schedd": None})
    actor.serve(None, {"kind": "whoami", "schedd": None})
    assert pools == ["cm.example.org", None]
