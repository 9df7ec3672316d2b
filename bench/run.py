"""Run every benchmark side by side in one process run and write bench/results.md.

Usage: .venv/bin/python bench/run.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import load  # noqa: E402


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}), "
            f"Python {platform.python_version()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs, for a smoke check")
    args = parser.parse_args()
    seconds = 5.0 if args.quick else 20.0

    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    lines = ["# condor_restd benchmarks", "",
             f"- Command: `{' '.join(['.venv/bin/python', 'bench/run.py', *sys.argv[1:]])}`",
             f"- Machine: {machine()}", f"- Run at: {started}",
             "- Absolute times on a shared machine are noise; compare figures within one run.", ""]

    print("load test ...", file=sys.stderr)
    result = load.load_test(clients=16, seconds=seconds)
    growth = result["rss_end_kib"] - result["rss_start_kib"]
    lines += ["## Load: 16 concurrent clients on the demo daemon (loopback)", "",
              f"A mix of {len(load.MIX)} URLs (jobs, history, grouped, status, config, and bad "
              f"requests that must be 4xx), keep-alive connections, {seconds:g} s.", "",
              "| requests | errors | req/s | p50 ms | p99 ms | RSS start MiB | RSS end MiB | growth MiB | alive |",
              "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: |",
              f"| {result['requests']} | {result['errors']} | {result['rps']:.0f} | {result['p50_ms']:.1f} "
              f"| {result['p99_ms']:.1f} | {result['rss_start_kib'] / 1024:.1f} | "
              f"{result['rss_end_kib'] / 1024:.1f} | {growth / 1024:+.1f} | "
              f"{'yes' if result['alive_after'] else 'NO'} |", ""]
    if result["error_samples"]:
        lines += ["Error samples: " + "; ".join(result["error_samples"]), ""]

    print("single-job requests per second ...", file=sys.stderr)
    single = load.single_job_rps(clients=16, seconds=seconds / 2)
    lines += ["## `/v1/jobs/DEFAULT/{c}/{p}`: 16 concurrent clients, loopback", "",
              "| requests | errors | req/s | p50 ms | p99 ms |", "| ---: | ---: | ---: | ---: | ---: |",
              f"| {single['requests']} | {single['errors']} | {single['rps']:.0f} | "
              f"{single['p50_ms']:.1f} | {single['p99_ms']:.1f} |", ""]

    (HERE / "results.md").write_text("\n".join(lines))
    print("\n".join(lines))
    ok = result["errors"] == 0 and single["errors"] == 0 and result["alive_after"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
