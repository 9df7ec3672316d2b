"""The v1 contract, request by request, through the real CherryPy app over the demo pool."""

from __future__ import annotations

import time
from typing import Any

import pytest

from condor_restd import condor
from condor_restd.demo import DemoPool
from condor_restd.errors import RestdError, Timeout, Unavailable
from condor_restd.render import EXPOSED_HEADERS

from .conftest import Client


def jobids(body: list[dict[str, Any]]) -> list[str]:
    return [job["jobid"] for job in body]


# ------------------------------------------------------------------------------ jobs, history

def test_jobs_default_schedd_lists_every_job_in_id_order(client: Client) -> None:
    r = client.get("/v1/jobs/DEFAULT")
    assert r.status == 200
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert jobids(body) == ["2.0", "2.1", "2.2", "5.0", "7.0", "17.0", "17.1", "17.2",
                            "18.0", "18.1", "19.0", "20.0", "20.1", "21.0"]
    first = body[0]["classad"]
    assert first["clusterid"] == 2 and first["procid"] == 0
    assert all(key == key.lower() for job in body for key in job["classad"])


def test_named_schedd_is_located_through_the_collector(client: Client) -> None:
    body = client.get("/v1/jobs/schedd2@vm").json()
    assert len(body) == 12
    assert {job["classad"]["globaljobid"].split("#")[0] for job in body} == {"schedd2@vm"}
    assert client.get("/v1/jobs/vm").json() == client.get("/v1/jobs/DEFAULT").json()


@pytest.mark.parametrize("path", ["/v1/jobs/nosuch", "/v1/history/nosuch", "/v1/jobs/schedd2",
                                  "/v1/grouped_jobs/nosuch/owner", "/v1/jobs/nosuch/1/0",
                                  "/v1/history/nosuch/1/0/cmd"])
def test_unknown_schedd_is_404(client: Client, path: str) -> None:
    r = client.get(path)
    assert r.status == 404
    assert r.json()["status"] == 404 and "schedd" in r.json()["message"]


def test_history_is_newest_first(client: Client) -> None:
    body = client.get("/v1/history/DEFAULT").json()
    assert len(body) == 28
    assert jobids(body)[:8] == ["15.1", "15.0", "13.3", "13.1", "13.2", "13.0", "16.0", "14.2"]


def test_jobs_and_history_by_cluster(client: Client) -> None:
    assert jobids(client.get("/v1/jobs/DEFAULT/17").json()) == ["17.0", "17.1", "17.2"]
    assert jobids(client.get("/v1/history/DEFAULT/13").json()) == ["13.3", "13.1", "13.2", "13.0"]
    assert client.get("/v1/jobs/DEFAULT/999").json() == []


def test_one_job_by_cluster_and_proc(client: Client) -> None:
    r = client.get("/v1/jobs/DEFAULT/2/1")
    assert r.status == 200
    job = r.json()
    assert job["jobid"] == "2.1" and job["classad"]["cmd"] == "/bin/sleep"
    assert client.get("/v1/history/schedd2@vm/5/0").json()["classad"]["jobstatus"] == 3


@pytest.mark.parametrize("path", ["/v1/jobs/DEFAULT/99/0", "/v1/history/DEFAULT/2/0",
                                  "/v1/jobs/DEFAULT/99/0/cmd"])
def test_missing_job_is_404(client: Client, path: str) -> None:
    r = client.get(path)
    assert r.status == 404 and "not found" in r.json()["message"]


def test_attribute_url_is_case_insensitive(client: Client) -> None:
    lower = client.get("/v1/jobs/DEFAULT/2/0/cmd")
    upper = client.get("/v1/jobs/DEFAULT/2/0/CMD")
    assert lower.status == upper.status == 200
    assert lower.json() == upper.json() == "/bin/sleep"
    assert client.get("/v1/history/DEFAULT/13/0/ExitCode").json() == 0
    assert client.get("/v1/jobs/schedd2@vm/6/0/projectname").json() == "physics"


def test_attribute_values_keep_their_json_types(client: Client) -> None:
    assert client.get("/v1/jobs/DEFAULT/2/0/RequestCpus").json() == 1
    assert client.get("/v1/jobs/DEFAULT/2/0/ExitBySignal").json() is True
    assert client.get("/v1/jobs/DEFAULT/2/0/NumHoldsByReason").json() == {"userrequest": 2}
    requirements = client.get("/v1/jobs/DEFAULT/2/0/Requirements").json()
    assert requirements.startswith("/Expr(") and requirements.endswith(")/")


def test_undefined_or_missing_attribute_is_404(client: Client) -> None:
    assert client.get("/v1/jobs/DEFAULT/2/0/NoSuchAttribute").status == 404
    # JobCurrentReconnectAttempt = undefined in the ad
    assert client.get("/v1/jobs/DEFAULT/2/0/JobCurrentReconnectAttempt").status == 404


def test_projection_is_case_insensitive_and_keeps_jobid(client: Client) -> None:
    body = client.get("/v1/jobs/DEFAULT", {"projection": " Owner , CMD "}).json()
    assert len(body) == 14
    for job in body:
        assert set(job["classad"]) == {"owner", "cmd"}
        assert job["jobid"]
    one = client.get("/v1/history/DEFAULT/13/0", {"projection": "exitcode"}).json()
    assert one == {"jobid": "13.0", "classad": {"exitcode": 0}}


def test_projection_of_missing_attribute_leaves_it_out(client: Client) -> None:
    body = client.get("/v1/jobs/schedd2@vm", {"projection": "ProjectName"}).json()
    assert sum(1 for job in body if job["classad"]) == 5
    assert all(set(job["classad"]) <= {"projectname"} for job in body)


def test_constraint_filters(client: Client) -> None:
    body = client.get("/v1/jobs/DEFAULT", {"constraint": 'Owner == "bob"'}).json()
    assert len(body) == 3
    assert {job["classad"]["owner"] for job in body} == {"bob"}
    held = client.get("/v1/history/schedd2@vm", {"constraint": "JobStatus == 3"}).json()
    assert jobids(held) == ["5.0"]


def test_constraint_is_parenthesised_with_the_cluster(client: Client) -> None:
    # Unparenthesised, "ClusterId == 5 || true && ClusterId == 2" would also return 5.0.
    body = client.get("/v1/jobs/DEFAULT/2", {"constraint": "ClusterId == 5 || true"}).json()
    assert jobids(body) == ["2.0", "2.1", "2.2"]


@pytest.mark.parametrize("constraint", ["Owner ==", "(", "true) || (true", "Owner == \"a",
                                        "1 +* 2", "]"])
def test_malformed_constraint_is_400(client: Client, constraint: str) -> None:
    for path in ("/v1/jobs/DEFAULT", "/v1/history/DEFAULT/2", "/v1/grouped_jobs/DEFAULT/owner",
                 "/v1/status", "/v1/grouped_status/mytype"):
        r = client.get(path, {"constraint": constraint})
        assert r.status == 400, (path, r)
        assert r.json()["status"] == 400


def test_empty_constraint_means_everything(client: Client) -> None:
    assert len(client.get("/v1/jobs/DEFAULT", {"constraint": ""}).json()) == 14


@pytest.mark.parametrize("projection", ["a b", "1abc", "Owner,", "x-y", "Owner;true"])
def test_bad_projection_is_400(client: Client, projection: str) -> None:
    r = client.get("/v1/jobs/DEFAULT", {"projection": projection})
    assert r.status == 400 and "projection" in r.json()["message"]


@pytest.mark.parametrize("path", ["/v1/jobs/DEFAULT/abc", "/v1/jobs/DEFAULT/1/x", "/v1/jobs/DEFAULT/-1",
                                  "/v1/history/DEFAULT/1.5", "/v1/grouped_jobs/DEFAULT/owner/x",
                                  "/v1/jobs/DEFAULT/2/0/bad-name"])
def test_bad_ids_and_attribute_names_are_400(client: Client, path: str) -> None:
    r = client.get(path)
    assert r.status == 400, r


def test_max_jobs_caps_every_job_query(make_client: Any) -> None:
    client = make_client(max_jobs=3)
    assert len(client.get("/v1/jobs/DEFAULT").json()) == 3
    assert len(client.get("/v1/history/DEFAULT").json()) == 3
    assert sum(len(v) for v in client.get("/v1/grouped_jobs/DEFAULT/owner").json().values()) == 3
    assert sum(len(v) for v in client.get("/v1/grouped_history/DEFAULT/owner").json().values()) == 3
    assert len(client.get("/v1/status").json()) == 23  # status is not a job query


# ---------------------------------------------------------------------------------- hiding

@pytest.fixture
def hidden(make_client: Any) -> Client:
    client: Client = make_client(hide_job_attrs=frozenset({"environment", "args"}))
    return client


def test_hidden_attributes_are_redacted_everywhere(hidden: Client) -> None:
    jobs = hidden.get("/v1/jobs/DEFAULT").json()
    assert {job["classad"]["environment"] for job in jobs} == {"<REDACTED>"}
    assert {job["classad"]["args"] for job in jobs} == {"<REDACTED>"}
    assert "not-a-real-secret" not in hidden.get("/v1/jobs/DEFAULT").text
    assert hidden.get("/v1/jobs/DEFAULT/18/0").json()["classad"]["environment"] == "<REDACTED>"
    assert hidden.get("/v1/jobs/DEFAULT/18/0/Environment").json() == "<REDACTED>"
    assert hidden.get("/v1/jobs/DEFAULT/18/0/ENVIRONMENT").json() == "<REDACTED>"
    assert hidden.get("/v1/history/DEFAULT/13/0/args").json() == "<REDACTED>"
    projected = hidden.get("/v1/jobs/DEFAULT/18", {"projection": "Environment,Owner"}).json()
    assert [job["classad"] for job in projected] == [{"environment": "<REDACTED>", "owner": "bob"}] * 2
    grouped = hidden.get("/v1/grouped_history/DEFAULT/owner").json()
    assert {job["classad"].get("args") for jobs in grouped.values() for job in jobs} <= {"<REDACTED>", None}
    assert hidden.get("/v1/jobs/DEFAULT/2/0/cmd").json() == "/bin/sleep"


def test_hidden_attributes_cannot_be_probed(hidden: Client) -> None:
    for constraint in ['Environment == "API_TOKEN=not-a-real-secret"', "environment =!= undefined",
                       'MY.Environment != ""', 'TARGET.ARGS == "3000"',
                       'eval("Environ" + "ment") == ""', 'regexp("secret", Environment)']:
        r = hidden.get("/v1/jobs/DEFAULT", {"constraint": constraint})
        assert r.status == 400, constraint
    assert hidden.get("/v1/grouped_jobs/DEFAULT/Environment").status == 400
    assert hidden.get("/v1/grouped_history/DEFAULT/ARGS").status == 400


def test_hiding_does_not_touch_status(hidden: Client) -> None:
    assert hidden.get("/v1/status", {"constraint": 'Args =?= undefined'}).status == 200


# ------------------------------------------------------------------------------- grouped

def test_grouped_jobs_by_cmd(client: Client) -> None:
    grouped = client.get("/v1/grouped_jobs/DEFAULT/cmd").json()
    assert sum(len(jobs) for jobs in grouped.values()) == 14
    assert "/bin/sleep" in grouped
    assert all(job["classad"]["cmd"] == cmd for cmd, jobs in grouped.items() for job in jobs)


def test_grouped_jobs_with_projection_keeps_the_groupby_attribute(client: Client) -> None:
    grouped = client.get("/v1/grouped_jobs/DEFAULT/cmd", {"projection": "owner"}).json()
    for jobs in grouped.values():
        for job in jobs:
            assert set(job["classad"]) == {"owner", "cmd"}


def test_grouped_history_by_cmd_and_cluster(client: Client) -> None:
    grouped = client.get("/v1/grouped_history/DEFAULT/Cmd/13", {"projection": "ExitCode"}).json()
    assert [jobids(jobs) for jobs in grouped.values()] == [["13.3", "13.1", "13.2", "13.0"]]


def test_grouped_jobs_leave_out_ads_lacking_the_attribute(client: Client) -> None:
    grouped = client.get("/v1/grouped_jobs/DEFAULT/JobBatchName").json()
    assert sum(len(jobs) for jobs in grouped.values()) == 12
    assert set(grouped) == {"long-sleepers", "alice-sim", "alice-long", "bob-analysis", "nightly-reco"}
    assert client.get("/v1/grouped_jobs/schedd2@vm/ProjectName").json().keys() == {"physics"}
    assert client.get("/v1/grouped_jobs/DEFAULT/NoSuchAttr").json() == {}


def test_grouped_keys_for_numbers(client: Client) -> None:
    grouped = client.get("/v1/grouped_jobs/DEFAULT/JobStatus", {"projection": "owner"}).json()
    assert {k: len(v) for k, v in grouped.items()} == {"1": 6, "2": 4, "5": 4}


# -------------------------------------------------------------------------------- status

@pytest.mark.parametrize("query,count,mytype", [
    ("startd", 7, "Machine"), ("schedd", 2, "Scheduler"), ("master", 1, "DaemonMaster"),
    ("collector", 1, "Collector"), ("negotiator", 1, "Negotiator"), ("submitter", 6, "Submitter"),
    ("accounting", 4, "Accounting"), ("credd", 0, None), ("defrag", 0, None), ("generic", 0, None),
    ("grid", 0, None), ("had", 0, None), ("license", 0, None)])
def test_status_for_each_query_type(client: Client, query: str, count: int, mytype: str | None) -> None:
    body = client.get("/v1/status", {"query": query}).json()
    assert len(body) == count
    assert all(ad["type"] == mytype and ad["classad"]["mytype"] == mytype for ad in body)


def test_status_any_is_every_ad(client: Client) -> None:
    body = client.get("/v1/status").json()
    assert len(body) == 23
    assert len(client.get("/v1/status", {"query": "any"}).json()) == 23
    for ad in body:
        assert set(ad) == {"name", "type", "classad"}


@pytest.mark.parametrize("query", ["Startd", "bogus", "", "startd;rm", "any "])
def test_bad_query_type_is_400(client: Client, query: str) -> None:
    r = client.get("/v1/status", {"query": query})
    assert r.status == 400 and "query" in r.json()["message"]


def test_status_by_name(client: Client) -> None:
    body = client.get("/v1/status/slot1@vm").json()
    assert [(ad["name"], ad["type"]) for ad in body] == [("slot1@vm", "Machine")]
    assert {ad["type"] for ad in client.get("/v1/status/vm").json()} >= {"DaemonMaster", "Scheduler"}


def test_status_name_is_quoted(client: Client) -> None:
    assert client.get("/v1/status/" + '" || true || "').json() == []
    assert client.get("/v1/status/" + 'x\\" || true || \\"').json() == []


def test_status_projection_still_fills_name_and_type(client: Client) -> None:
    body = client.get("/v1/status", {"query": "startd", "projection": "Memory"}).json()
    assert {ad["name"] for ad in body} >= {"slot1@vm", "slot1_1@vm"}
    assert all(ad["type"] == "Machine" and set(ad["classad"]) == {"memory"} for ad in body)


def test_status_constraint(client: Client) -> None:
    body = client.get("/v1/status", {"query": "startd", "constraint": 'State == "Claimed"'}).json()
    assert len(body) == 6


def test_grouped_status_by_mytype(client: Client) -> None:
    grouped = client.get("/v1/grouped_status/MyType").json()
    assert "DaemonMaster" in grouped
    assert {k: len(v) for k, v in grouped.items()} == {
        "Accounting": 4, "Collector": 1, "DaemonMaster": 1, "Negotiator": 1, "Scheduler": 2,
        "StartD": 1, "Machine": 7, "Submitter": 6}


def test_grouped_status_by_name_and_query(client: Client) -> None:
    grouped = client.get("/v1/grouped_status/State/slot1@vm", {"query": "startd"}).json()
    assert list(grouped) == ["Unclaimed"]
    grouped = client.get("/v1/grouped_status/ScheddName", {"query": "submitter",
                                                           "projection": "Name"}).json()
    assert {k: len(v) for k, v in grouped.items()} == {"vm": 3, "schedd2@vm": 3}
    for ads in grouped.values():
        assert all(set(ad["classad"]) == {"name", "scheddname"} for ad in ads)


# -------------------------------------------------------------------------------- config

def test_config_lists_every_knob(client: Client) -> None:
    config = client.get("/v1/config").json()
    assert len(config) > 1000
    assert config["num_cpus"] == 8


def test_config_names_are_lowercase_as_v1_had_them(client: Client) -> None:
    """The original's own suite looks for full_hostname; values stay as the bindings give them."""
    for params in ({}, {"daemon": "master"}):
        config = client.get("/v1/config", params).json()
        assert all(name == name.lower() for name in config), params
        assert "full_hostname" in config and "FULL_HOSTNAME" not in config
    assert client.get("/v1/config").json()["num_cpus"] == 8  # typed, as htcondor2.param gives it
    assert client.get("/v1/config", {"daemon": "master"}).json()["num_cpus"] == "8"
    assert client.get("/v1/config/full_hostname").json() == client.get("/v1/config/FULL_HOSTNAME").json()


def test_config_value(client: Client) -> None:
    assert client.get("/v1/config/NUM_CPUS").json() == 8
    assert client.get("/v1/config/num_cpus").json() == 8
    assert client.get("/v1/config/ENABLE_RUNTIME_CONFIG").json() is True


def test_config_from_a_daemon(client: Client) -> None:
    assert client.get("/v1/config/NUM_CPUS", {"daemon": "master"}).json() == "8"
    master = client.get("/v1/config", {"daemon": "master"}).json()
    assert "Not defined" not in master.values()
    assert client.get("/v1/config/LOCALNAME", {"daemon": "schedd"}).status in (200, 404)
    for daemon in ("master", "collector", "negotiator", "schedd", "startd"):
        assert client.get("/v1/config/DAEMON_LIST", {"daemon": daemon}).status == 200


def test_config_not_defined_is_404(client: Client) -> None:
    assert client.get("/v1/config/NO_SUCH_KNOB").status == 404
    assert client.get("/v1/config/ACCOUNTANT_HOST", {"daemon": "master"}).status == 404


@pytest.mark.parametrize("daemon", ["shadow", "Master", "", "all", "schedd2"])
def test_bad_daemon_is_400(client: Client, daemon: str) -> None:
    r = client.get("/v1/config", {"daemon": daemon})
    assert r.status == 400 and "daemon" in r.json()["message"]


def test_bad_config_name_is_400(client: Client) -> None:
    assert client.get("/v1/config/a b").status == 400
    assert client.get("/v1/config/x;y").status == 400


# --------------------------------------------------------------------------- the protocol

def test_every_body_ends_with_a_newline(client: Client) -> None:
    for path in ("/v1/jobs/DEFAULT", "/v1/jobs/DEFAULT/2/0/cmd", "/v1/config/NUM_CPUS",
                 "/v1/grouped_status/MyType", "/v1/nope", "/v1/jobs/DEFAULT/x", "/", "/v1"):
        assert client.get(path).body.endswith(b"\n"), path


def test_cors_header_default_and_configured(client: Client, make_client: Any) -> None:
    assert client.get("/v1/jobs/DEFAULT").headers["access-control-allow-origin"] == "*"
    assert client.get("/v1/jobs/nosuch").headers["access-control-allow-origin"] == "*"
    strict = make_client(cors_origins=("https://dash.example.org",))
    r = strict.get("/v1/status", headers={"Origin": "https://dash.example.org"})
    assert r.headers["access-control-allow-origin"] == "https://dash.example.org"
    r = strict.get("/v1/status", headers={"Origin": "https://evil.example.com"})
    assert "access-control-allow-origin" not in r.headers
    none = make_client(cors_origins=())
    assert "access-control-allow-origin" not in none.get("/v1/status").headers


# What a page on another origin may read without Access-Control-Expose-Headers (Fetch standard),
# and headers no script needs.
SAFELISTED = {"cache-control", "content-language", "content-length", "content-type", "expires",
              "last-modified", "pragma", "vary", "date", "server"}


def test_cors_exposes_every_header_a_dashboard_needs(make_client: Any) -> None:
    """A dashboard on another origin follows Link, revalidates with ETag, and reads the rest."""
    class Down(DemoPool):
        def status(self, *args: Any) -> Any:
            raise Unavailable("the collector is down")

    answers = []
    for settings in ({"max_jobs": 3}, {"cors_origins": ("https://dash.example.org",), "max_jobs": 3}):
        client = make_client(**settings)
        origin = {"Origin": "https://dash.example.org"}
        answers += [client.get("/v1/jobs/DEFAULT", {"limit": "2", "typo": "1"}, headers=origin),
                    client.get("/v1/jobs/DEFAULT", headers=origin),
                    client.request("DELETE", "/v1/jobs/DEFAULT", headers=origin),
                    make_client(Down(), **settings).get("/v1/status", headers=origin)]
    seen = set()
    for r in answers:
        exposed = {h.strip().lower() for h in r.headers["access-control-expose-headers"].split(",")}
        sent = {h for h in r.headers if not h.startswith("access-control-")} - SAFELISTED
        assert sent <= exposed, (r, sent - exposed)
        seen |= sent
    assert {"etag", "link", "x-restd-truncated", "warning", "retry-after", "allow"} <= seen
    assert {h.lower() for h in EXPOSED_HEADERS} >= {"www-authenticate"}
    strict = make_client(cors_origins=("https://dash.example.org",))
    r = strict.get("/v1/status", headers={"Origin": "https://evil.example.com"})
    assert "access-control-expose-headers" not in r.headers  # nothing for an origin not allowed


def test_head_has_headers_and_no_body(client: Client) -> None:
    get = client.get("/v1/jobs/DEFAULT")
    head = client.request("HEAD", "/v1/jobs/DEFAULT")
    assert head.status == 200 and head.body == b""
    assert head.headers["content-length"] == get.headers["content-length"]
    assert client.request("HEAD", "/v1/jobs/nosuch").status == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_other_methods_are_405(client: Client, method: str) -> None:
    r = client.request(method, "/v1/jobs/DEFAULT")
    assert r.status == 405
    hint = " (RESTD_ACTIONS is off)"  # /v1/jobs takes POST and PATCH when actions are on
    assert r.json() == {"message": f"{method} is not allowed; this API is read-only{hint}",
                        "status": 405}
    assert "GET" in r.headers["allow"]


def test_options_answers_cors_preflight(client: Client) -> None:
    r = client.request("OPTIONS", "/v1/jobs/DEFAULT", headers={
        "Origin": "https://dash.example.org", "Access-Control-Request-Method": "GET"})
    assert r.status in (200, 204)
    assert "GET" in r.headers["access-control-allow-methods"]
    assert r.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize("path", ["/nope", "/v1/nope", "/v1/jobs", "/v1/jobs/DEFAULT/1/0/cmd/extra",
                                  "/v1/grouped_jobs/DEFAULT", "/v1/grouped_status",
                                  "/v1/status/a/b", "/v1/config/a/b", "/v2/jobs/DEFAULT",
                                  "/healthz/x", "/readyz/x", "/metrics/x", "/favicon.ico/x",
                                  "/v1/openapi.json/x", "/v1/docs/x",
                                  "/index/x", "/v1/index/x"])
def test_unknown_url_is_json_404(client: Client, path: str) -> None:
    r = client.get(path)
    assert r.status == 404, r
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["status"] == 404


def test_unknown_parameters_are_ignored_and_named_in_a_warning(client: Client) -> None:
    """v1 clients add parameters of their own; a typo still shows, in an RFC 7234 Warning."""
    plain = client.get("/v1/jobs/DEFAULT")
    r = client.get("/v1/jobs/DEFAULT", {"constriant": "Owner == \"bob\"", "trackingId": "x1"})
    assert r.status == 200 and r.body == plain.body  # the typo'd constraint did not apply
    assert r.headers["warning"] == ('299 - "ignored unknown query parameters \'constriant\', '
                                    "'trackingId' (this URL takes: projection, constraint, limit, "
                                    'cursor)"')
    assert "warning" not in plain.headers
    r = client.get("/v1/jobs/DEFAULT/2/0", {"constraint": "true"})
    assert r.status == 200 and "'constraint'" in r.headers["warning"]
    assert "(this URL takes: projection)" in r.headers["warning"]
    assert client.get("/v1/jobs/DEFAULT", {"_": "1700000000"}).headers.get("warning") is None
    assert "warning" in client.get("/healthz", {"x": "1"}).headers
    # on an error too, and in ASCII whatever the name (quotes and backslashes escaped)
    r = client.get("/v1/jobs/nosuch", {'b\u00e4d"\\': "1"})
    assert r.status == 404
    assert r.headers["warning"].startswith('299 - "ignored unknown query parameter \'b\\\\xe4d\\"')
    many = client.get("/v1/status", {f"p{i}": "1" for i in range(30)}).headers["warning"]
    assert "'p19' and 10 more (this URL takes" in many and "'p20'" not in many


def test_a_parameter_given_twice_is_400(client: Client) -> None:
    assert client.get("/v1/jobs/DEFAULT", query="projection=owner&projection=cmd").status == 400
    assert client.get("/v1/status", query="query=any&query=startd").status == 400


def test_trailing_slash_is_accepted(client: Client) -> None:
    assert client.get("/v1/jobs/DEFAULT/").json() == client.get("/v1/jobs/DEFAULT").json()


def test_index_pages(client: Client) -> None:
    assert client.get("/").json()["api"] == "/v1"
    assert "jobs" in client.get("/v1").json()["endpoints"]


# ------------------------------------------------------------------------ backend failures

class Failing:
    """A backend whose every call raises the given error."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise self.error
        return fail


@pytest.mark.parametrize("error,status", [
    (Unavailable("Failed communication with collector."), 503),
    (Timeout("too slow"), 504),
    (RuntimeError("something unexpected"), 503),
])
def test_backend_failures_map_to_clear_statuses(make_client: Any, error: RestdError,
                                                status: int) -> None:
    client = make_client(backend=Failing(error))
    for path in ("/v1/jobs/DEFAULT", "/v1/status", "/v1/config", "/v1/grouped_history/DEFAULT/owner"):
        r = client.get(path)
        assert r.status == status, (path, r)
        assert r.json()["status"] == status
        if status == 503:
            assert int(r.headers["retry-after"]) > 0


def test_slow_backend_gives_504(make_client: Any, pool: Any) -> None:
    import threading

    release = threading.Event()

    class Slow:
        def jobs(self, *args: Any) -> Any:
            release.wait(5)
            return pool.jobs(*args)

    client = make_client(backend=Slow(), query_timeout=0.2)
    try:
        r = client.get("/v1/jobs/DEFAULT")
        assert r.status == 504 and "RESTD_QUERY_TIMEOUT" in r.json()["message"]
    finally:
        release.set()


# ------------------------------------------------------- pages, caching, ETags and NDJSON

def walk(client: Client, path: str, params: dict[str, Any]) -> tuple[list[str], int]:
    """Follow Link: rel="next" from the first page to the last; the job ids and page count."""
    from urllib.parse import parse_qsl, unquote, urlsplit

    seen: list[str] = []
    pages = 0
    query: dict[str, Any] = dict(params)
    while True:
        r = client.get(path, query)
        assert r.status == 200, r
        pages += 1
        seen += jobids(r.json())
        link = r.headers.get("link")
        if not link:
            return seen, pages
        url = link.split(";")[0].strip("<>")
        assert unquote(urlsplit(url).path) == path
        query = dict(parse_qsl(urlsplit(url).query))
        assert pages < 100


def test_walking_the_queue_yields_every_job_once_in_id_order(client: Client) -> None:
    everything = jobids(client.get("/v1/jobs/DEFAULT").json())
    for size in (1, 3, 5, 14, 50):
        seen, pages = walk(client, "/v1/jobs/DEFAULT", {"limit": size})
        assert seen == everything
        assert pages == -(-14 // size)  # the last page announces no next one


def test_walking_history_yields_every_record_once_newest_first(client: Client) -> None:
    everything = jobids(client.get("/v1/history/DEFAULT").json())
    for size in (1, 2, 4, 7, 28, 100):
        seen, pages = walk(client, "/v1/history/DEFAULT", {"limit": size})
        assert seen == everything, size
        assert pages == -(-28 // size)


def test_pages_keep_the_constraint_cluster_and_projection(client: Client) -> None:
    seen, pages = walk(client, "/v1/history/DEFAULT", {"limit": 2, "constraint": 'Owner == "condoruser"',
                                                       "projection": "Owner"})
    assert len(seen) == 20 and pages >= 10
    seen, _ = walk(client, "/v1/jobs/schedd2@vm/6", {"limit": 1})
    assert seen == ["6.0", "6.1", "6.2"]
    r = client.get("/v1/jobs/DEFAULT", {"limit": 2, "projection": "Owner"})
    assert [set(j["classad"]) for j in r.json()] == [{"owner"}, {"owner"}]


def test_max_jobs_caps_a_page_and_a_cut_result_says_so(make_client: Any) -> None:
    client = make_client(max_jobs=4)
    r = client.get("/v1/jobs/DEFAULT", {"limit": 100})
    assert len(r.json()) == 4 and "link" in r.headers
    seen, _ = walk(client, "/v1/jobs/DEFAULT", {"limit": 100})
    assert len(seen) == 14
    for path in ("/v1/jobs/DEFAULT", "/v1/history/DEFAULT", "/v1/grouped_jobs/DEFAULT/Owner",
                 "/v1/grouped_history/DEFAULT/Owner"):
        r = client.get(path)
        assert r.headers.get("x-restd-truncated") == "true", path
    assert "x-restd-truncated" not in client.get("/v1/jobs/DEFAULT/17").headers
    assert "x-restd-truncated" not in make_client().get("/v1/jobs/DEFAULT").headers


def test_history_since_a_job(client: Client) -> None:
    assert jobids(client.get("/v1/history/DEFAULT", {"since": "13"}).json()) == ["15.1", "15.0"]
    assert jobids(client.get("/v1/history/DEFAULT", {"since": "13.1"}).json()) == ["15.1", "15.0", "13.3"]
    seen, _ = walk(client, "/v1/history/DEFAULT", {"since": "13.2", "limit": 1})
    assert seen == ["15.1", "15.0", "13.3", "13.1"]


@pytest.mark.parametrize("params", [{"limit": "0"}, {"limit": "-1"}, {"limit": "ten"}, {"cursor": "garbage"},
                                    {"cursor": "eyJ2IjoxLCJzIjoiaGlzdG9yeSIsInQiOjEsIm4iOjB9"},
                                    ])
def test_bad_page_parameters_are_400(client: Client, params: dict[str, str]) -> None:
    r = client.get("/v1/jobs/DEFAULT", params)  # the cursor above is a history cursor
    assert r.status == 400, r


def test_since_on_the_queue_is_ignored_with_a_warning(client: Client) -> None:
    r = client.get("/v1/jobs/DEFAULT", {"since": "13"})
    assert r.status == 200 and "'since'" in r.headers["warning"]


def test_bad_since_on_history_is_400(client: Client) -> None:
    for since in ("ClusterId == 1", "13.x", "1.2.3", ""):
        assert client.get("/v1/history/DEFAULT", {"since": since}).status == 400


def test_ndjson_is_one_job_a_line(client: Client) -> None:
    import json

    r = client.get("/v1/jobs/DEFAULT", headers={"Accept": "application/x-ndjson"})
    assert r.status == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    lines = r.text.splitlines()
    assert [json.loads(line) for line in lines] == client.get("/v1/jobs/DEFAULT").json()
    r = client.get("/v1/status", {"format": "ndjson", "query": "schedd"})
    assert len(r.text.splitlines()) == 2
    assert client.get("/v1/history/DEFAULT", {"format": "ndjson", "limit": 3}).text.count("\n") == 3


def test_every_200_has_an_etag_and_if_none_match_gets_304(client: Client) -> None:
    for path in ("/v1/jobs/DEFAULT", "/v1/jobs/DEFAULT/2/0", "/v1/jobs/DEFAULT/2/0/cmd",
                 "/v1/grouped_status/MyType", "/v1/config/NUM_CPUS", "/v1/history/DEFAULT"):
        r = client.get(path)
        tag = r.headers["etag"]
        assert tag.startswith('"') and tag.endswith('"')
        again = client.get(path, headers={"If-None-Match": tag})
        assert again.status == 304 and again.body == b"" and again.headers["etag"] == tag
        assert client.get(path, headers={"If-None-Match": '"other"'}).status == 200
        assert client.get(path, headers={"If-None-Match": f'"x", W/{tag}'}).status == 304
    assert client.get("/v1/jobs/DEFAULT").headers["etag"] != client.get("/v1/jobs/DEFAULT",
                                                                          {"format": "yaml"}).headers["etag"]


def test_cache_control_follows_the_ttl(make_client: Any) -> None:
    assert make_client(cache_ttl=5).get("/v1/status").headers["cache-control"] == "max-age=5"
    assert make_client(cache_ttl=0).get("/v1/status").headers["cache-control"] == "no-cache"


class Counting:
    """The demo pool, counting upstream calls, each held long enough for requests to pile up.
    Subclasses change what happens around a call in before() and after(). The count is in
    shared memory: every worker process adds to the one the test reads."""

    def __init__(self, pool: Any, delay: float = 0.0) -> None:
        self.pool, self.delay = pool, delay
        self._calls = __import__("multiprocessing").Value("i", 0)

    @property
    def calls(self) -> int:
        return int(self._calls.value)

    def before(self, name: str, args: tuple[Any, ...]) -> None:
        __import__("time").sleep(self.delay)

    def after(self, name: str, args: tuple[Any, ...], found: Any) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.pool, name)  # an AttributeError for what the pool does not have

        def call(*args: Any) -> Any:
            with self._calls.get_lock():
                self._calls.value += 1
            self.before(name, args)
            found = real(*args)
            self.after(name, args, found)
            return found
        return call


def at_once(client: Client, path: str, count: int) -> list[Any]:
    """`count` identical GETs sent together from as many threads; their responses."""
    import threading

    responses: list[Any] = []
    threads = [threading.Thread(target=lambda: responses.append(client.get(path))) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return responses


def test_64_identical_concurrent_requests_make_one_upstream_query(make_client: Any, pool: Any) -> None:

    backend = Counting(pool, delay=0.3)
    client = make_client(backend=backend, cache_ttl=0, threads=64)
    statuses = [r.status for r in at_once(client, "/v1/jobs/DEFAULT", 64)]
    assert statuses == [200] * 64
    assert backend.calls == 1


def test_answers_are_reused_for_the_ttl(make_client: Any, pool: Any) -> None:
    backend = Counting(pool)
    client = make_client(backend=backend, cache_ttl=30)
    first = client.get("/v1/jobs/DEFAULT").body
    assert client.get("/v1/jobs/DEFAULT").body == first
    assert backend.calls == 1
    client.get("/v1/jobs/DEFAULT", {"projection": "Owner"})
    assert backend.calls == 2
    off = make_client(backend=Counting(pool), cache_ttl=0)
    off.get("/v1/status")
    off.get("/v1/status")
    assert off.app.queries.backend.calls == 2  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------- streaming

class FailsAfter(Counting):
    """The demo pool, whose upstream calls fail after the first `good` of them."""

    def __init__(self, pool: Any, good: int) -> None:
        super().__init__(pool)
        self.good = good

    def before(self, name: str, args: tuple[Any, ...]) -> None:
        if self.calls > self.good:
            raise Unavailable("the schedd went away")


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    from condor_restd import streams

    from . import conftest

    monkeypatch.setattr(streams, "STREAM_FIRST_BATCH", 2)
    monkeypatch.setattr(streams, "QUEUE_FIRST_WINDOW", 2)
    monkeypatch.setitem(conftest.CLIENT_SETTINGS, "stream_batch", 3)  # RESTD_STREAM_BATCH
    monkeypatch.setattr(streams, "STREAM_ABOVE", 5)


def test_big_history_streams_in_batches_with_the_same_answer(make_client: Any, pool: Any,
                                                             small_batches: None) -> None:
    import yaml

    expected = make_client().get("/v1/history/DEFAULT").json()
    backend = Counting(pool)
    client = make_client(backend=backend, max_jobs=0)
    r = client.get("/v1/history/DEFAULT")
    assert r.status == 200 and r.json() == expected
    # the id probe (with no constraint, the newest record of all); the first batch (2 records:
    # its ids, then its ads); what was written since the stream began, the ids of the next four
    # batches and, meanwhile, of all the rest; then nine windows of three records
    assert backend.calls == 1 + 2 + 3 + 9
    assert r.headers["etag"].startswith('W/"')
    assert client.get("/v1/history/DEFAULT", headers={"If-None-Match": r.headers["etag"]}).status == 304
    lines = client.get("/v1/history/DEFAULT", {"format": "ndjson"}).text.splitlines()
    assert len(lines) == 28
    assert yaml.safe_load(client.get("/v1/history/DEFAULT", {"format": "yaml"}).text) == expected
    assert client.get("/v1/history/DEFAULT", {"constraint": "false"}).json() == []
    constrained = client.get("/v1/history/DEFAULT", {"constraint": 'Owner == "bob"', "projection": "Owner"})
    assert [j["classad"] for j in constrained.json()] == [{"owner": "bob"}] * 4


def test_history_written_during_a_stream_is_left_out(make_client: Any, small_batches: None) -> None:
    from condor_restd.demo import DemoPool

    pool = DemoPool()
    expected = make_client(backend=pool).get("/v1/history/DEFAULT").json()
    newest = pool.histories["vm"][0]

    class Growing(Counting):
        def before(self, name: str, args: tuple[Any, ...]) -> None:
            if self.calls == 3:  # after the first batch: two jobs finish
                for proc in (0, 1):
                    ad = newest.__class__(repr(newest))
                    ad["ClusterId"], ad["ProcId"] = 999_999, proc
                    self.pool.histories["vm"].insert(0, ad)

    # in the request's thread: the jobs finish in the pool the next calls read
    r = make_client(backend=Growing(pool), max_jobs=0, isolate=False).get("/v1/history/DEFAULT")
    assert jobids(r.json()) == jobids(expected)


@pytest.mark.parametrize("max_jobs", [0, 100])
def test_a_history_stream_gets_a_new_etag_when_old_records_rotate_away(
        make_client: Any, small_batches: None, max_jobs: int) -> None:
    from condor_restd.demo import DemoPool

    pool = DemoPool()
    client = make_client(backend=pool, max_jobs=max_jobs)
    params = {"constraint": 'Owner == "bob"'}
    first = client.get("/v1/history/DEFAULT", params)
    assert first.headers["etag"].startswith('W/"')
    unchanged = {"If-None-Match": first.headers["etag"]}
    assert client.get("/v1/history/DEFAULT", params, headers=unchanged).status == 304
    # alice's job finishes and the schedd rotates its history: bob's oldest record goes
    records = pool.histories["vm"]
    oldest_bob = max(i for i, ad in enumerate(records) if ad.get("Owner") == "bob")
    newest = records[0].__class__(repr(records[0]))
    newest["ClusterId"], newest["ProcId"], newest["Owner"] = 999_999, 0, "alice"
    newest["GlobalJobId"] = "vm#999999.0#1796000000"
    pool.histories["vm"] = [newest, *records[:oldest_bob]]
    client.app.queries.pool.recycle()  # workers forked from now on see the rotated history
    again = client.get("/v1/history/DEFAULT", params, headers=unchanged)
    assert again.status == 200 and len(again.json()) == len(first.json()) - 1


def test_streamed_history_is_still_capped_and_says_so(make_client: Any, small_batches: None) -> None:
    client = make_client(max_jobs=10)
    r = client.get("/v1/history/DEFAULT")
    assert len(r.json()) == 10 and r.headers["x-restd-truncated"] == "true"
    assert jobids(r.json()) == jobids(make_client().get("/v1/history/DEFAULT").json())[:10]


def test_an_upstream_failure_mid_stream_ends_the_body_short(make_client: Any, pool: Any,
                                                            small_batches: None) -> None:
    client = make_client(backend=FailsAfter(pool, 3), max_jobs=0)  # fails after the first batch
    r = client.get("/v1/history/DEFAULT")
    assert r.status == 200 and r.text.startswith("[\n") and not r.text.rstrip().endswith("]")


REPRESENTATIONS = {"json": "application/json", "yaml": "application/yaml",
                   "ndjson": "application/x-ndjson"}


@pytest.mark.parametrize("max_jobs,path", [
    (0, "/v1/history/DEFAULT"),  # streamed: a weak tag from the daemon
    (0, "/v1/jobs/DEFAULT/2"),  # a queue of few jobs: one query, a strong tag (a streamed one has none)
    (10000, "/v1/jobs/DEFAULT/2"), (10000, "/v1/history/DEFAULT"), (10000, "/v1/status"),
    (10000, "/v1/jobs/DEFAULT/2/0"),
])
def test_each_representation_has_its_own_etag(make_client: Any, small_batches: None,
                                              max_jobs: int, path: str) -> None:
    client = make_client(max_jobs=max_jobs)
    offered = REPRESENTATIONS if path.count("/") < 5 else {"json": "application/json",
                                                           "yaml": "application/yaml"}
    tags = {}
    for fmt, media in offered.items():
        for how in ({"params": {"format": fmt}}, {"headers": {"Accept": media}}):
            r = client.get(path, **how)
            assert r.status == 200 and r.headers["content-type"].startswith(media), (fmt, r)
            assert "Accept" in r.headers["vary"]
            assert tags.setdefault(fmt, r.headers["etag"]) == r.headers["etag"]
    assert len(set(tags.values())) == len(tags), tags
    for held, tag in tags.items():
        for fmt, media in offered.items():
            r = client.get(path, headers={"Accept": media, "If-None-Match": tag})
            assert r.status == (304 if fmt == held else 200), (held, fmt, r)
            assert "Accept" in r.headers["vary"] and r.headers["etag"] == tags[fmt]
            if fmt != held:
                assert r.body and r.headers["content-type"].startswith(media)


def test_the_front_page_varies_with_accept_as_the_data_does(client: Client) -> None:
    # one URL, two representations: a cache must not give the HTML page to a JSON client
    page = client.get("/", headers={"Accept": "text/html"})
    data = client.get("/", headers={"Accept": "application/json"})
    assert page.headers["content-type"].startswith("text/html")
    assert "Accept" in page.headers["vary"] and "Accept" in data.headers["vary"]
    assert "vary" not in client.get("/v1/docs").headers  # HTML only: nothing to vary


class Windows(Counting):
    """Counting, and keeping what each upstream call asked for and how many ads it returned."""

    def __init__(self, pool: Any) -> None:
        super().__init__(pool)
        self.asked: list[tuple[str, str, list[str], int]] = []

    def after(self, name: str, args: tuple[Any, ...], found: Any) -> None:
        self.asked.append((name, args[1], list(args[2]), len(found)))


def test_a_big_queue_comes_in_id_windows_with_the_same_answer(make_client: Any, pool: Any,
                                                             small_batches: None) -> None:
    import yaml

    plain = make_client()
    expected = plain.get("/v1/jobs/DEFAULT")
    backend = Windows(pool)
    client = make_client(backend=backend, max_jobs=0, isolate=False)  # it keeps what was asked
    r = client.get("/v1/jobs/DEFAULT")
    assert r.status == 200 and r.body == expected.body
    assert "etag" not in r.headers  # streamed: nothing cheap stands for a changing queue
    count = len(r.json())
    # the ids of every job (small ads), then one window of at most RESTD_STREAM_BATCH (3) full ads each
    assert backend.asked[0][2] == ["ClusterId", "ProcId"] and backend.asked[0][3] == count
    windows = backend.asked[1:]
    assert [n for _, _, _, n in windows] == expected_windows(count, 3)
    assert all(ask == [] for _, _, ask, _ in windows)
    assert client.get("/v1/jobs/DEFAULT", headers={"If-None-Match": "*"}).status == 200  # never a 304
    for fmt in ("ndjson", "yaml"):
        assert client.get("/v1/jobs/DEFAULT", {"format": fmt}).body == \
            plain.get("/v1/jobs/DEFAULT", {"format": fmt}).body
    assert yaml.safe_load(client.get("/v1/jobs/DEFAULT", {"format": "yaml"}).text) == expected.json()
    assert client.get("/v1/jobs/DEFAULT", {"constraint": "false"}).body == b"[]\n"
    params = {"constraint": 'JobStatus == 2', "projection": "Owner,JobStatus"}
    assert client.get("/v1/jobs/DEFAULT", params).json() == plain.get("/v1/jobs/DEFAULT", params).json()


@pytest.mark.parametrize("params", [{}, {"projection": "Owner,JobStatus"}])
def test_a_big_queue_comes_out_in_id_order_whatever_order_the_schedd_sends(
        make_client: Any, small_batches: None, monkeypatch: pytest.MonkeyPatch,
        params: dict[str, str]) -> None:
    import random

    from condor_restd.demo import DemoPool

    expected = make_client().get("/v1/jobs/DEFAULT", params).body
    scrambled = DemoPool()
    random.Random(6).shuffle(scrambled.queues["vm"])
    r = make_client(backend=scrambled, max_jobs=0, stream_batch=7).get("/v1/jobs/DEFAULT", params)
    assert r.status == 200 and r.body == expected


@pytest.mark.parametrize("batch", [2, 5, 100])
def test_restd_stream_batch_sets_the_window(make_client: Any, pool: Any, small_batches: None,
                                            batch: int) -> None:
    backend = Windows(pool)
    r = make_client(backend=backend, max_jobs=0, stream_batch=batch, isolate=False).get("/v1/jobs/DEFAULT")
    assert r.body == make_client().get("/v1/jobs/DEFAULT").body
    windows = [n for _, _, _, n in backend.asked[1:]]
    assert windows == expected_windows(len(r.json()), batch)


def expected_windows(jobs: int, batch: int) -> list[int]:
    """A streamed queue's windows: a small first one (a quick first byte), then `batch` each."""
    from condor_restd import streams

    sizes, size = [], min(streams.QUEUE_FIRST_WINDOW, batch)
    while jobs > 0:
        sizes.append(min(size, jobs))
        jobs, size = jobs - size, batch
    return sizes


def test_an_uncapped_queue_of_few_jobs_takes_one_query_after_the_ids(make_client: Any, pool: Any) -> None:
    backend = Windows(pool)
    r = make_client(backend=backend, max_jobs=0, isolate=False).get("/v1/jobs/DEFAULT")
    assert r.body == make_client().get("/v1/jobs/DEFAULT").body
    assert [(ask, n) for _, _, ask, n in backend.asked] == [(["ClusterId", "ProcId"], len(r.json())),
                                                            ([], len(r.json()))]


def test_an_uncapped_queue_with_no_match_asks_for_the_ids_alone(make_client: Any, pool: Any) -> None:
    backend = Windows(pool)
    r = make_client(backend=backend, max_jobs=0, isolate=False).get("/v1/jobs/DEFAULT", {"constraint": "false"})
    assert r.status == 200 and r.body == b"[]\n"
    assert [(ask, n) for _, _, ask, n in backend.asked] == [(["ClusterId", "ProcId"], 0)]


def test_identical_big_queue_requests_share_the_id_query(make_client: Any, pool: Any,
                                                        small_batches: None) -> None:

    class SlowIds(Counting):  # only the id query is slow: the four requests all meet on it
        def before(self, name: str, args: tuple[Any, ...]) -> None:
            if list(args[2]) == ["ClusterId", "ProcId"]:
                __import__("time").sleep(1.0)

    backend = SlowIds(pool)
    client = make_client(backend=backend, max_jobs=0, threads=8)
    bodies = [r.body for r in at_once(client, "/v1/jobs/DEFAULT", 4)]
    windows = len(expected_windows(len(__import__("json").loads(bodies[0])), 3))
    assert len(set(bodies)) == 1 and len(bodies) == 4
    assert backend.calls == 1 + 4 * windows  # one id query; each request sends its own windows


def test_a_streamed_queue_is_the_same_answer_in_every_format(make_client: Any, small_batches: None) -> None:
    plain, streamed = make_client(), make_client(max_jobs=0)
    for fmt in ("json", "ndjson", "yaml"):
        r = streamed.get("/v1/jobs/DEFAULT", {"format": fmt})
        assert r.body == plain.get("/v1/jobs/DEFAULT", {"format": fmt}).body and "etag" not in r.headers


def test_a_streamed_queue_is_still_capped_and_says_so(make_client: Any, small_batches: None) -> None:
    r = make_client(max_jobs=6).get("/v1/jobs/DEFAULT")
    assert len(r.json()) == 6 and r.headers["x-restd-truncated"] == "true"
    assert jobids(r.json()) == jobids(make_client().get("/v1/jobs/DEFAULT").json())[:6]


def test_a_schedd_failure_in_a_streamed_queue_ends_the_body_short(make_client: Any, pool: Any,
                                                                   small_batches: None) -> None:
    r = make_client(backend=FailsAfter(pool, 2), max_jobs=0).get("/v1/jobs/DEFAULT")
    assert r.status == 200 and r.text.startswith("[\n") and not r.text.rstrip().endswith("]")
    assert make_client(backend=FailsAfter(pool, 0), max_jobs=0).get("/v1/jobs/DEFAULT").status == 503


def test_hostile_cursors_and_since_values_are_400(client: Client) -> None:
    import base64

    deep = base64.urlsafe_b64encode(b"[" * 2000).decode().rstrip("=")
    assert client.get("/v1/jobs/DEFAULT", {"cursor": deep}).status == 400
    assert client.get("/v1/jobs/DEFAULT", {"cursor": "A" * 5000}).status == 400
    assert client.get("/v1/history/DEFAULT", {"since": "13\n"}).status == 400


def test_the_next_page_keeps_the_format(client: Client) -> None:
    r = client.get("/v1/jobs/DEFAULT", {"format": "ndjson", "limit": 2})
    assert "format=ndjson" in r.headers["link"]
    assert all(line.startswith('{"jobid": ') and "  " not in line for line in r.text.splitlines())


def test_health_probes_are_never_cached(make_client: Any) -> None:
    client = make_client(cache_ttl=30)
    for path in ("/healthz", "/readyz"):
        assert client.get(path).headers["cache-control"] == "no-store"


def test_a_history_walk_survives_new_records_and_any_time_order(make_client: Any) -> None:
    """History has no order but the file's: records written during a walk, or out of
    EnteredCurrentStatus order, neither repeat nor go missing."""
    from condor_restd import condor
    from condor_restd.demo import DemoPool

    history = list(DemoPool().histories["vm"])
    shuffled = DemoPool(histories={"vm": history, "schedd2@vm": []})
    for n, ad in enumerate(history):  # times that go up and down along the file
        ad["EnteredCurrentStatus"] = 1_800_000_000 + (n * 7919) % 13
    client = make_client(backend=shuffled)
    expected = jobids(client.get("/v1/history/DEFAULT").json())
    first = client.get("/v1/history/DEFAULT", {"limit": 5})
    seen = jobids(first.json())
    for cluster in (901, 902, 903):  # three jobs leave the queue while the client reads
        fresh = condor.parse_ads(f"ClusterId = {cluster}\nProcId = 0\nOwner = \"bob\"\n")[0]
        history.insert(0, fresh)
    from urllib.parse import parse_qsl, urlsplit

    link = first.headers.get("link")
    while link:
        r = client.get("/v1/history/DEFAULT", dict(parse_qsl(urlsplit(link.split(";")[0].strip("<>")).query)))
        seen += jobids(r.json())
        link = r.headers.get("link")
    assert seen == expected


# ------------------------------------------------------- history read from the local file

@pytest.fixture
def filed(tmp_path: Any, make_client: Any) -> Any:
    """A backend whose default schedd's history file is readable here, as on the schedd's host."""
    from condor_restd import condor
    from condor_restd.demo import DemoPool

    from .test_condor import write_history

    pool = DemoPool()
    path = write_history(tmp_path, list(pool.histories["vm"]))

    class Local(Counting):
        def history_file(self, schedd: str | None) -> Any:
            return condor.HistoryFile(str(path)) if schedd is None else None

    backend = Local(pool)
    return backend, (lambda **kw: make_client(backend=backend, **kw))


def test_pages_from_the_history_file_match_the_schedd(filed: Any, client: Client) -> None:
    backend, make = filed
    expected = jobids(client.get("/v1/history/DEFAULT").json())
    for size in (1, 5, 28):
        seen, pages = walk(make(), "/v1/history/DEFAULT", {"limit": size})
        assert seen == expected and pages == -(-28 // size)
    assert backend.calls == 0  # the schedd was never asked
    seen, _ = walk(make(), "/v1/history/DEFAULT", {"limit": 2, "constraint": 'Owner == "bob"',
                                                   "projection": "Owner", "since": "13.2"})
    assert seen == [j for j in jobids(client.get("/v1/history/DEFAULT", {"constraint": 'Owner == "bob"',
                                                                          "since": "13.2"}).json())]
    r = make().get("/v1/history/DEFAULT", {"limit": 2, "projection": "Owner"})
    assert [set(j["classad"]) for j in r.json()] == [{"owner"}, {"owner"}]


def test_a_stream_from_the_history_file(filed: Any, client: Client, small_batches: None) -> None:
    backend, make = filed
    expected = client.get("/v1/history/DEFAULT").json()
    app = make(max_jobs=0)
    r = app.get("/v1/history/DEFAULT")
    assert r.json() == expected and backend.calls == 0
    assert r.headers["etag"].startswith('W/"')
    assert app.get("/v1/history/DEFAULT", headers={"If-None-Match": r.headers["etag"]}).status == 304
    capped = make(max_jobs=10).get("/v1/history/DEFAULT")
    assert len(capped.json()) == 10 and capped.headers["x-restd-truncated"] == "true"
    assert make().get("/v1/history/schedd2@vm", {"limit": 3}).status == 200  # no file: the schedd
    assert backend.calls >= 1


def cursor_of(data: dict[str, Any]) -> str:
    import base64
    import json

    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def next_cursor(r: Any) -> dict[str, Any]:
    import base64
    import json
    from urllib.parse import parse_qs, urlsplit

    cursor = parse_qs(urlsplit(r.headers["link"].split(";")[0].strip("<>")).query)["cursor"][0]
    return dict(json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))))


FORGED = [{"v": 1, "s": "history", "a": "13.0", "n": -1}, {"v": 1, "s": "history", "a": "13.0", "n": 2**41},
          {"v": 1, "s": "history", "a": "13.0", "n": "1"}, {"v": 1, "s": "history", "a": "13.0", "n": True},
          {"v": 1, "s": "history", "a": 13, "n": 1}, {"v": 1, "s": "history", "a": "13.0", "n": 1, "x": 0},
          {"v": 1, "s": "history", "a": "x", "n": 1}, {"v": 1, "s": "history", "n": 1},
          {"v": 1, "s": "history", "f": "history", "o": -5}, {"v": 1, "s": "history", "f": "history", "o": "0"},
          {"v": 1, "s": "history", "f": "../etc/passwd", "o": 0}, {"v": 1, "s": "history", "f": [], "o": 0},
          {"v": 1, "s": "history", "f": "history", "o": 0, "a": "1.0"}, {"v": 1, "s": "jobs", "after": [1]},
          {"v": 2, "s": "history", "a": "13.0", "n": 1}, {"v": 1, "s": "jobs", "after": [1, -1]},
          {"v": 1, "s": "jobs", "after": [1, 0, 0]}, {"v": 1, "s": "jobs", "after": "1.0"}, [1, 2], "x", None]


@pytest.mark.parametrize("forged", FORGED)
def test_a_forged_cursor_is_a_clean_400(filed: Any, client: Client, forged: Any) -> None:
    for app in (client, filed[1]()):
        for path in ("/v1/history/DEFAULT", "/v1/jobs/DEFAULT", "/v1/history/schedd2@vm"):
            r = app.get(path, {"cursor": cursor_of(forged), "limit": 2})
            assert r.status == 400 or (r.status == 200 and r.json() == []), (path, forged, r)


def test_a_cursor_used_elsewhere_is_refused_or_empty(filed: Any, client: Client) -> None:
    """A file cursor where the schedd is asked, a schedd cursor where the file is read, a queue
    cursor on history, one schedd's cursor on another: a 400, or an empty page; never a 5xx."""
    file_app = filed[1]()
    from_file = next_cursor(file_app.get("/v1/history/DEFAULT", {"limit": 2}))
    from_schedd = next_cursor(client.get("/v1/history/DEFAULT", {"limit": 2}))
    from_other = next_cursor(client.get("/v1/history/schedd2@vm", {"limit": 2}))
    from_queue = next_cursor(client.get("/v1/jobs/DEFAULT", {"limit": 2}))
    assert "f" in from_file and "a" in from_schedd
    cases = [(client, "/v1/history/DEFAULT", from_file, 400),  # no file is read here
             (client, "/v1/history/schedd2@vm", from_file, 400),
             (file_app, "/v1/history/schedd2@vm", from_file, 400),  # schedd2's history is not a file here
             (client, "/v1/history/DEFAULT", from_queue, 400), (client, "/v1/jobs/DEFAULT", from_schedd, 400),
             (client, "/v1/history/schedd2@vm", from_schedd, 200),  # anchored at no job of schedd2's
             (client, "/v1/history/DEFAULT", from_other, 200)]
    for app, path, cursor, status in cases:
        r = app.get(path, {"cursor": cursor_of(cursor), "limit": 2})
        assert r.status == status, (path, cursor, r)
        if status == 200:
            assert r.json() == [] and "link" not in r.headers, (path, cursor)
    # a schedd's cursor where the file is read is served (by the schedd), as it was given
    r = file_app.get("/v1/history/DEFAULT", {"cursor": cursor_of(from_schedd), "limit": 2})
    assert r.status == 200
    assert jobids(r.json()) == jobids(client.get("/v1/history/DEFAULT", {"cursor": cursor_of(from_schedd),
                                                                          "limit": 2}).json())


def test_a_file_cursor_past_the_end_is_400_at_once(filed: Any, tmp_path: Any) -> None:
    app = filed[1]()
    size = (tmp_path / "history").stat().st_size
    for offset in (size, size + 1, 10**12, 2**40 - 1):
        started = time.monotonic()
        r = app.get("/v1/history/DEFAULT", {"cursor": cursor_of({"v": 1, "s": "history", "f": "history",
                                                                  "o": offset}), "limit": 5})
        assert r.status == 400 and time.monotonic() - started < 1, (offset, r)
    for offset in (1, 7, size // 2):  # not where a record starts
        r = app.get("/v1/history/DEFAULT", {"cursor": cursor_of({"v": 1, "s": "history", "f": "history",
                                                                  "o": offset}), "limit": 5})
        assert r.status == 400, (offset, r)


def test_a_slow_history_file_read_is_504_and_its_worker_killed(tmp_path: Any, make_client: Any) -> None:
    """Reading the history file runs in a worker: one past RESTD_QUERY_TIMEOUT is a 504, and the
    worker is killed."""
    import os

    from .test_condor import write_history

    path = write_history(tmp_path, list(DemoPool().histories["vm"]))

    class Slow(condor.HistoryFile):
        def records(self, before: Any = None) -> Any:
            time.sleep(30)
            yield from super().records(before)

    class Local(DemoPool):
        def history_file(self, schedd: str | None) -> Any:
            return Slow(str(path)) if schedd is None else None

    app = make_client(backend=Local(), query_timeout=0.5, query_workers=1)
    assert app.get("/v1/status").status == 200
    (worker,) = app.app.queries.pool.pids()  # type: ignore[attr-defined]
    started = time.monotonic()
    r = app.get("/v1/history/DEFAULT", {"limit": 3})
    assert r.status == 504 and time.monotonic() - started < 5
    deadline, alive = time.monotonic() + 5, True
    while alive and time.monotonic() < deadline:  # SIGKILL sent: gone in a moment
        try:
            alive = not os.waitpid(worker, os.WNOHANG)[0]
        except ChildProcessError:
            alive = False  # reaped by the pool
        time.sleep(0.02)
    assert not alive
    assert app.get("/v1/status").status == 200  # a fresh worker


def test_without_the_compiled_helper_every_answer_is_the_same(make_client: Any,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from condor_restd import encoding

    urls = [("/v1/jobs/DEFAULT", {}), ("/v1/history/DEFAULT", {}), ("/v1/jobs/DEFAULT", {"limit": 3}),
            ("/v1/jobs/DEFAULT", {"format": "ndjson"}), ("/v1/history/DEFAULT", {"format": "yaml"}),
            ("/v1/grouped_jobs/DEFAULT/Owner", {}), ("/v1/jobs/DEFAULT", {"projection": "Owner"}),
            ("/v1/status", {"query": "schedd"})]
    compiled = [(r.body, r.headers["etag"]) for r in (make_client().get(u, p) for u, p in urls)]
    monkeypatch.setattr(encoding, "_speedups", None)  # workers forked from now on lack it too
    assert [(r.body, r.headers["etag"]) for r in (make_client().get(u, p) for u, p in urls)] == compiled


def test_big_answers_over_a_real_server(pool: Any, small_batches: None) -> None:
    """Through cheroot: a big queue answer and a history stream go out chunked, a small answer
    with a Content-Length; all are the bytes the in-process application gives."""
    import http.client

    from condor_restd import daemon
    from condor_restd.settings import Settings
    from condor_restd.web import make_app

    settings = Settings(cache_ttl=0, max_jobs=0, port=0, threads=4)  # any free port
    app = make_app(settings, pool)
    listener = daemon.Listener(settings, app)
    listener.start()
    port = listener.address[1]
    try:
        for path, chunked in (("/v1/jobs/DEFAULT", True), ("/v1/history/DEFAULT", True),
                              ("/v1/jobs/DEFAULT/2", False)):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", path)
            r = conn.getresponse()
            body = r.read()
            assert r.status == 200 and body == Client(app).get(path).body
            assert (r.getheader("Transfer-Encoding") == "chunked") == chunked
            assert chunked or int(r.getheader("Content-Length") or -1) == len(body)
            conn.close()
    finally:
        listener.server.stop()
        app.queries.close()


# ------------------------------------------------------------------------ read your writes

class GrowingPool(DemoPool):
    """The demo pool, counting queue queries; submit() adds a job as a schedd would."""

    def __init__(self) -> None:
        super().__init__()
        self.queries = 0

    def jobs(self, *args: Any, **kwargs: Any) -> Any:
        self.queries += 1
        return super().jobs(*args, **kwargs)

    def submit(self) -> None:
        ad = condor.parse_ads(self.queues["vm"][0].printOld())[0]
        ad["ClusterId"] = 99
        ad["ProcId"] = 0
        self.queues["vm"].insert(0, ad)


@pytest.mark.parametrize("header", [{"Cache-Control": "no-cache"}, {"Pragma": "no-cache"},
                                    {"Cache-Control": "max-age=0, No-Cache"}])
def test_no_cache_from_the_client_asks_the_pool_afresh(make_client: Any,
                                                       header: dict[str, str]) -> None:
    """A client that submits a job and asks at once sees it, whatever RESTD_CACHE_TTL is."""
    pool = GrowingPool()
    client = make_client(pool, cache_ttl=60, isolate=False)  # the job is submitted here
    ids = lambda r: [job["jobid"] for job in r.json()]  # noqa: E731
    before = client.get("/v1/jobs/DEFAULT", {"projection": "Owner"})
    pool.submit()
    assert ids(client.get("/v1/jobs/DEFAULT", {"projection": "Owner"})) == ids(before)  # kept
    assert pool.queries == 1
    fresh = client.get("/v1/jobs/DEFAULT", {"projection": "Owner"}, headers=header)
    assert "99.0" in ids(fresh) and pool.queries == 2
    # what it fetched is kept for the others
    assert "99.0" in ids(client.get("/v1/jobs/DEFAULT", {"projection": "Owner"}))
    assert pool.queries == 2
    assert client.get("/v1/jobs/DEFAULT/99/0", headers=header).status == 200


# ------------------------------------------------------------------------ under a path prefix

def next_link(r: Any) -> str:
    return str(r.headers["link"]).split(">")[0].lstrip("<")


@pytest.mark.parametrize(("prefix", "expected"), [
    ("/restd", "/restd"), ("/htcondor/restd/", "/htcondor/restd"), ("/a_b-c.d~e", "/a_b-c.d~e"),
    ("", ""), ("/", ""),
    # not a sane path: ignored
    ("//evil.example.com", ""), ("/a/../b", ""), ("/a/./b", ""), ("restd", ""),
    ("https://evil.example.com/x", ""), ("/a b", ""), ("/a?b=c", ""), ("/a,/b", ""), ("/a//b", ""),
    ("/" + "x" * 300, ""),
])
def test_links_honour_a_sane_forwarded_prefix(client: Client, prefix: str, expected: str) -> None:
    """A proxy that mounts the API under a path says so; Link headers then lead back through it."""
    r = client.get("/v1/jobs/DEFAULT", {"limit": "2"}, headers={"X-Forwarded-Prefix": prefix})
    assert r.status == 200
    link = next_link(r)
    assert link.startswith(expected + "/v1/jobs/DEFAULT?"), link
    path, _, query = link[len(expected):].partition("?")
    follow = client.get(path, query=query)
    assert follow.status == 200 and "link" in follow.headers


def test_links_and_the_openapi_servers_follow_the_wsgi_mount_point(client: Client) -> None:
    mounted = {"SCRIPT_NAME": "/restd"}
    r = client.get("/v1/jobs/DEFAULT", {"limit": "2"}, environ=mounted)
    assert r.status == 200 and next_link(r).startswith("/restd/v1/jobs/DEFAULT?")
    r = client.get("/v1/jobs/DEFAULT", {"limit": "2"}, environ=mounted,
                   headers={"X-Forwarded-Prefix": "/pool"})
    assert next_link(r).startswith("/pool/restd/v1/jobs/DEFAULT?")
    document = client.get("/v1/openapi.json", environ=mounted).json()
    assert [s["url"] for s in document["servers"]] == ["/restd"]
    document = client.get("/v1/openapi.yaml", headers={"X-Forwarded-Prefix": "/p"})
    assert "servers:\n- url: /p\n" in document.text
    assert "servers" not in client.get("/v1/openapi.json").json()  # at the root: the default "/"
    assert client.get("/v1/status", environ=mounted).status == 200
