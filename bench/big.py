"""Big pools: memory and first byte on a 100k-record history, page cost by depth, single flight.

The backend here stands in for a schedd across the wire: it keeps every record as text and
hands out freshly parsed ClassAds for each query, as the bindings do, so a query that returns
everything costs memory the way `Schedd.history()` does.
"""

from __future__ import annotations

import json
import multiprocessing
import re
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from encode import serve  # noqa: E402
from wsgi_client import Client  # noqa: E402

from condor_restd import condor  # noqa: E402
from condor_restd.demo import DATA  # noqa: E402
from condor_restd.settings import Settings  # noqa: E402
from condor_restd.web import make_app  # noqa: E402

NOW = 1_800_000_000


def history_texts(count: int) -> list[str]:
    """`count` history records, newest first, in the long format, with their own ids and an
    EnteredCurrentStatus that never increases (three jobs leave the queue each second)."""
    templates = [block for name in ("history-default.ads", "history-schedd2.ads")
                 for block in (DATA / name).read_text().split("\n\n") if block.strip()]
    texts = []
    for n in range(count):
        cluster, proc = 500_000 - n // 10, n % 10
        block = templates[n % len(templates)]
        for attr, value in (("ClusterId", cluster), ("ProcId", proc),
                            ("EnteredCurrentStatus", NOW - n // 3)):
            block = re.sub(rf"(?m)^{attr} = .*$", f"{attr} = {value}", block)
        block = re.sub(r'(?m)^GlobalJobId = "([^#]*)#[^#]*#', rf'GlobalJobId = "\1#{cluster}.{proc}#', block)
        texts.append(block)
    return texts


class WireSchedd:
    """A schedd over the wire: constraints evaluated on its own ads, answers parsed afresh."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.texts = list(texts)
        self.ads = [ad for text in self.texts for ad in condor.parse_ads(text)]
        self.calls = 0

    def _fresh(self, indices: list[int], projection: Sequence[str]) -> list[Any]:
        if projection:  # the schedd projects before it sends: the client builds small ads
            return [condor.project(self.ads[i], projection) for i in indices]
        return [ad for i in indices for ad in condor.parse_ads(self.texts[i])]

    def history(self, schedd: str | None, constraint: str, projection: Sequence[str], limit: int,
                since: str | None = None) -> list[Any]:
        self.calls += 1
        expr = condor.check_expression(constraint or "true")
        everything = constraint.strip().lower() in ("", "true")
        stop = tuple(int(x) for x in since.split(".")) if since else None
        picked: list[int] = []
        for i, ad in enumerate(self.ads):  # newest first, as a schedd reads its history file
            if stop is not None and (condor.value_of(ad, "ClusterId"),
                                     condor.value_of(ad, "ProcId"))[:len(stop)] == stop:
                break
            if everything or condor.matches(expr, ad):
                picked.append(i)
                if 0 < limit <= len(picked):
                    break
        return self._fresh(picked, projection)

    def jobs(self, schedd: str | None, constraint: str, projection: Sequence[str],
             limit: int) -> list[Any]:
        return self.history(schedd, constraint, projection, limit)


def _rss_kib(field: str = "VmRSS") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM back to the current RSS


def write_history_file(texts: Sequence[str], path: Path) -> None:
    """`texts` (newest first) as a schedd writes its history file: oldest first, each record
    followed by its banner line."""
    count = len(texts)
    with path.open("w") as out:
        for n, text in enumerate(reversed(texts)):
            cluster, proc = 500_000 - (count - 1 - n) // 10, (count - 1 - n) % 10
            out.write(text.rstrip("\n") + f"\n*** Offset = 0 ClusterId = {cluster} ProcId = {proc}\n")


class LocalHistory:
    """A backend that only has the schedd's history file, as the daemon on the schedd's host."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def history_file(self, schedd: str | None) -> Any:
        return condor.HistoryFile(str(self.path))


MEMORY_MODES = {
    # mode: (what is measured, the URL the daemon serves, or None for one bindings call)
    "history-call": ("one `history()` call for everything", None),
    "history-schedd": ("`/v1/history/DEFAULT`, streamed, through the schedd query", "/v1/history/DEFAULT"),
    "history-file": ("`/v1/history/DEFAULT`, streamed, from the history file", "/v1/history/DEFAULT"),
    "queue-call": ("one `query()` call for the whole queue", None),
    "queue-daemon": ("`/v1/jobs/DEFAULT`, id windows, streamed", "/v1/jobs/DEFAULT"),
}


def measure(app: Any, url: str | None, call: Callable[[], Sequence[Any]] | None = None) -> dict[str, Any]:
    """Peak RSS growth (above the RSS before), first byte and total time of one GET of `url`
    through `app`, its body read chunk by chunk; or of one bindings `call` (url None), whose
    first byte is when its list returns."""
    _reset_peak()
    base = _rss_kib()
    started = time.perf_counter()
    first: float | None = None

    def arrived() -> None:
        nonlocal first
        first = time.perf_counter() - started

    answer: Sequence[Any] = ()
    if url is None:
        assert call is not None
        answer = call()  # kept until the figures are taken, as a caller would keep it
        arrived()
        size = len(answer)
    else:
        size = serve(app, url, arrived)[1]
    return {"growth_kib": _rss_kib("VmHWM") - base, "first_s": first,
            "total_s": time.perf_counter() - started, "size": size}


def _memory_child(mode: str, count: int, out: Any) -> None:
    import gc
    import tempfile

    texts = history_texts(count)
    folder = None
    backend: Any
    if mode == "history-file":
        folder = Path(tempfile.mkdtemp(prefix="restd-bench-"))
        write_history_file(texts, folder / "history")
        backend = LocalHistory(folder / "history")
    else:
        backend = WireSchedd(texts)
    del texts
    app = make_app(Settings(max_jobs=0, query_timeout=3600, cache_ttl=0), backend, isolate=False)
    gc.collect()
    url = MEMORY_MODES[mode][1]
    if url is None:
        def call() -> Sequence[Any]:
            return backend.history(None, "true", [], -1) if mode == "history-call" \
                else backend.jobs(None, "true", [], -1)
        out.put({"mode": mode, **measure(app, None, call)})
    else:
        out.put({"mode": mode, **measure(app, url)})
    app.queries.close()
    if folder is not None:
        for leftover in folder.iterdir():
            leftover.unlink()
        folder.rmdir()


def memory_bench(count: int = 100_000, modes: Sequence[str] = tuple(MEMORY_MODES)) -> dict[str, dict[str, Any]]:
    """Peak RSS growth and time to first byte: one bindings call against the daemon's answers,
    each in a fresh process."""
    results = {}
    for mode in modes:
        # a fresh interpreter each: a forked child would reuse the parent's freed heap and
        # under-count its own growth
        context = multiprocessing.get_context("spawn")
        queue: Any = context.Queue()
        child = context.Process(target=_memory_child, args=(mode, count, queue))
        child.start()
        results[mode] = queue.get(timeout=3600)
        child.join(60)
    return results


def _timed_page(client: Client, depth: int, params: dict[str, Any]) -> dict[str, Any]:
    """Best of three for one history page; checks that it starts `depth` records in."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        r = client.get("/v1/history/DEFAULT", params)
        best = min(best, time.perf_counter() - started)
    ids = [j["jobid"] for j in r.json()]
    assert ids[0] == f"{500_000 - depth // 10}.{depth % 10}", (depth, ids[:2])
    return {"depth": depth, "seconds": best, "records": len(ids)}


def page_depth_bench(count: int = 100_000, depths: Sequence[int] = (0, 10_000, 100_000 - 100),
                     size: int = 100) -> list[dict[str, Any]]:
    """The cost of one 100-record history page at several depths, cursor from the page before."""
    schedd = WireSchedd(history_texts(count))
    client = Client(make_app(Settings(max_jobs=0, query_timeout=3600, cache_ttl=0), schedd, isolate=False))
    rows = []
    for depth in depths:
        # the cursor a client holds after reading `depth` records
        cursor = None
        if depth:
            data = json.dumps({"v": 1, "s": "history", "a": "500000.0", "n": depth}, separators=(",", ":"))
            cursor = __import__("base64").urlsafe_b64encode(data.encode()).decode().rstrip("=")
        rows.append(_timed_page(client, depth, {"limit": size, **({"cursor": cursor} if cursor else {})}))
    client.app.queries.close()  # type: ignore[attr-defined]
    return rows


def file_page_depth_bench(count: int = 100_000, depths: Sequence[int] = (0, 10_000, 100_000 - 100),
                          size: int = 100) -> list[dict[str, Any]]:
    """The same pages read straight from the schedd's history file by byte offset (the daemon on
    the schedd's host): the cursor of the page before is followed, as a client would."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="restd-bench-"))
    path = folder / "history"
    write_history_file(history_texts(count), path)
    client = Client(make_app(Settings(max_jobs=0, query_timeout=3600, cache_ttl=0), LocalHistory(path), isolate=False))
    rows = []
    for depth in depths:
        params: dict[str, Any] = {"limit": size}
        if depth:  # the cursor of the page that ends just before `depth`
            before = client.get("/v1/history/DEFAULT", {"limit": depth})
            link = before.headers["link"].split(";")[0].strip("<>")
            params = dict(__import__("urllib.parse").parse.parse_qsl(link.split("?", 1)[1]))
            params["limit"] = str(size)
        rows.append(_timed_page(client, depth, params))
    client.app.queries.close()  # type: ignore[attr-defined]
    for leftover in folder.iterdir():
        leftover.unlink()
    folder.rmdir()
    return rows


def single_flight_bench(clients: int = 64) -> dict[str, Any]:
    """64 identical concurrent requests: how many upstream queries reach the schedd."""
    schedd = WireSchedd(history_texts(2_000))
    slow = threading.Event()

    class Slow(WireSchedd):
        def history(self, *args: Any, **kwargs: Any) -> list[Any]:
            slow.wait(0.5)
            return super().history(*args, **kwargs)

    slow_schedd = Slow.__new__(Slow)
    slow_schedd.__dict__.update(schedd.__dict__)
    client = Client(make_app(Settings(max_jobs=5_000, cache_ttl=0, query_timeout=60), slow_schedd, isolate=False))
    statuses: list[int] = []
    threads = [threading.Thread(target=lambda: statuses.append(
        client.get("/v1/history/DEFAULT", {"constraint": 'Owner == "bob"'}).status)) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    client.app.queries.close()  # type: ignore[attr-defined]
    return {"clients": clients, "ok": statuses.count(200), "upstream_queries": slow_schedd.calls}


if __name__ == "__main__":
    print(single_flight_bench())
    print(page_depth_bench(20_000, (0, 10_000, 19_900)))
    print(file_page_depth_bench(20_000, (0, 10_000, 19_900)))
    print(memory_bench(20_000))
