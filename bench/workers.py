"""Worker processes against threads, side by side in one run, on pools that cost what a real one does.

- Throughput: single-job requests with 16 clients over loopback, the demo pool holding the GIL
  for 6.6 ms a query (CostlyPool: what one query costs through the bindings on a real schedd).
- Memory: the total size (PSS, so that pages shared by the front and its workers count once)
  of the daemon's processes when idle, at the peak of a 100k-job answer, and after it, the
  jobs living in a fake schedd process of their own as on a real pool.
"""

from __future__ import annotations

import functools
import http.client
import multiprocessing
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import load  # noqa: E402

from condor_restd import daemon  # noqa: E402
from condor_restd.demo import CostlyPool  # noqa: E402
from condor_restd.settings import Settings  # noqa: E402
from condor_restd.web import make_app  # noqa: E402

MODES = ("threads", "workers")


def _daemon(settings: Settings, backend: Callable[[], Any], isolate: bool, ready: Any) -> None:
    """The daemon, in a process of its own, until SIGTERM."""
    import cherrypy

    cherrypy.log.screen = False
    app = make_app(settings, backend(), isolate)
    app.log.access_log.disabled = True
    listener = daemon.Listener(settings, app)
    listener.start()
    ready.set()
    signal.sigwait({signal.SIGTERM})
    app.queries.close()
    os._exit(0)


class Served:
    """A daemon process on a free loopback port, in `mode`."""

    def __init__(self, mode: str, backend: Callable[[], Any], **settings: Any) -> None:
        self.port = load.free_port()
        self.settings = Settings(cache_ttl=0, port=self.port, threads=16, **settings)
        context = multiprocessing.get_context("fork")
        self.ready = context.Event()
        self.process = context.Process(target=_daemon, args=(self.settings, backend,
                                                             mode == "workers", self.ready))

    def __enter__(self) -> Served:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # for sigwait in the child
        try:
            self.process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        if not self.ready.wait(120):
            raise RuntimeError("the daemon did not start")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.process.terminate()
        self.process.join(30)

    def pss_kib(self) -> int:
        """Proportional set size of the daemon and every process below it, in KiB."""
        return sum(_pss(pid) for pid in _tree(self.process.pid))

    def workers(self) -> int:
        return len(_tree(self.process.pid)) - 1


def _tree(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                fields = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents[int(name)] = int(fields[1])
    found, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        found += frontier
    return found


def _pss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


# ---------------------------------------------------------------------------- throughput

SINGLE_JOBS = [(f"/v1/jobs/DEFAULT/{c}/{p}?projection=Owner,JobStatus,X{n}", 200)
               for n, (c, p) in enumerate([(2, 0), (2, 1), (2, 2), (5, 0), (7, 0), (17, 0), (17, 1),
                                           (17, 2), (18, 0), (18, 1), (19, 0), (20, 0), (20, 1),
                                           (21, 0)] * 5)]  # different URLs: no shared queries


def throughput(seconds: float = 10.0, clients: int = 16, call_us: float = 6600) -> dict[str, Any]:
    """Single-job requests per second in each mode, on the GIL-holding demo pool."""
    results: dict[str, Any] = {}
    for mode in MODES:
        with Served(mode, lambda: CostlyPool(call_us=call_us), query_workers=4) as served:
            load.hammer(served.port, SINGLE_JOBS, 4, 1.0, 2_000)  # warm up
            results[mode] = load.hammer(served.port, SINGLE_JOBS, clients, seconds, 1_000_000)
    results["ratio"] = results["workers"]["rps"] / max(results["threads"]["rps"], 1e-9)
    return results


# ------------------------------------------------------------------------------- memory

def _get(port: int, path: str,
         at_first: Callable[[], Any] | None = None) -> tuple[float, float, int]:
    """First byte (of a record: the answer's opening "[" does not count) and total seconds, and
    the size, of one GET read a chunk at a time; `at_first()` is called as that byte arrives."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
    started = time.perf_counter()
    conn.request("GET", path)
    response = conn.getresponse()
    first = None
    size = 0
    while True:
        chunk = response.read1(1 << 16)
        if first is None and (chunk.lstrip(b"[ \n") or not chunk):
            first = time.perf_counter() - started
            if at_first is not None:
                at_first()
        if not chunk:
            break
        size += len(chunk)
    conn.close()
    return first or 0.0, time.perf_counter() - started, size


def _sampled(served: Served, path: str,
             at_first: Callable[[], Any] | None = None) -> tuple[tuple[float, float, int], int]:
    """_get(path), and the daemon's biggest total PSS while it ran (sampled every 50 ms)."""
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], served.pss_kib())

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        return _get(served.port, path, at_first), peak[0]
    finally:
        done.set()
        sampler.join()


def memory(count: int = 100_000, modes: tuple[str, ...] = MODES) -> dict[str, Any]:
    """Total PSS of the daemon's processes idle, at the peak of a `count`-job answer, and after;
    the first byte, and the fake schedd's time before it against a real schedd's (the model)."""
    from big import history_texts
    from fakeschedd import FakeSchedd

    schedd = FakeSchedd(history_texts(count)).start()
    results: dict[str, Any] = {"count": count}
    try:
        for mode in modes:
            with Served(mode, schedd.client, max_jobs=0, query_workers=4,
                        query_timeout=3600) as served:
                load.hammer(served.port, [("/v1/jobs/DEFAULT?constraint=ClusterId==0", 200)], 4,
                            1.0, 50)  # every worker forked and warm
                time.sleep(0.5)
                idle = served.pss_kib()
                schedd.taken()
                before: dict[str, float] = {}
                (first, total, size), peak = _sampled(served, "/v1/jobs/DEFAULT",
                                                      functools.partial(_into, before, schedd.peek))
                time.sleep(1.0)
                after = served.pss_kib()
                # the queries before the first byte ran one after the other: what the fake's
                # Python took beyond a real schedd's cost came straight off the first byte
                excess = before["taken_s"] - before["modelled_s"]
                results[mode] = {"idle_kib": idle, "peak_kib": max(peak, idle), "after_kib": after,
                                 "first_s": first, "total_s": total, "bytes": size,
                                 "after_over_idle": after / idle, "first_schedd": before,
                                 "first_real_s": first - excess}
    finally:
        schedd.stop()
    return results


def _into(found: dict[str, Any], get: Callable[[], dict[str, Any]]) -> None:
    found.update(get())


# ------------------------------------------------------------------- history, remote

# The real pool's figures (HTCONDOR-NOTES.md, issue #13): one history() of 100,039 records took
# 29 s; the batched stream, which read about 1.09 million records, 95 s. So a record read costs
# the schedd about 66 us, and one sent and built into a ClassAd about 224 us more.
REAL_SCAN_US, REAL_SEND_US = 66.0, 224.0


def _one_call(client: Any, out: Any) -> None:
    base = _status_kib("VmRSS")
    started = time.perf_counter()
    ads = client.history(None, "true", [], -1)
    out.put({"total_s": time.perf_counter() - started, "peak_growth_kib": _status_kib("VmHWM") - base,
             "records": len(ads)})


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def remote_history(count: int = 100_000, scan_us: float = REAL_SCAN_US) -> dict[str, Any]:
    """An uncapped history through the schedd query (the daemon not on the schedd's host):
    the stream against one history() call, both on the fake schedd's cost model (fakeschedd):
    every record the schedd reads costs it `scan_us` (its own process, so concurrent queries
    overlap as a schedd's history helpers do), its Python time counted toward that; every
    record sent and built into a ClassAd costs the client REAL_SEND_US (a whole record; a
    small one its share by size), the parse counted toward that, the GIL held."""
    from big import history_texts
    from fakeschedd import FakeSchedd

    texts = history_texts(count)
    send_us = REAL_SEND_US / (sum(map(len, texts)) / len(texts) / 1024)  # a KiB of ad text
    schedd = FakeSchedd(texts, scan_us=scan_us).start()
    del texts
    client = functools.partial(schedd.client, 0.0, send_us)
    results: dict[str, Any] = {"count": count, "scan_us": scan_us, "send_us_kib": send_us}
    try:
        context = multiprocessing.get_context("spawn")  # a fresh process: its peak is its own
        queue: Any = context.Queue()
        child = context.Process(target=_one_call, args=(client(), queue))
        child.start()
        results["call"] = queue.get(timeout=3600)
        child.join(60)
        results["call"]["schedd"] = schedd.taken()
        with Served("workers", client, max_jobs=0, query_timeout=3600) as served:
            load.hammer(served.port, [("/v1/jobs/DEFAULT?constraint=false", 200)], 4, 0.5, 20)
            time.sleep(0.5)
            schedd.taken()
            idle = served.pss_kib()
            (first, total, size), peak = _sampled(served, "/v1/history/DEFAULT")
            taken = schedd.taken()
        results["stream"] = {"first_s": first, "total_s": total, "bytes": size,
                             "peak_growth_kib": max(peak, idle) - idle, "schedd": taken}
    finally:
        schedd.stop()
    call, stream = results["call"], results["stream"]
    results["time_ratio"] = stream["total_s"] / call["total_s"]
    results["memory_ratio"] = stream["peak_growth_kib"] / max(call["peak_growth_kib"], 1)
    results["read_ratio"] = stream["schedd"]["read"] / max(call["schedd"]["read"], 1)
    # what the real schedd's costs predict for the records the stream read, taking the one
    # call's measured 29 s for 100,039 records as the yardstick
    real_call = count * (REAL_SCAN_US + REAL_SEND_US)
    ahead = max(1, Settings().query_workers // 2)
    ids_pass = count * REAL_SCAN_US
    windows = (stream["schedd"]["read"] - count) * REAL_SCAN_US + count * REAL_SEND_US
    results["real_prediction"] = (ids_pass + windows / ahead) / real_call
    return results


def main() -> int:
    quick = "--quick" in sys.argv
    print(throughput(seconds=3.0 if quick else 10.0))
    print(memory(10_000 if quick else 100_000))
    print(remote_history(10_000 if quick else 100_000))
    return 0


if __name__ == "__main__":
    sys.exit(main())
