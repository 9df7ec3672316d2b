"""Load against a real condor_restd process on loopback: bounded in time and in requests."""

from __future__ import annotations

import http.client
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# A dashboard's mix, plus the mistakes clients make (those must come back 4xx, never 5xx).
MIX: Sequence[tuple[str, int]] = (
    ("/v1/jobs/DEFAULT", 200),
    ("/v1/jobs/DEFAULT/2/0", 200),
    ("/v1/jobs/schedd2@vm?projection=Owner,JobStatus", 200),
    ("/v1/history/DEFAULT?constraint=ExitCode%20!=%200", 200),
    ("/v1/grouped_jobs/DEFAULT/Owner?projection=JobStatus", 200),
    ("/v1/status?query=startd", 200),
    ("/v1/grouped_status/MyType?projection=Name", 200),
    ("/v1/config/NUM_CPUS", 200),
    ("/v1/jobs/DEFAULT?constraint=Owner%20==", 400),
    ("/v1/jobs/nosuch", 404),
    ("/healthz", 200),
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@contextmanager
def daemon(port: int, extra_env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """`condor_restd --demo` on 127.0.0.1:port, stopped with SIGTERM afterwards."""
    env = dict(os.environ, _CONDOR_RESTD_THREADS="16", **(extra_env or {}))
    proc = subprocess.Popen([sys.executable, "-m", "condor_restd", "--demo", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("condor_restd --demo did not start")
            time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def hammer(port: int, urls: Sequence[tuple[str, int]], clients: int, seconds: float,
           max_requests: int) -> dict[str, Any]:
    """`clients` keep-alive connections request `urls` round robin for `seconds` (or
    `max_requests` in all). Errors: 5xx, an unexpected status, or a failed connection."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    budget = [max_requests]

    def client(offset: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        i = offset
        while time.monotonic() < stop:
            with lock:
                if budget[0] <= 0:
                    break
                budget[0] -= 1
            url, expected = urls[i % len(urls)]
            i += 1
            started = time.perf_counter()
            try:
                conn.request("GET", url)
                response = conn.getresponse()
                response.read()
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    if response.status != expected:
                        errors.append(f"{url}: {response.status}")
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    errors.append(f"{url}: {exc!r}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    wall = time.perf_counter() - started
    ordered = sorted(latencies)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")

    return {"requests": len(latencies), "errors": len(errors), "error_samples": errors[:5],
            "seconds": wall, "rps": len(latencies) / wall if wall else 0.0,
            "p50_ms": pct(0.50), "p99_ms": pct(0.99),
            "mean_ms": statistics.fmean(latencies) * 1000 if latencies else float("nan")}


def load_test(clients: int = 16, seconds: float = 20.0, max_requests: int = 200_000) -> dict[str, Any]:
    """The issue's load test: N clients for T seconds on the demo daemon; errors, RSS, p50/p99."""
    port = free_port()
    with daemon(port) as proc:
        hammer(port, MIX, 4, 2.0, 2_000)  # warm up caches, imports and threads
        rss_start = rss_kib(proc.pid)
        result = hammer(port, MIX, clients, seconds, max_requests)
        rss_end = rss_kib(proc.pid)
        alive = proc.poll() is None
    result.update(clients=clients, rss_start_kib=rss_start, rss_end_kib=rss_end, alive_after=alive)
    return result


def single_job_rps(clients: int = 16, seconds: float = 10.0) -> dict[str, Any]:
    """Requests per second on /v1/jobs/DEFAULT/{c}/{p} over loopback."""
    port = free_port()
    with daemon(port) as proc:
        hammer(port, [("/v1/jobs/DEFAULT/2/0", 200)], 4, 1.0, 1_000)
        result = hammer(port, [("/v1/jobs/DEFAULT/2/0", 200), ("/v1/jobs/DEFAULT/17/1", 200)],
                        clients, seconds, 500_000)
        result["alive_after"] = proc.poll() is None
    result["clients"] = clients
    return result
