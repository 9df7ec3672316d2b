"""What the condor_restd command runs once HTCondor's bindings are there: the daemon, the demo, the check."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, Callable

from . import condor, daemon, preflight
from .condor import Ad, Condor
from .demo import DemoPool
from .errors import ConfigError

# Seconds each demo jobs/history query is held, so that tests can keep a request in flight.
# Honoured with --demo only; the real adapter never looks at it.
DEMO_DELAY_ENV = "CONDOR_RESTD_DEMO_DELAY"


def check_config(port: int | None, demo: bool) -> int:
    """Print the effective settings, or refuse them as the daemon would: with its message and
    its exit status (99 for a value, 44 for a daemon log that cannot be opened)."""
    condor.set_subsystem(daemon.SUBSYSTEM)
    try:
        settings = daemon.load_settings(condor.param(), port, demo)
        preflight.check_address(settings)
        preflight.tls_context(settings)
    except ConfigError as exc:
        print(f"condor_restd: configuration error: {exc}", file=sys.stderr)
        return daemon.EXIT_CONFIG
    problem = preflight.log_problem(settings)
    if problem is not None:
        print(f"condor_restd: {problem}", file=sys.stderr)
        return daemon.EXIT_NO_LOG
    for name, value in settings.describe():
        print(f"{name} = {value}")
    return daemon.EXIT_OK


class SlowDemoPool(DemoPool):
    """The demo pool with every jobs and history query held for `delay` seconds."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def _hold(self, what: str) -> None:
        logging.getLogger("condor_restd.demo").info(
            "holding a demo %s query for %g s (%s)", what, self.delay, DEMO_DELAY_ENV)
        time.sleep(self.delay)

    def jobs(self, *args: Any, **kwargs: Any) -> Sequence[Ad]:
        self._hold("jobs")
        return super().jobs(*args, **kwargs)

    def history(self, *args: Any, **kwargs: Any) -> Sequence[Ad]:
        self._hold("history")
        return super().history(*args, **kwargs)


def demo_backend(environ: Mapping[str, str] = os.environ) -> Callable[[], Condor]:
    """The --demo backend: one pool for the daemon's life (it changes only when users act)."""
    delay = float(environ.get(DEMO_DELAY_ENV) or 0)
    pool = SlowDemoPool(delay) if delay > 0 else DemoPool()
    daemon.EXIT_HOOKS.append(pool.close)  # its journal of changes goes with the daemon
    return lambda: pool


def run(*, demo: bool, port: int | None, check: bool) -> int:
    """The daemon (or, with `check`, the configuration check) on the real pool or the demo."""
    if check:
        return check_config(port, demo)
    make_backend: Callable[[], Condor] = demo_backend() if demo else condor.HTCondor
    return daemon.serve(demo=demo, port=port, make_backend=make_backend)
