"""ClassAd → JSON cost: /v1/jobs and /v1/history end to end in process, against the printJson floor."""

from __future__ import annotations

import gc
import io
import json
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from wsgi_client import Client, lowered  # noqa: E402

from condor_restd import condor  # noqa: E402
from condor_restd.demo import DATA, DemoPool  # noqa: E402
from condor_restd.settings import Settings  # noqa: E402
from condor_restd.web import make_app  # noqa: E402


def realistic_ads(count: int) -> list[Any]:
    """`count` job ads: the captured queue and history ads again and again, each with its own id."""
    templates = [block for name in ("jobs-default.ads", "jobs-schedd2.ads", "history-default.ads",
                                    "history-schedd2.ads")
                 for block in (DATA / name).read_text().split("\n\n") if block.strip()]
    texts = []
    for n in range(count):
        cluster, proc = 1000 + n // 10, n % 10
        block = templates[n % len(templates)]
        block = re.sub(r"(?m)^ClusterId = .*$", f"ClusterId = {cluster}", block)
        block = re.sub(r"(?m)^ProcId = .*$", f"ProcId = {proc}", block)
        block = re.sub(r'(?m)^GlobalJobId = "([^#]*)#[^#]*#', rf'GlobalJobId = "\1#{cluster}.{proc}#', block)
        texts.append(block)
    return condor.parse_ads("\n\n".join(texts))


def best_of(fn: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def original_method(ads: list[Any]) -> str:
    """What the original daemon did: printJson, json.loads, lowercase recursively, json.dumps."""
    jobs = []
    for ad in ads:
        data = lowered(json.loads(ad.printJson()))
        jobs.append({"jobid": f"{data['clusterid']}.{data['procid']}", "classad": data})
    return json.dumps(jobs)


class Timed:
    """The fake pool, adding up the time spent inside it: what a real schedd would spend."""

    def __init__(self, pool: DemoPool) -> None:
        self.pool, self.seconds = pool, 0.0

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.pool, name)

        def call(*args: Any) -> Any:
            started = time.perf_counter()
            try:
                return real(*args)
            finally:
                self.seconds += time.perf_counter() - started
        return call


def serve(app: Callable[..., Any], path: str, first: Callable[[], None] | None = None) -> tuple[str, int]:
    """One GET through the WSGI application, its body read chunk by chunk as a server sends it
    (never joined into one string); `first` is called when the first chunk arrives."""
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "",
               "SERVER_NAME": "localhost", "SERVER_PORT": "9680", "SERVER_PROTOCOL": "HTTP/1.1",
               "HTTP_HOST": "localhost", "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr,
               "wsgi.url_scheme": "http", "wsgi.version": (1, 0), "wsgi.multithread": True,
               "wsgi.multiprocess": False, "wsgi.run_once": False}
    answer: dict[str, str] = {}

    def start_response(status: str, headers: Any, exc: Any = None) -> Callable[[bytes], None]:
        answer["status"] = status
        return lambda data: None

    body = app(environ, start_response)
    size = 0
    try:
        for chunk in body:
            if first is not None and size == 0:
                first()
            size += len(chunk)
    finally:
        getattr(body, "close", lambda: None)()
    return answer["status"], size


def _timed_get(app: Callable[..., Any], pool: Timed, path: str, repeat: int) -> tuple[float, float]:
    """Best of `repeat` for one request, and the time the fake pool spent in that best one."""
    best = (float("inf"), 0.0)
    for _ in range(repeat):
        gc.collect()
        pool.seconds = 0.0
        started = time.perf_counter()
        assert serve(app, path)[0].startswith("200")
        best = min(best, (time.perf_counter() - started, pool.seconds))
    return best


def encode_one(size: int, repeat: int) -> dict[str, Any]:
    ads = realistic_ads(size)
    pool = Timed(DemoPool(queues={"vm": ads, "schedd2@vm": []}, histories={"vm": ads, "schedd2@vm": []}))
    app = make_app(Settings(max_jobs=0, query_timeout=600, cache_ttl=0), pool, isolate=False)
    client = Client(app)
    for path in ("/v1/jobs/DEFAULT", "/v1/history/DEFAULT"):
        assert client.get(path).status == 200
    row = {"ads": size, "floor_s": best_of(lambda: [ad.printJson() for ad in ads], repeat)}
    row["jobs_s"], row["jobs_pool_s"] = _timed_get(app, pool, "/v1/jobs/DEFAULT", repeat)
    row["history_s"], row["history_pool_s"] = _timed_get(app, pool, "/v1/history/DEFAULT", repeat)
    row["original_s"] = best_of(lambda: original_method(ads), repeat)
    app.queries.close()
    if size <= 10_000:  # the default cap: one query, nothing streamed
        capped = make_app(Settings(query_timeout=600, cache_ttl=0), pool, isolate=False)
        for name in ("jobs", "history"):
            row[f"{name}_capped_s"], row[f"{name}_capped_pool_s"] = _timed_get(
                capped, pool, f"/v1/{name}/DEFAULT", repeat)
        capped.queries.close()
    return row


def encode_bench(sizes: tuple[int, ...] = (10_000, 100_000), repeat: int = 3) -> list[dict[str, Any]]:
    return [encode_one(size, repeat) for size in sizes]


if __name__ == "__main__":
    for row in encode_bench((10_000,), 3):
        print(row, f"jobs/floor={row['jobs_s'] / row['floor_s']:.2f}",
              f"history/floor={row['history_s'] / row['floor_s']:.2f}",
              f"original/jobs={row['original_s'] / row['jobs_s']:.2f}")
