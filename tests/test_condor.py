"""The real adapter: JSON encoding checked against ads captured from a real pool, and every bindings error mapped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import classad2
import htcondor2
import pytest

from condor_restd import classads, condor, historyfile
from condor_restd.errors import BadRequest, NotFound, RestdError, Unavailable

from .conftest import DATA, Client, lowered

DEMO = Path(condor.__file__).with_name("demo_data")


def load_ads(name: str) -> list[Any]:
    return condor.parse_ads((DEMO / f"{name}.ads").read_text())


# ------------------------------------------------------------------------------ encoding

@pytest.mark.parametrize("name", ["jobs-default", "jobs-schedd2", "history-default", "history-schedd2"])
def test_job_ads_encode_exactly_as_the_real_pool_wrote_them(name: str) -> None:
    """expected/ holds printJson() of the same jobs, taken from the live schedd."""
    expected = {ad["GlobalJobId"]: lowered(ad) for ad in json.loads((DATA / "expected" / f"{name}.json").read_text())}
    ads = load_ads(name)
    assert len(ads) == len(expected)
    for ad in ads:
        ours = json.loads(condor.ad_json(ad))
        assert ours == expected[ours["globaljobid"]]


def test_a_long_text_is_parsed_a_piece_at_a_time_into_the_same_ads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pieces cut at blank lines: every ad comes out once and whole, however the cuts fall."""
    text = "\n\n".join((DEMO / f"{name}.ads").read_text().strip()
                       for name in ("jobs-default", "history-default", "collector"))
    whole = [ad.printJson() for ad in classad2.parseAds(text) if len(ad)]
    for piece in (1, 100, 3000, len(text)):
        monkeypatch.setattr(classads, "PARSE_PIECE", piece)
        assert [ad.printJson() for ad in condor.parse_ads(text)] == whole
    assert condor.parse_ads("") == [] and condor.parse_ads("\n\n\n") == []


def test_collector_ads_encode_with_the_same_names_and_types() -> None:
    expected = {(ad["MyType"], ad["Name"], ad.get("ScheddName")): lowered(ad)
                for ad in json.loads((DATA / "expected" / "collector.json").read_text())}
    for ad in load_ads("collector"):
        ours = json.loads(condor.ad_json(ad))
        theirs = expected[(ours["mytype"], ours["name"], ours.get("scheddname"))]
        # daemon statistics moved between the two captures; the names of the rest do not
        shared = set(ours) & set(theirs)
        assert len(shared) > 0.8 * len(theirs)
        assert {k: type(ours[k]) for k in shared} == {k: type(theirs[k]) for k in shared}
        if ours["mytype"] in ("Machine", "Accounting", "Negotiator", "StartD"):
            assert set(ours) == set(theirs)
            same = [k for k in ours if "time" not in k and "heard" not in k and "sequence" not in k]
            assert {k: ours[k] for k in same} == {k: theirs[k] for k in same}


def test_encoding_matches_printjson_for_every_value_kind() -> None:
    ad = classad2.ClassAd(r'''[ Str = "x\ny\t\"q\\"; Nested = [ Inner = 1; Deeper = { 1, [ Leaf = 2 ] } ];
        List = { 1, "a", undefined }; Undef = undefined; Err = error; Big = 1.5e300; Real = 3.0;
        Expr = Foo + 1; Yes = true; When = absTime("2026-01-01T00:00:00Z"); Span = relTime(5);
        Uni = "héllo ☃"; Brace = "{\n  \"Fake\": 1" ]''')
    ours = json.loads(condor.ad_json(ad))
    assert ours == lowered(json.loads(ad.printJson()))
    assert ours["nested"] == {"inner": 1, "deeper": [1, {"leaf": 2}]}
    assert ours["expr"] == "/Expr(Foo + 1)/"
    assert ours["undef"] is None
    assert ours["brace"] == '{\n  "Fake": 1'  # values are never touched


def test_projection_and_redaction_on_the_encoded_ad() -> None:
    ad = classad2.ClassAd('[ Owner = "bob"; Environment = "SECRET=1"; Args = {1, 2}; Cmd = "x" ]')
    assert json.loads(condor.ad_json(ad, frozenset({"owner", "args"}))) == {"owner": "bob", "args": [1, 2]}
    hidden = json.loads(condor.ad_json(ad, None, frozenset({"environment", "args"})))
    assert hidden == {"owner": "bob", "environment": "<REDACTED>", "args": "<REDACTED>", "cmd": "x"}
    assert condor.ad_json(ad, frozenset({"nothere"})) == "{}"
    assert condor.ad_json(classad2.ClassAd()) == "{}"


def test_group_keys() -> None:
    ad = classad2.ClassAd('[ S = "a"; I = 3; B = true; F = 1.5; E = Foo + 1; U = undefined ]')
    assert [condor.group_key(ad, n) for n in ("s", "I", "b", "F", "e", "u", "missing")] == [
        "a", "3", "true", "1.5", "/Expr(Foo + 1)/", None, None]


def test_constraint_helpers_use_the_classad_library() -> None:
    with pytest.raises(BadRequest):
        condor.check_expression("Owner ==")
    ad = classad2.ClassAd('[ Owner = "a"; N = 2 ]')
    assert condor.matches(condor.check_expression('Owner == "a"'), ad)
    assert not condor.matches(condor.check_expression('Owner == "b"'), ad)
    assert not condor.matches(condor.check_expression("Missing == 1"), ad)
    assert condor.matches(condor.check_expression("N"), ad)
    assert condor.quote('a"b') == '"a\\"b"'
    assert sorted(condor.referenced_attributes("MY.Environment == 1 && TARGET.x > Y")) == [
        "Environment", "TARGET.x", "Y"]


# ----------------------------------------------------------------- the adapter over stubs

class Stubs:
    """Stand-ins for htcondor2.Collector/Schedd/RemoteParam that behave as errors.md records."""

    def __init__(self) -> None:
        self.queue = load_ads("jobs-default")
        self.history = load_ads("history-default")
        self.collector_ads = load_ads("collector")
        self.calls: list[tuple[Any, ...]] = []
        self.collector_error: Exception | None = None
        self.schedd_error: Exception | None = None
        self.history_error: Exception | None = None
        self.remote: dict[str, str] = {"NUM_CPUS": "8", "ACCOUNTANT_HOST": "Not defined"}

    # the local configuration: this host runs a schedd, so DEFAULT is that one
    param: dict[str, Any] = {"DAEMON_LIST": "MASTER, COLLECTOR, NEGOTIATOR, SCHEDD, STARTD"}

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        stubs = self

        class Collector:
            def __init__(self, pool: Any = None) -> None:
                stubs.calls.append(("Collector", pool))

            def locate(self, daemon_type: Any, name: str | None = None) -> Any:
                stubs.calls.append(("locate", daemon_type, name))
                if stubs.collector_error:
                    raise stubs.collector_error
                if name not in (None, "vm", "schedd2@vm"):
                    return None
                return classad2.ClassAd({"MyAddress": "<127.0.0.1:9618>", "Name": name or "vm"})

            def query(self, ad_type: Any, constraint: str | None = None,
                      projection: list[str] | None = None) -> list[Any]:
                stubs.calls.append(("query", ad_type, constraint, projection))
                if stubs.collector_error:
                    raise stubs.collector_error
                return list(stubs.collector_ads)

        class Schedd:
            def __init__(self, location: Any = None) -> None:
                stubs.calls.append(("Schedd", location["Name"]))

            def query(self, constraint: str = "true", projection: list[str] | None = None,
                      limit: int = -1) -> list[Any]:
                stubs.calls.append(("schedd.query", constraint, projection, limit))
                if stubs.schedd_error:
                    raise stubs.schedd_error
                return list(stubs.queue)

            def history(self, constraint: str, projection: list[str], match: int = -1,
                        since: Any = None) -> list[Any]:
                stubs.calls.append(("schedd.history", constraint, projection, match, since))
                if stubs.history_error:
                    raise stubs.history_error
                return list(stubs.history)

        class RemoteParam(dict):  # type: ignore[type-arg]
            def __init__(self, location: Any) -> None:
                if location is None:
                    raise AttributeError("'NoneType' object has no attribute '_handle'")
                super().__init__(stubs.remote)

        monkeypatch.setattr(condor.htcondor, "param", self.param)
        monkeypatch.setattr(condor.htcondor, "Collector", Collector)
        monkeypatch.setattr(condor.htcondor, "Schedd", Schedd)
        monkeypatch.setattr(condor.htcondor, "RemoteParam", RemoteParam)


@pytest.fixture
def stubs(monkeypatch: pytest.MonkeyPatch) -> Stubs:
    s = Stubs()
    s.install(monkeypatch)
    return s


@pytest.fixture
def real(make_client: Any, stubs: Stubs) -> Client:
    client: Client = make_client(backend=condor.HTCondor(), isolate=False)  # stubs record here
    return client


def test_adapter_serves_jobs_through_the_bindings(real: Client, stubs: Stubs) -> None:
    body = real.get("/v1/jobs/DEFAULT/2", {"constraint": 'Owner == "condoruser"', "projection": "Cmd"}).json()
    assert len(body) == 14  # the stub does not filter; the adapter passed the query on
    query = next(c for c in stubs.calls if c[0] == "schedd.query")
    assert query[1] == '(Owner == "condoruser") && ClusterId == 2'
    assert query[2] == ["Cmd", "ClusterId", "ProcId"]
    assert query[3] == 10001  # one more than RESTD_MAX_JOBS, to tell a cut-short result


def test_adapter_locates_named_schedds_and_404s_unknown_ones(real: Client, stubs: Stubs) -> None:
    assert real.get("/v1/jobs/schedd2@vm").status == 200
    assert ("locate", htcondor2.DaemonType.Schedd, "schedd2@vm") in stubs.calls
    r = real.get("/v1/jobs/nosuch")
    assert r.status == 404 and "nosuch" in r.json()["message"]


def test_adapter_history_passes_match(real: Client, stubs: Stubs) -> None:
    assert len(real.get("/v1/history/DEFAULT").json()) == 28
    call = next(c for c in stubs.calls if c[0] == "schedd.history")
    assert call[1] == "true" and call[3] == 10001


def test_adapter_status_passes_the_ad_type(real: Client, stubs: Stubs) -> None:
    real.get("/v1/status/slot1@vm", {"query": "startd"})
    call = next(c for c in stubs.calls if c[0] == "query")
    assert call[1] == htcondor2.AdTypes.Startd
    assert call[2] == 'Name == "slot1@vm"'


def test_adapter_remote_config(real: Client, stubs: Stubs) -> None:
    assert real.get("/v1/config/NUM_CPUS", {"daemon": "master"}).json() == "8"
    assert real.get("/v1/config/ACCOUNTANT_HOST", {"daemon": "master"}).status == 404
    assert real.get("/v1/config/NO_SUCH_KNOB", {"daemon": "schedd"}).status == 404
    assert real.get("/v1/config", {"daemon": "collector"}).json() == {"num_cpus": "8"}
    assert ("locate", htcondor2.DaemonType.Master, None) in stubs.calls


def test_adapter_local_config(real: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(condor.htcondor, "param", {"NUM_CPUS": 8, "FLAG": True})
    assert real.get("/v1/config").json() == {"num_cpus": 8, "flag": True}
    assert real.get("/v1/config/FLAG").json() is True
    assert real.get("/v1/config/NO_SUCH_KNOB").status == 404


@pytest.mark.parametrize(("config", "has"), [
    ({"DAEMON_LIST": "MASTER, SCHEDD, STARTD"}, True),
    ({"DAEMON_LIST": "MASTER SCHEDD"}, True),
    ({"DAEMON_LIST": "master,schedd"}, True),
    ({"DAEMON_LIST": "MASTER, COLLECTOR, NEGOTIATOR"}, False),  # a central manager
    ({"DAEMON_LIST": "MASTER, COLLECTOR, NEGOTIATOR, SCHEDD2"}, False),
    ({"DAEMON_LIST": "MASTER, COLLECTOR", "SCHEDD_HOST": "submit.example.org"}, True),
    ({"DAEMON_LIST": "MASTER, COLLECTOR", "SCHEDD_NAME": "schedd2@vm"}, True),
    ({"DAEMON_LIST": "MASTER", "SCHEDD_HOST": " "}, False),
    ({}, False),
])
def test_a_default_schedd_is_what_the_local_configuration_says(config: dict[str, Any], has: bool) -> None:
    assert condor.schedd_configured(config) is has


def test_on_a_central_manager_default_is_404_and_ready_without_a_schedd(
        real: Client, stubs: Stubs, monkeypatch: pytest.MonkeyPatch) -> None:
    """No SCHEDD in DAEMON_LIST: DEFAULT is a 404 (not a 503 forever), and /readyz asks the
    collector alone, so that a load balancer keeps the daemon."""
    monkeypatch.setattr(condor.htcondor, "param", {"DAEMON_LIST": "MASTER, COLLECTOR, NEGOTIATOR"})
    for url in ("/v1/jobs/DEFAULT", "/v1/history/DEFAULT/1/0", "/v1/grouped_jobs/DEFAULT/Owner"):
        r = real.get(url)
        assert r.status == 404 and "there is no local schedd" in r.json()["message"], (url, r)
        assert "retry-after" not in r.headers
    assert not any(call[0] == "schedd.query" for call in stubs.calls)
    assert real.get("/v1/jobs/schedd2@vm").status == 200  # a named schedd still answers
    ready = real.get("/readyz")
    assert ready.status == 200 and ready.json() == {"status": "ready", "checks": {"collector": "ok"}}


def test_with_a_local_schedd_readiness_waits_for_it(make_client: Any, stubs: Stubs) -> None:
    stubs.schedd_error = htcondor2.HTCondorException("Failed to fetch ads from schedd, errmsg=")
    r = make_client(backend=condor.HTCondor()).get("/readyz")
    assert r.status == 503 and set(r.json()["checks"]) == {"collector", "schedd"}


# The exact exceptions errors.md records, raised where the bindings raise them.
COLLECTOR_DOWN = htcondor2.HTCondorException("Failed communication with collector.")
COLLECTOR_QUERY = htcondor2.HTCondorException("Unknown error from collector query.")
SCHEDD_FAILED = htcondor2.HTCondorException("Failed to fetch ads from schedd, errmsg=")
HISTORY_BAD = ValueError("invalid constraint")


@pytest.mark.parametrize("where,error,path,status", [
    ("collector_error", COLLECTOR_DOWN, "/v1/status", 503),
    ("collector_error", COLLECTOR_DOWN, "/v1/jobs/schedd2@vm", 503),
    ("collector_error", COLLECTOR_DOWN, "/v1/config?daemon=master", 503),
    ("collector_error", COLLECTOR_QUERY, "/v1/grouped_status/MyType", 503),
    ("schedd_error", SCHEDD_FAILED, "/v1/jobs/DEFAULT", 503),
    ("schedd_error", SCHEDD_FAILED, "/v1/grouped_jobs/DEFAULT/owner", 503),
    ("history_error", HISTORY_BAD, "/v1/history/DEFAULT", 400),
    ("schedd_error", classad2.ClassAdException("Unable to parse string into a ClassAd."),
     "/v1/jobs/DEFAULT/2/0", 400),
    ("schedd_error", KeyError("ClusterId"), "/v1/jobs/DEFAULT", 404),
    ("schedd_error", RuntimeError("boom"), "/v1/jobs/DEFAULT", 503),
    ("schedd_error", OSError("connection reset"), "/v1/jobs/DEFAULT", 503),
])
def test_bindings_errors_map_to_4xx_or_503(real: Client, stubs: Stubs, where: str, error: Exception,
                                          path: str, status: int) -> None:
    setattr(stubs, where, error)
    route, _, query = path.partition("?")
    r = real.get(route, query=query)
    assert r.status == status, r
    assert r.json()["status"] == status
    if status == 503:
        assert "retry-after" in r.headers


def test_bindings_errors_context_covers_every_recorded_exception() -> None:
    cases: list[tuple[BaseException, type[RestdError]]] = [
        (COLLECTOR_DOWN, Unavailable), (COLLECTOR_QUERY, Unavailable), (SCHEDD_FAILED, Unavailable),
        (HISTORY_BAD, BadRequest), (KeyError("NO_SUCH_KNOB"), NotFound),
        (AttributeError("'NoneType' object has no attribute '_handle'"), Unavailable),
        (classad2.ClassAdException("Unable to parse string into a ClassAd."), BadRequest),
    ]
    for raised, mapped in cases:
        with pytest.raises(mapped):
            with condor.bindings_errors("testing"):
                raise raised


def test_located_schedds_are_cached_and_forgotten_on_failure(real: Client, stubs: Stubs) -> None:
    real.get("/v1/jobs/schedd2@vm")
    real.get("/v1/jobs/schedd2@vm")
    assert sum(1 for c in stubs.calls if c[0] == "locate") == 1
    stubs.schedd_error = SCHEDD_FAILED
    assert real.get("/v1/jobs/schedd2@vm").status == 503
    stubs.schedd_error = None
    real.get("/v1/jobs/schedd2@vm")
    assert sum(1 for c in stubs.calls if c[0] == "locate") == 2


# ------------------------------------------------------------------------- history files

def write_history(folder: Path, ads: list[Any], name: str = "history", tail: str = "") -> Path:
    """A history file as a schedd writes it: oldest first, each ad followed by its banner line."""
    path = folder / name
    with path.open("w") as out:
        for ad in reversed(ads):
            out.write(ad.printOld())
            out.write(f'*** Offset = 0 ClusterId = {ad["ClusterId"]} ProcId = {ad["ProcId"]} '
                      f'Owner = "{ad.get("Owner")}" CompletionDate = 1795590975\n')
        out.write(tail)
    return path


def ids_of(records: Any) -> list[str]:
    return [f"{ad['ClusterId']}.{ad['ProcId']}" for _, ad in records]


@pytest.mark.parametrize("block", [64, 1000, 1 << 16])
def test_history_file_reads_newest_first_from_any_position(tmp_path: Path, block: int,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(historyfile, "READ_BLOCK", block)
    ads = load_ads("history-default")  # newest first
    history = condor.HistoryFile(str(write_history(tmp_path, ads, tail='Partial = "being written"\n')))
    records = list(history.records())
    assert ids_of(records) == [f"{ad['ClusterId']}.{ad['ProcId']}" for ad in ads]
    assert json.loads(condor.ad_json(records[3][1])) == json.loads(condor.ad_json(ads[3]))
    for n in (0, 1, 13, 27):
        assert ids_of(history.records(records[n][0])) == ids_of(records[n + 1:])


def test_history_file_goes_on_into_rotated_files(tmp_path: Path) -> None:
    ads = load_ads("history-default")
    write_history(tmp_path, ads[20:], "history.20261101T000000")
    write_history(tmp_path, ads[10:20], "history.20261120T000000")
    history = condor.HistoryFile(str(write_history(tmp_path, ads[:10])))
    assert history.files() == ["history", "history.20261120T000000", "history.20261101T000000"]
    records = list(history.records())
    assert ids_of(records) == [f"{ad['ClusterId']}.{ad['ProcId']}" for ad in ads]
    assert ids_of(history.records(records[9][0])) == ids_of(records[10:])
    assert list(history.records(("history.19990101T000000", 5))) == []
    assert condor.HistoryFile(str(tmp_path / "nothing")).identity() == "missing"


# ------------------------------------------------- client expressions in the worker (issue #14)

def test_a_failed_evaluation_matches_nothing() -> None:
    ad = classad2.ClassAd({"ClusterId": 3})
    for text in ("random(0)", "random(0) == 1", "1/0", "{}.x", "+".join(["ClusterId"] * 450) + " > 0"):
        assert condor.matches(condor.check_expression(text), ad) is False, text
    assert condor.matches(condor.check_expression("ClusterId == 3"), ad) is True


def test_references_the_library_cannot_list_are_none() -> None:
    assert condor.referenced_attributes("{}.x == 1") is None
    assert condor.referenced_attributes("true") == []  # not [""]
    assert condor.referenced_attributes("MY.Environment.x") == ["MY.Environment.x"]


def test_a_constraint_evaluated_in_the_worker_sees_no_hidden_value() -> None:
    from condor_restd.demo import DemoPool
    from condor_restd.encoding import Shape

    pool = DemoPool()
    encoded = condor.Encoded(pool)
    plain = encoded.jobs(None, "true", [], 0, Shape(where="MemoryUsage == 2"))
    assert len(plain.ids) == 2  # MemoryUsage computes with ResidentSetSize
    hidden = encoded.jobs(None, "true", [], 0, Shape(where="MemoryUsage == 2",
                                                     hide=frozenset({"residentsetsize"})))
    assert hidden.ids == []
    # the source's ads are left as they were; the limit counts matches
    assert all("ResidentSetSize" in ad for ad in pool.queues["vm"] if "MemoryUsage" in ad)
    some = encoded.history(None, "true", [], 1, None, Shape(where='Owner == "bob"', hide=frozenset({"x"})))
    assert some.count == 1 and len(some.ids) == 1
    scrubbed = condor.scrubbed(classad2.ClassAd({"A": 1, "Secret": 2, "B": classad2.ExprTree("Secret + A")}),
                               frozenset({"secret"}))
    assert "Secret" not in scrubbed and scrubbed.eval("B") is classad2.Value.Undefined


def test_an_upstream_failure_names_the_daemon_and_its_address(real: Client, stubs: Stubs) -> None:
    stubs.schedd_error = SCHEDD_FAILED
    message = real.get("/v1/jobs/schedd2@vm").json()["message"]
    assert "schedd schedd2@vm at " in message and "Failed to fetch ads from schedd" in message
    stubs.collector_error = COLLECTOR_DOWN
    message = real.get("/v1/status").json()["message"]
    assert "querying the collector at " in message and "Failed communication with collector" in message
