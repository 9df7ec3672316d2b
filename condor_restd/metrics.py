"""Prometheus metrics: requests, latency, upstream queries, requests in flight, cache hits."""

from __future__ import annotations


class Metrics:
    """Placeholder interface; the full implementation uses prometheus_client."""

    def request_started(self) -> None:
        pass

    def request_finished(self, path: str, method: str, status: int, seconds: float) -> None:
        pass

    def upstream(self, daemon: str, seconds: float, failure: str | None) -> None:
        pass

    def cache(self, hit: bool) -> None:
        pass

    def exposition(self) -> tuple[bytes, str]:
        return b"", "text/plain; version=0.0.4; charset=utf-8"
