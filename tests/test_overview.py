"""/v1/summary and the pool figures in /metrics: counted from collector ads, checked against the job lists."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import classad2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from condor_restd import overview
from condor_restd.demo import DemoPool
from condor_restd.errors import Unavailable

from .conftest import Client
from .test_auth import TOKEN_SETTINGS, IssuerMock, bearer, make_token

STATUS_WORDS = {1: "idle", 2: "running", 3: "removed", 4: "completed", 5: "held"}


class Recording(DemoPool):
    """The demo pool, noting every query type it is asked."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls: list[str] = []

    def jobs(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append("jobs")
        return super().jobs(*args, **kwargs)

    def status(self, ad_type: str, constraint: str, projection: Any) -> Any:
        self.calls.append(f"status:{ad_type}")
        return super().status(ad_type, constraint, projection)


class NoCollector(DemoPool):
    def status(self, *args: Any, **kwargs: Any) -> Any:
        raise Unavailable("cannot reach the collector at cm.example.org")


class NoSchedds(DemoPool):
    def jobs(self, *args: Any, **kwargs: Any) -> Any:
        raise Unavailable("cannot reach the schedd")


def scrape(client: Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = client.get("/metrics")
    assert r.status == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def pool_jobs(samples: dict[Any, float], **labels: str) -> float:
    return sum(v for (name, labs), v in samples.items() if name == "condor_restd_pool_jobs"
               and all(dict(labs).get(k) == x for k, x in labels.items()))


# ------------------------------------------------------------------------- /v1/summary

def test_summary_counts_equal_the_job_lists_of_the_demo_pool(client: Client) -> None:
    """The demo's collector ads were captured with its queues: the counts from the ads (the
    documented source) and the counts of the job lists agree, schedd by schedd and user by user."""
    summary = client.get("/v1/summary").json()
    assert [s["name"] for s in summary["jobs"]["schedds"]] == ["schedd2@vm", "vm"]
    for schedd in summary["jobs"]["schedds"]:
        jobs = client.get(f"/v1/jobs/{schedd['name']}", {"projection": "User,JobStatus"}).json()
        by_user = Counter((j["classad"]["user"], STATUS_WORDS[j["classad"]["jobstatus"]]) for j in jobs)
        by_status = Counter(STATUS_WORDS[j["classad"]["jobstatus"]] for j in jobs)
        for status in ("idle", "running", "held", "removed"):
            assert schedd[status] == by_status[status], (schedd["name"], status)
        assert schedd["total"] == len(jobs)
        assert {o["owner"] for o in schedd["owners"]} == {user for user, _ in by_user}
        for owner in schedd["owners"]:
            for status in ("idle", "running", "held"):
                assert owner[status] == by_user[(owner["owner"], status)], (schedd["name"], owner, status)
            # the constraint given for the owner finds exactly the owner's jobs
            theirs = client.get(f"/v1/jobs/{schedd['name']}", {"constraint": owner["constraint"],
                                                                "projection": "User"}).json()
            assert len(theirs) == owner["idle"] + owner["running"] + owner["held"]
    assert summary["jobs"]["totals"] == {"idle": 12, "running": 6, "held": 8, "removed": 0, "total": 26}


def test_summary_reads_no_job_list(make_client: Callable[..., Client]) -> None:
    pool = Recording()
    assert make_client(pool, isolate=False).get("/v1/summary").status == 200
    assert "jobs" not in pool.calls
    assert sorted(pool.calls) == ["status:collector", "status:schedd", "status:startd", "status:submitter"]


def test_summary_names_the_pool_and_the_statuses(client: Client) -> None:
    summary = client.get("/v1/summary").json()
    assert summary["pool"] == {"name": "Personal Condor at 127.0.0.1@vm", "version": "25.14.0"}
    assert summary["source"] == "collector" and summary["scope"] == "all"
    assert {"code": 5, "name": "held"} in summary["job_statuses"]


def test_summary_slots_say_what_partitionable_slots_have_left(client: Client) -> None:
    summary = client.get("/v1/summary").json()
    assert summary["slots"] == {"total": 7, "by_state": {"Claimed": 6, "Unclaimed": 1},
                                "by_type": {"Dynamic": 6, "Partitionable": 1}, "partitionable": 1}
    assert summary["resources"]["cpus"] == {"used": 6, "total": 8, "partitionable_free": 2}
    assert summary["resources"]["memory"] == {"used": 1152, "total": 8192, "partitionable_free": 7040}
    assert summary["cores_by_state"] == {"Claimed": 6, "Unclaimed": 2}
    [machine] = summary["machines"]
    assert machine["machine"] == "vm" and machine["slots"] == 7 and machine["cpus"]["used"] == 6


def test_summary_is_cached_by_etag_and_answers_yaml(client: Client) -> None:
    first = client.get("/v1/summary")
    assert first.status == 200 and first.headers["etag"]
    again = client.get("/v1/summary", headers={"If-None-Match": first.headers["etag"]})
    assert again.status == 304 and again.body == b""
    assert client.get("/v1/summary", {"format": "yaml"}).text.startswith("pool:")
    assert "'x'" in client.get("/v1/summary", {"x": "1"}).headers["warning"]  # ignored, and named


def test_summary_when_the_collector_is_down(make_client: Callable[..., Client]) -> None:
    r = make_client(NoCollector()).get("/v1/summary")
    assert r.status == 503 and "cm.example.org" in r.json()["message"]


@pytest.fixture
def tokens(make_client: Callable[..., Client], requests_mock: Any) -> Client:
    IssuerMock(requests_mock)
    return make_client(**TOKEN_SETTINGS)


def test_with_own_scope_a_user_gets_their_own_counts(tokens: Client) -> None:
    assert tokens.get("/v1/summary").status == 401
    bob = tokens.get("/v1/summary", headers=bearer(make_token(sub="bob"))).json()
    assert bob["scope"] == "own"
    owners = {o["owner"] for s in bob["jobs"]["schedds"] for o in s["owners"]}
    assert owners == {"bob@localhost"}
    vm = {s["name"]: s for s in bob["jobs"]["schedds"]}["vm"]
    assert (vm["idle"], vm["running"], vm["held"], vm["removed"], vm["total"]) == (1, 0, 2, None, None)
    assert bob["jobs"]["totals"] == {"idle": 2, "running": 2, "held": 2, "removed": None, "total": None}
    admin = tokens.get("/v1/summary", headers=bearer(make_token(sub="alice"))).json()
    assert admin["scope"] == "all" and admin["jobs"]["totals"]["total"] == 26


def test_the_page_in_token_mode_asks_for_a_token(tokens: Client) -> None:
    r = tokens.get("/", headers={"Accept": "text/html"})
    assert r.status == 200 and 'data-auth="TOKEN"' in r.text and "bearer token" in r.text


# --------------------------------------------------------------------- pure functions

def test_owner_constraints() -> None:
    assert overview.owner_constraint("alice@example.org") == 'User =?= "alice@example.org"'
    assert overview.owner_constraint("group_cms.alice@example.org") == 'AccountingGroup =?= "group_cms.alice"'


def test_static_slots_and_slots_without_totals() -> None:
    records = [{"name": "slot1@a", "type": "Machine", "classad": {"state": "Claimed", "cpus": 4, "memory": 100}},
               {"name": "slot2@a", "type": "Machine", "classad": {"state": "Unclaimed", "cpus": 2, "memory": 50}},
               {"name": "slot1@b", "type": "Machine",
                "classad": {"state": "Unclaimed", "slottype": "Partitionable", "cpus": 3, "memory": 10}},
               {"name": "b", "type": "StartD", "classad": {}}]
    figures = overview.slot_figures(records)
    assert figures["resources"]["cpus"] == {"used": 4, "total": 9, "partitionable_free": 3}
    assert figures["slots"]["by_state"] == {"Claimed": 1, "Unclaimed": 2}
    assert [m["machine"] for m in figures["machines"]] == ["a", "b"]


def test_the_owner_cap_folds_the_rest_into_other() -> None:
    rows = [{"name": "s", "owners": [{"owner": o, "idle": n, "running": 0, "held": 0} for o, n in
                                     (("a@d", 5), ("b@d", 3), ("c@d", 1))]}]
    capped = {(owner, status): count for _, owner, status, count in overview.cap_owners(rows, 1)}
    assert capped[("a@d", "idle")] == 5 and capped[("other", "idle")] == 4
    assert {owner for owner, _ in capped} == {"a@d", "other"}
    assert {owner for _, owner, _, _ in overview.cap_owners(rows, 0)} == {"other"}


def test_decode_takes_text_bytes_and_dicts() -> None:
    text = json.dumps({"name": "x", "type": "Machine", "classad": {"cpus": 1}})
    assert overview.decode([text, text.encode(), json.loads(text)])[2]["classad"] == {"cpus": 1}


# ------------------------------------------------------------------------ /metrics

def test_metrics_export_the_pool_as_condor_q_and_condor_status_count_it(client: Client) -> None:
    samples = scrape(client)
    summary = client.get("/v1/summary").json()
    for schedd in summary["jobs"]["schedds"]:
        for owner in schedd["owners"]:
            for status in ("idle", "running", "held"):
                assert pool_jobs(samples, schedd=schedd["name"], owner=owner["owner"], status=status) \
                    == owner[status]
        for status in ("idle", "running", "held", "removed"):
            assert samples[("condor_restd_pool_schedd_jobs", (("schedd", schedd["name"]), ("status", status)))] \
                == schedd[status]
        assert samples[("condor_restd_pool_schedd_up", (("schedd", schedd["name"]),))] == 1
    assert samples[("condor_restd_pool_collector_up", ())] == 1
    assert samples[("condor_restd_pool_slots", (("state", "Claimed"),))] == 6
    assert samples[("condor_restd_pool_slots", (("state", "Unclaimed"),))] == 1
    assert samples[("condor_restd_pool_cores", (("state", "Unclaimed"),))] == 2
    assert samples[("condor_restd_pool_resources", (("kind", "total"), ("resource", "cpus")))] == 8


def test_metrics_name_at_most_the_configured_owners(make_client: Callable[..., Client]) -> None:
    samples = scrape(make_client(metrics_max_owners=1))
    owners = {dict(labels)["owner"] for name, labels in samples if name == "condor_restd_pool_jobs"}
    assert owners == {"alice@localhost", "other"}  # 10 jobs, as condoruser: a tie goes by name
    assert pool_jobs(samples) == 26  # idle + running + held: every job still counted


def test_metrics_name_no_owner_when_tokens_are_on(tokens: Client) -> None:
    samples = scrape(tokens)
    owners = {dict(labels)["owner"] for name, labels in samples if name == "condor_restd_pool_jobs"}
    assert owners == {"other"} and pool_jobs(samples, status="held") == 8


def test_metrics_say_what_cannot_be_reached(make_client: Callable[..., Client]) -> None:
    samples = scrape(make_client(NoCollector()))
    assert samples[("condor_restd_pool_collector_up", ())] == 0
    assert not any(name == "condor_restd_pool_jobs" for name, _ in samples)
    samples = scrape(make_client(NoSchedds()))
    assert samples[("condor_restd_pool_collector_up", ())] == 1
    assert samples[("condor_restd_pool_schedd_up", (("schedd", "vm"),))] == 0


def test_pool_figures_are_reused_between_scrapes(make_client: Callable[..., Client]) -> None:
    pool = Recording()
    client = make_client(pool, isolate=False)
    scrape(client)
    asked = len(pool.calls)
    assert asked == 5  # schedd, submitter, startd ads and one probe per schedd
    scrape(client)
    assert len(pool.calls) == asked


def test_a_flocked_submitter_gets_a_row_but_no_probe(make_client: Callable[..., Client]) -> None:
    pool = Recording()
    pool.collector.append(classad2.ClassAd({"MyType": "Submitter", "Name": "eve@far.org",
                                            "ScheddName": "far-schedd", "IdleJobs": 2,
                                            "RunningJobs": 0, "HeldJobs": 0}))
    client = make_client(pool, isolate=False)
    summary = client.get("/v1/summary").json()
    far = {s["name"]: s for s in summary["jobs"]["schedds"]}["far-schedd"]
    assert far["idle"] is None and far["owners"][0]["idle"] == 2
    samples = scrape(client)
    assert pool_jobs(samples, schedd="far-schedd") == 2
    assert ("condor_restd_pool_schedd_up", (("schedd", "far-schedd"),)) not in samples


def test_the_example_grafana_board_uses_only_exported_metrics(client: Client) -> None:
    board = json.loads((Path(__file__).parent.parent / "docs" / "grafana-dashboard.json").read_text())
    client.get("/v1/jobs/DEFAULT/99/0")  # an upstream error, so that its counter exists too
    client.get("/v1/jobs/nosuch")
    exported = {family.name for family in text_string_to_metric_families(client.get("/metrics").text)}
    exported |= {f"{name}_total" for name in exported} | {f"{name}_bucket" for name in exported}
    exprs = [t["expr"] for panel in board["panels"] for t in panel["targets"]]
    used = {name for expr in exprs for name in re.findall(r"\b(condor_restd_[a-z_]+)\b", expr)}
    assert len(board["panels"]) >= 10 and {p["id"] for p in board["panels"]} == set(range(1, len(board["panels"]) + 1))
    assert used and used <= exported, used - exported
    assert {"condor_restd_pool_jobs", "condor_restd_pool_schedd_jobs", "condor_restd_pool_slots",
            "condor_restd_pool_schedd_up", "condor_restd_pool_collector_up"} <= used
    assert all(p["datasource"]["uid"] == "${datasource}" for p in board["panels"])


def test_polling_pages_share_one_summary(make_client: Callable[..., Client]) -> None:
    pool = Recording()
    client = make_client(pool, cache_ttl=2, isolate=False)
    for _ in range(3):
        assert client.get("/v1/summary").status == 200
    assert len(pool.calls) == 4  # reused for SUMMARY_TTL seconds, longer than RESTD_CACHE_TTL here
    uncached = Recording()
    off = make_client(uncached, isolate=False)  # RESTD_CACHE_TTL = 0 turns every cache off, this one too
    off.get("/v1/summary")
    off.get("/v1/summary")
    assert len(uncached.calls) == 8


def test_a_kept_summary_never_reaches_someone_without_a_token(make_client: Callable[..., Client],
                                                                 requests_mock: Any) -> None:
    IssuerMock(requests_mock)
    client = make_client(**{**TOKEN_SETTINGS, "cache_ttl": 2})
    alice = client.get("/v1/summary", headers=bearer(make_token(sub="alice")))
    bob = client.get("/v1/summary", headers=bearer(make_token(sub="bob"))).json()
    assert alice.status == 200 and alice.json()["scope"] == "all" and bob["scope"] == "own"
    assert client.get("/v1/summary").status == 401
    assert "alice@localhost" not in client.get("/", headers={"Accept": "text/html"}).text
