"""The battery against a live pool, for the check on a real schedd, side by side in one run:
/v1/jobs and /v1/history through the real bindings against the printJson floor and the original
daemon's method; the history stream's peak RSS and first byte against one history() call; one
history page by depth.

Usage: .venv/bin/python bench/live.py [--schedd NAME] [--pool HOST] [--repeat N]
Run it where the daemon would run (on the schedd's host, the history file is read too). It
writes bench/live-results.md, or says why not and exits 0 when no schedd answers. --demo runs
it on the built-in demo pool, to check the script itself.
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from big import measure  # noqa: E402
from encode import Timed, _timed_get, best_of, original_method  # noqa: E402
from run import machine  # noqa: E402
from wsgi_client import Client  # noqa: E402

from condor_restd import condor  # noqa: E402
from condor_restd.errors import RestdError  # noqa: E402
from condor_restd.settings import Settings  # noqa: E402
from condor_restd.web import make_app  # noqa: E402


def make_backend(demo: bool, pool: str | None) -> Any:
    if demo:
        from condor_restd.demo import DemoPool
        return DemoPool()
    return condor.HTCondor(pool)


class ThroughSchedd:
    """A backend without the local history file: every history request goes to the schedd."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    def __getattr__(self, name: str) -> Any:
        if name == "history_file":
            raise AttributeError(name)
        return getattr(self.backend, name)


def fetch_all(backend: Any, source: str, schedd: str | None) -> list[Any]:
    """Everything, in one bindings call, as the original daemon asked for it."""
    if source == "jobs":
        return list(backend.jobs(schedd, "true", [], 0))
    return list(backend.history(schedd, "true", [], 0))


def encoding_rows(backend: Any, schedd: str | None, repeat: int) -> list[dict[str, Any]]:
    rows = []
    timed = Timed(ThroughSchedd(backend))
    for source in ("jobs", "history"):
        started = time.perf_counter()
        ads = fetch_all(backend, source, schedd)
        call_s = time.perf_counter() - started
        floor = best_of(lambda ads=ads: [ad.printJson() for ad in ads], repeat)
        original = best_of(lambda ads=ads: original_method(ads), repeat)
        count = len(ads)
        del ads
        for label, settings in (("0", Settings(max_jobs=0, query_timeout=3600, cache_ttl=0)),
                                ("10000 (default)", Settings(query_timeout=3600, cache_ttl=0))):
            app = make_app(settings, timed, isolate=False)
            total, inside = _timed_get(app, timed, f"/v1/{source}/{schedd or 'DEFAULT'}", repeat)
            app.queries.close()
            rows.append({"source": source, "ads": count, "setting": label, "call_s": call_s,
                         "floor_s": floor, "original_s": original, "total_s": total,
                         "inside_s": inside})
    return rows


def _memory_child(mode: str, demo: bool, pool: str | None, schedd: str | None, out: Any) -> None:
    backend = make_backend(demo, pool)
    if mode == "stream-schedd":
        backend = ThroughSchedd(backend)
    app = make_app(Settings(max_jobs=0, query_timeout=3600, cache_ttl=0), backend, isolate=False)
    if mode == "call":
        out.put({"mode": mode, **measure(app, None, lambda: fetch_all(backend, "history", schedd))})
    else:
        out.put({"mode": mode, **measure(app, f"/v1/history/{schedd or 'DEFAULT'}")})
    app.queries.close()


def memory_rows(demo: bool, pool: str | None, schedd: str | None, local_file: bool) -> list[dict[str, Any]]:
    modes = ["call", "stream-schedd", *(["stream-file"] if local_file else [])]
    rows = []
    for mode in modes:
        context = multiprocessing.get_context("spawn")  # fresh processes: see big.memory_bench
        queue: Any = context.Queue()
        child = context.Process(target=_memory_child, args=(mode, demo, pool, schedd, queue))
        child.start()
        rows.append(queue.get(timeout=7200))
        child.join(60)
    return rows


def page_rows(backend: Any, schedd: str | None, count: int, local_file: bool) -> list[dict[str, Any]]:
    """One 100-record page at depths 0, 10000 and the last page: through the schedd (a cursor
    as a client holds it after that many records), and from the history file when it is local."""
    newest = backend.history(schedd, "true", ["ClusterId", "ProcId"], 1)
    if not newest:
        return []
    (cluster, proc), _ = condor.job_id(newest[0])
    url = f"/v1/history/{schedd or 'DEFAULT'}"
    through = Client(make_app(Settings(max_jobs=0, query_timeout=3600, cache_ttl=0), ThroughSchedd(backend), isolate=False))
    local = Client(make_app(Settings(max_jobs=0, query_timeout=3600, cache_ttl=0), backend, isolate=False)) \
        if local_file else None
    rows = []
    for depth in sorted({0, min(10_000, count - 1), max(count - 100, 0)}):
        row: dict[str, Any] = {"depth": depth}
        params: dict[str, Any] = {"limit": 100}
        if depth:
            data = json.dumps({"v": 1, "s": "history", "a": f"{cluster}.{proc}", "n": depth},
                              separators=(",", ":")).encode()
            params["cursor"] = base64.urlsafe_b64encode(data).decode().rstrip("=")
        row["schedd_s"] = best_of(lambda params=params: through.get(url, params), 3)
        ids = [job["jobid"] for job in through.get(url, params).json()]
        if local is not None:
            file_params: dict[str, Any] = {"limit": 100}
            if depth:  # the cursor of the page that ends just before `depth`
                link = local.get(url, {"limit": depth}).headers["link"].split(";")[0].strip("<>")
                file_params = dict(__import__("urllib.parse").parse.parse_qsl(link.split("?", 1)[1]))
                file_params["limit"] = "100"
            row["file_s"] = best_of(lambda p=file_params: local.get(url, p), 3)
            row["same"] = ids == [job["jobid"] for job in local.get(url, file_params).json()]
        rows.append(row)
    for client in (through, local):
        if client is not None:
            client.app.queries.close()  # type: ignore[attr-defined]
    return rows


def report(args: argparse.Namespace, encoding: list[dict[str, Any]], memory: list[dict[str, Any]],
           pages: list[dict[str, Any]]) -> str:
    lines = ["# condor_restd against a live pool", "",
             f"- Command: `.venv/bin/python bench/live.py {' '.join(sys.argv[1:])}`".rstrip(),
             f"- Machine: {machine()}",
             f"- Pool: {'the built-in demo pool' if args.demo else (args.pool or 'the local one')}, "
             f"schedd {args.schedd or 'DEFAULT'}; bindings: {condor.version()}",
             f"- Run at: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}", "",
             "## ClassAd → JSON, end to end in process, through the real bindings", "",
             f"Best of {args.repeat}. *One call*: one bindings call for everything, as the original "
             "daemon made it. *Floor*: `printJson()` on those ads. *Original*: one call plus the "
             "original daemon's method (`json.loads`, lowercase, `json.dumps`). *In the bindings*: "
             "the time our answer spent waiting on the schedd.", "",
             "| source | ads | RESTD_MAX_JOBS | one call s | floor s | original s | ours s | in the bindings s "
             "| ours ÷ floor | (one call + original) ÷ ours |",
             "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in encoding:
        original = row["call_s"] + row["original_s"]
        lines.append(f"| {row['source']} | {row['ads']} | {row['setting']} | {row['call_s']:.3f} | "
                     f"{row['floor_s']:.3f} | {original:.3f} | {row['total_s']:.3f} | "
                     f"{row['inside_s']:.3f} | {row['total_s'] / row['floor_s']:.2f} | "
                     f"{original / row['total_s']:.2f} |")
    single = next(row for row in memory if row["mode"] == "call")
    lines += ["", "## History: peak memory and first byte (RESTD_MAX_JOBS = 0), each in a fresh process", "",
              "| what | peak RSS growth MiB | % of the single call's | first byte s | total s |",
              "| --- | ---: | ---: | ---: | ---: |"]
    labels = {"call": "one `history()` call for everything", "stream-schedd": "streamed, through the schedd",
              "stream-file": "streamed, from the history file"}
    for row in memory:
        lines.append(f"| {labels[row['mode']]} | {row['growth_kib'] / 1024:.0f} | "
                     f"{100 * row['growth_kib'] / max(single['growth_kib'], 1):.1f} | "
                     f"{row['first_s']:.2f} | {row['total_s']:.2f} |")
    lines += ["", "## One 100-record history page by depth", "",
              "*Same records*: both ways gave the same page (new records written meanwhile would "
              "shift it).", "",
              "| depth | through the schedd s | from the history file s | same records |",
              "| ---: | ---: | ---: | :---: |"]
    for row in pages:
        file_s = f"{row['file_s']:.3f}" if "file_s" in row else "not local"
        same = ("yes" if row["same"] else "NO") if "same" in row else ""
        lines.append(f"| {row['depth']} | {row['schedd_s']:.3f} | {file_s} | {same} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--schedd", help="the schedd's name (default: the local one)")
    parser.add_argument("--pool", help="the collector (default: COLLECTOR_HOST)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--demo", action="store_true", help="run on the built-in demo pool")
    parser.add_argument("--out", default=str(HERE / "live-results.md"))
    args = parser.parse_args()
    backend = make_backend(args.demo, args.pool)
    try:
        backend.jobs(args.schedd, "false", ["ClusterId"], 1)
    except RestdError as exc:
        print(f"no live schedd to measure ({exc.message}); nothing written", file=sys.stderr)
        return 0
    local_file = args.schedd is None and getattr(backend, "history_file", lambda _: None)(None) is not None
    print("encoding ...", file=sys.stderr)
    encoding = encoding_rows(backend, args.schedd, args.repeat)
    print("memory and first byte ...", file=sys.stderr)
    memory = memory_rows(args.demo, args.pool, args.schedd, local_file)
    print("pages by depth ...", file=sys.stderr)
    count = next(row["ads"] for row in encoding if row["source"] == "history")
    pages = page_rows(backend, args.schedd, count, local_file)
    text = report(args, encoding, memory, pages)
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
