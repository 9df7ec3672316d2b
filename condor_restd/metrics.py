"""Prometheus metrics: requests, latency, upstream queries, requests in flight, cache hits, pool figures."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric

from . import __version__, openapi
from .condor import DAEMON_TYPES
from .overview import Figures, cap_owners

SLASHES = re.compile("//+")
OTHER = "other"  # the label for anything outside the known, bounded set
METHODS = frozenset({"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"})
DAEMONS = frozenset({"schedd", "collector", "config", *DAEMON_TYPES})
FAILURES = frozenset({"BadRequest", "NotFound", "Timeout", "Unavailable", "RestdError"})
# Pool queries range from a few milliseconds to RESTD_QUERY_TIMEOUT (30 s by default).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, float("inf"))


class Routes:
    """Turns a request path into the route template it matched, so labels stay few."""

    def __init__(self, templates: list[str]) -> None:
        self.exact = {t for t in templates if "{" not in t}
        self.patterns = [(re.compile("^" + re.sub(r"\\\{[^/]*?\\\}", "[^/]+", re.escape(t)) + "$"), t)
                         for t in templates if "{" in t]

    def __call__(self, path: str) -> str:
        path = SLASHES.sub("/", path)  # as CherryPy reads the path
        if len(path) > 1 and path.endswith("/"):
            path = path[:-1]
        if path in self.exact:
            return path
        for pattern, template in self.patterns:
            if pattern.match(path):
                return template
        return OTHER


class Metrics:
    """The daemon's metrics, in a registry of their own (so each app, and each test, is separate)."""

    def __init__(self, version: str = __version__, process: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.route = Routes(list(openapi.document(version)["paths"]))
        registry = self.registry
        self.requests = Counter("condor_restd_requests", "HTTP requests answered, by route template, "
                                "method and status code.", ["route", "method", "status"],
                                registry=registry)
        self.latency = Histogram("condor_restd_request_duration_seconds", "Time to answer a request, "
                                 "by route template.", ["route"], buckets=BUCKETS, registry=registry)
        self.in_flight = Gauge("condor_restd_requests_in_flight", "Requests being answered now.",
                               registry=registry)
        self.upstream_latency = Histogram("condor_restd_upstream_duration_seconds", "Time a query to "
                                          "the pool took, by daemon type.", ["daemon"], buckets=BUCKETS,
                                          registry=registry)
        self.upstream_errors = Counter("condor_restd_upstream_errors", "Pool queries that failed, by "
                                       "daemon type and error.", ["daemon", "error"], registry=registry)
        self.cache_hits = Counter("condor_restd_cache_hits", "Answers served from the cache.",
                                  registry=registry)
        self.cache_misses = Counter("condor_restd_cache_misses", "Cache look-ups that had to ask the "
                                    "pool.", registry=registry)
        Info("condor_restd_build", "The daemon's version.", registry=registry).info({"version": version})
        if process:
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)

    def request_started(self) -> None:
        self.in_flight.inc()

    def request_finished(self, path: str, method: str, status: int, seconds: float) -> None:
        route = self.route(path)
        self.in_flight.dec()
        self.requests.labels(route, method if method in METHODS else OTHER, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def upstream(self, daemon: str, seconds: float, failure: str | None) -> None:
        daemon = daemon if daemon in DAEMONS else OTHER
        self.upstream_latency.labels(daemon).observe(seconds)
        if failure is not None:
            self.upstream_errors.labels(daemon, failure if failure in FAILURES else OTHER).inc()

    def cache(self, hit: bool) -> None:
        (self.cache_hits if hit else self.cache_misses).inc()

    def watch_pool(self, figures: Callable[[], Figures], max_owners: int) -> None:
        """Export the pool's figures too, as `figures()` gives them at each scrape."""
        self.registry.register(PoolCollector(figures, max_owners))

    def exposition(self) -> tuple[bytes, str]:
        """The Prometheus text format, and its Content-Type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class PoolCollector:
    """condor_q -totals and condor_status -total as gauges, from the collector's ads (cached by
    the source), with each schedd's and the collector's reachability."""

    def __init__(self, figures: Callable[[], Figures], max_owners: int) -> None:
        self.figures = figures
        self.max_owners = max_owners

    def describe(self) -> list[Metric]:
        return []  # registering must not query the pool

    def collect(self) -> Iterator[Metric]:
        figures = self.figures()
        up = GaugeMetricFamily("condor_restd_pool_collector_up", "Whether the collector answered "
                               "the last pool query (1) or not (0).")
        up.add_metric([], 1.0 if figures.collector == "ok" else 0.0)
        yield up
        schedd_up = GaugeMetricFamily("condor_restd_pool_schedd_up", "Whether each schedd the "
                                      "collector knows answered a query (1) or not (0).", labels=["schedd"])
        for schedd, state in sorted(figures.reachable.items()):
            schedd_up.add_metric([schedd], 1.0 if state == "ok" else 0.0)
        yield schedd_up
        jobs = GaugeMetricFamily("condor_restd_pool_jobs", "Jobs by schedd, owner and status (idle, "
                                 "running, held), from the collector's Submitter ads; owners beyond "
                                 "RESTD_METRICS_MAX_OWNERS are 'other'.",
                                 labels=["schedd", "owner", "status"])
        for schedd, owner, status, count in cap_owners(figures.schedds, self.max_owners):
            jobs.add_metric([schedd, owner, status], count)
        yield jobs
        totals = GaugeMetricFamily("condor_restd_pool_schedd_jobs", "Jobs in each schedd's queue by "
                                   "status, and all of them (status 'all'), from its Scheduler ad.",
                                   labels=["schedd", "status"])
        for row in figures.schedds:
            for status, key in (("idle", "idle"), ("running", "running"), ("held", "held"),
                                ("removed", "removed"), ("all", "total")):
                if row[key] is not None:
                    totals.add_metric([row["name"], status], row[key])
        yield totals
        yield from self._slots(figures)

    @staticmethod
    def _slots(figures: Figures) -> Iterator[Metric]:
        slots = GaugeMetricFamily("condor_restd_pool_slots", "Slots by state, as condor_status "
                                  "-total counts them (a partitionable slot is one).", labels=["state"])
        types = GaugeMetricFamily("condor_restd_pool_slots_by_type", "Slots by type: Partitionable, "
                                  "Dynamic or Static.", labels=["type"])
        cores = GaugeMetricFamily("condor_restd_pool_cores", "Cores by slot state; a partitionable "
                                  "slot's are those it has left.", labels=["state"])
        resources = GaugeMetricFamily("condor_restd_pool_resources", "Cores, memory (MB) and GPUs: "
                                      "total, in use by claimed slots, and left in partitionable slots.",
                                      labels=["resource", "kind"])
        if figures.slots:
            for state, count in figures.slots["slots"]["by_state"].items():
                slots.add_metric([state], count)
            for kind, count in figures.slots["slots"]["by_type"].items():
                types.add_metric([kind], count)
            for state, count in figures.slots["cores_by_state"].items():
                cores.add_metric([state], count)
            for resource, values in figures.slots["resources"].items():
                for kind, value in values.items():
                    resources.add_metric([resource, kind], value)
        yield from (slots, types, cores, resources)
