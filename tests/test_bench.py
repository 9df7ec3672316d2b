"""bench/live.py, the battery for a real pool, checked on the demo pool so that it runs when one is there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_live_battery_runs_on_the_demo_pool(tmp_path: Path) -> None:
    out = tmp_path / "live.md"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "live.py"), "--demo", "--repeat", "1",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    for source in ("jobs", "history"):
        for cap in ("0", "10000 (default)"):
            assert f"| {source} | " in text and f" | {cap} | " in text
    assert "| streamed, through the schedd |" in text
    assert "| 0 | " in text.split("by depth")[1]


def test_the_live_battery_needs_only_the_runtime_install(tmp_path: Path) -> None:
    """A pool host has the daemon's dependencies, not the tests': no pytest, no test plugins."""
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name in ("pytest", "_pytest", "requests_mock", "hypothesis", "schemathesis", "selenium",
                 "openapi_spec_validator", "jsonschema"):
        (stubs / f"{name}.py").write_text(f'raise ModuleNotFoundError("No module named {name!r}", '
                                          f"name={name!r})\n")
    out = tmp_path / "live.md"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "live.py"), "--demo", "--repeat", "1",
                           "--out", str(out)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(stubs)}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "| jobs | " in out.read_text()


def test_the_live_battery_says_why_when_no_schedd_answers(tmp_path: Path) -> None:
    out = tmp_path / "live.md"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "live.py"), "--out", str(out)],
                          capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "CONDOR_CONFIG": "/dev/null"})
    assert done.returncode == 0 and "no live schedd to measure" in done.stderr
    assert not out.exists()
