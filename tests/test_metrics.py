"""/metrics: the Prometheus text format, parsed back, after real requests through the app."""

from __future__ import annotations

from typing import Any, Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from condor_restd import __version__, openapi
from condor_restd.demo import DemoPool
from condor_restd.errors import Unavailable
from condor_restd.metrics import Metrics

from .conftest import Client


def scrape(client: Client) -> dict[str, list[Sample]]:
    r = client.get("/metrics")
    assert r.status == 200
    assert r.headers["content-type"].startswith("text/plain")
    samples: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def value(samples: dict[str, list[Sample]], name: str, **labels: str) -> float:
    return sum(s.value for s in samples.get(name, [])
               if all(s.labels.get(k) == v for k, v in labels.items()))


class DownPool(DemoPool):
    """The demo pool with the schedds unreachable."""

    def jobs(self, *args: Any, **kwargs: Any) -> Any:
        raise Unavailable("cannot reach the schedd")

    def history(self, *args: Any, **kwargs: Any) -> Any:
        raise Unavailable("cannot reach the schedd")


# ----------------------------------------------------------------------------- requests

def test_requests_are_counted_by_route_template_method_and_status(client: Client) -> None:
    for url in ("/v1/jobs/DEFAULT", "/v1/jobs/vm", "/v1/jobs/schedd2@vm", "/v1/jobs/DEFAULT/2/0",
                "/v1/jobs/DEFAULT/99/0", "/v1/status", "/v1/status/", "/v1/config/NUM_CPUS"):
        client.get(url)
    client.request("HEAD", "/v1/status")
    client.request("POST", "/v1/status")
    samples = scrape(client)
    total = "condor_restd_requests_total"
    assert value(samples, total, route="/v1/jobs/{schedd}", method="GET", status="200") == 3
    assert value(samples, total, route="/v1/jobs/{schedd}/{clusterid}/{procid}", status="200") == 1
    assert value(samples, total, route="/v1/jobs/{schedd}/{clusterid}/{procid}", status="404") == 1
    assert value(samples, total, route="/v1/status", method="GET") == 2
    assert value(samples, total, route="/v1/status", method="HEAD") == 1
    assert value(samples, total, route="/v1/status", method="POST", status="405") == 1
    assert value(samples, total, route="/v1/config/{attribute}", status="200") == 1


def test_route_labels_never_carry_raw_paths(client: Client) -> None:
    for i in range(30):
        client.get(f"/v1/jobs/schedd{i}@example.org/{i}/0/Attr{i}")
        client.get(f"/no/such/url/{i}")
    client.request("BREW", "/v1/status")
    samples = scrape(client)
    templates = set(openapi.document(__version__)["paths"]) | {"other"}
    routes = {s.labels["route"] for name in samples for s in samples[name] if "route" in s.labels}
    assert routes <= templates, routes - templates
    assert value(samples, "condor_restd_requests_total", route="other", status="404") == 30
    methods = {s.labels["method"] for s in samples["condor_restd_requests_total"]}
    assert methods <= {"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE", "other"}
    assert "other" in methods
    assert not any("example.org" in str(s.labels) for name in samples for s in samples[name])


def test_latency_histograms_by_route(client: Client) -> None:
    for _ in range(3):
        client.get("/v1/grouped_status/MyType")
    samples = scrape(client)
    name = "condor_restd_request_duration_seconds"
    assert value(samples, f"{name}_count", route="/v1/grouped_status/{groupby}") == 3
    assert value(samples, f"{name}_sum", route="/v1/grouped_status/{groupby}") > 0
    buckets = [s for s in samples[f"{name}_bucket"] if s.labels["route"] == "/v1/grouped_status/{groupby}"]
    assert {s.labels["le"] for s in buckets} >= {"0.005", "1.0", "+Inf"}
    assert max(s.value for s in buckets) == 3


def test_requests_in_flight(client: Client) -> None:
    client.get("/v1/status")
    samples = scrape(client)
    # the scrape itself is the one request in flight
    assert value(samples, "condor_restd_requests_in_flight") == 1
    assert value(scrape(client), "condor_restd_requests_in_flight") == 1


# ----------------------------------------------------------------------------- upstream

def test_upstream_latency_by_daemon_type(client: Client) -> None:
    client.get("/v1/jobs/DEFAULT")
    client.get("/v1/history/DEFAULT")
    client.get("/v1/status")
    client.get("/v1/config")
    client.get("/v1/config/NUM_CPUS", {"daemon": "master"})
    samples = scrape(client)
    name = "condor_restd_upstream_duration_seconds_count"
    assert value(samples, name, daemon="schedd") == 2
    assert value(samples, name, daemon="collector") == 1
    assert value(samples, name, daemon="config") == 1
    assert value(samples, name, daemon="master") == 1
    assert value(samples, "condor_restd_upstream_errors_total") == 0


def test_upstream_errors_by_daemon_type_and_error(make_client: Callable[..., Client]) -> None:
    client = make_client(DownPool())
    assert client.get("/v1/jobs/DEFAULT").status == 503
    assert client.get("/v1/history/DEFAULT").status == 503
    assert client.get("/v1/jobs/nosuch").status == 503
    assert client.get("/v1/status").status == 200
    assert client.get("/v1/config/NO_SUCH_KNOB").status == 404
    samples = scrape(client)
    errors = "condor_restd_upstream_errors_total"
    assert value(samples, errors, daemon="schedd", error="Unavailable") == 3
    assert value(samples, errors, daemon="config", error="NotFound") == 1
    assert value(samples, errors, daemon="collector") == 0
    assert value(samples, "condor_restd_upstream_duration_seconds_count", daemon="schedd") == 3
    assert value(samples, "condor_restd_requests_total", route="/v1/jobs/{schedd}", status="503") == 2


# -------------------------------------------------------------------------------- cache

def test_cache_hits_and_misses(client: Client) -> None:
    scrape(client)  # the first scrape asks the pool for its figures (cache misses), then reuses them
    samples = scrape(client)
    hits, misses = (value(samples, f"condor_restd_cache_{n}_total") for n in ("hits", "misses"))
    app: Any = client.app
    metrics = app.metrics
    metrics.cache(True)
    metrics.cache(True)
    metrics.cache(False)
    samples = scrape(client)
    assert value(samples, "condor_restd_cache_hits_total") == hits + 2
    assert value(samples, "condor_restd_cache_misses_total") == misses + 1


# ------------------------------------------------------------------------------- isolation

def test_each_app_has_its_own_registry(make_client: Callable[..., Client]) -> None:
    first, second = make_client(), make_client()
    first.get("/v1/status")
    first.get("/v1/status")
    assert value(scrape(first), "condor_restd_requests_total", route="/v1/status") == 2
    assert value(scrape(second), "condor_restd_requests_total", route="/v1/status") == 0
    apps: list[Any] = [first.app, second.app]
    assert apps[0].metrics.registry is not apps[1].metrics.registry


def test_build_info_and_process_metrics(client: Client) -> None:
    samples = scrape(client)
    assert [s.labels["version"] for s in samples["condor_restd_build_info"]] == [__version__]
    assert "process_cpu_seconds_total" in samples or "python_info" in samples


def test_metrics_refuses_parameters_and_json(client: Client) -> None:
    assert client.get("/metrics", {"x": "1"}).headers["warning"].startswith("299 - ")
    assert client.get("/metrics", headers={"Accept": "application/json"}).status == 406
    r = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0, "
                                                  "text/plain;version=0.0.4;q=0.5, */*;q=0.1"})
    assert r.status == 200 and r.headers["content-type"].startswith("text/plain")


# ---------------------------------------------------------------------------------- units

@pytest.mark.parametrize("path,route", [
    ("/", "/"), ("/healthz", "/healthz"), ("/v1/", "/v1"), ("/v1/openapi.json", "/v1/openapi.json"),
    ("/v1/jobs/DEFAULT", "/v1/jobs/{schedd}"), ("/v1/jobs/x/1/2/Cmd", "/v1/jobs/{schedd}/{clusterid}/{procid}/{attribute}"),
    ("/v1/history/x/1", "/v1/history/{schedd}/{clusterid}"),
    ("/v1/grouped_history/x/Owner/3", "/v1/grouped_history/{schedd}/{groupby}/{clusterid}"),
    ("/v1/grouped_status/State/slot1@vm", "/v1/grouped_status/{groupby}/{name}"),
    ("/v1/config", "/v1/config"), ("/v1/config/NUM_CPUS", "/v1/config/{attribute}"),
    ("/v1/jobs", "other"), ("/v1/jobs/a/b/c/d/e", "other"), ("/v1/openapi_json", "other"),
    ("/v2/jobs/DEFAULT", "other"), ("//", "/"), ("/v1/jobs//DEFAULT/", "/v1/jobs/{schedd}"),
    ("", "other")])
def test_route_templates(path: str, route: str) -> None:
    assert Metrics(process=False).route(path) == route


def test_unknown_daemons_and_failures_are_bounded() -> None:
    metrics = Metrics(process=False)
    metrics.upstream("weird-daemon", 0.1, "SomethingNew")
    metrics.upstream("schedd", 0.1, None)
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(body.decode()) for s in f.samples}
    assert samples[("condor_restd_upstream_errors_total", (("daemon", "other"), ("error", "other")))] == 1
    assert ("condor_restd_upstream_duration_seconds_count", (("daemon", "schedd"),)) in samples
