"""Prometheus metrics: requests, latency, upstream queries, requests in flight, cache hits."""

from __future__ import annotations

import re

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

from . import __version__, openapi
from .condor import DAEMON_TYPES

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

    def exposition(self) -> tuple[bytes, str]:
        """The Prometheus text format, and its Content-Type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
