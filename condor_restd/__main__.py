"""The condor_restd command: the daemon condor_master runs, a demo on the built-in pool, or a config check."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, Callable

from . import __version__, condor, daemon
from .condor import Ad, Condor
from .demo import DemoPool
from .errors import ConfigError

# Seconds each demo jobs/history query is held, so that tests can keep a request in flight.
# Honoured with --demo only; the real adapter never looks at it.
DEMO_DELAY_ENV = "CONDOR_RESTD_DEMO_DELAY"


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="condor_restd", description=__doc__,
        epilog="Settings are HTCondor configuration (RESTD_* knobs, read with htcondor2.param); "
               "see docs/configuration.md. Exit status 99: a configuration error "
               "(condor_master does not restart the daemon); 44: the daemon log cannot be opened.")
    parser.add_argument("--version", action="version",
                        version=f"condor_restd {__version__} ({condor.version()})")
    parser.add_argument("--demo", action="store_true",
                        help="serve the built-in demo pool instead of the real one")
    parser.add_argument("--port", type=_port, metavar="N", help="port to listen on (overrides RESTD_PORT)")
    parser.add_argument("--check-config", action="store_true",
                        help="print the effective settings and exit; non-zero if they are not valid")
    return parser


def check_config(port: int | None, demo: bool) -> int:
    condor.set_subsystem(daemon.SUBSYSTEM)
    try:
        settings = daemon.load_settings(condor.param(), port, demo)
    except ConfigError as exc:
        print(f"condor_restd: configuration error: {exc}", file=sys.stderr)
        return daemon.EXIT_CONFIG
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
    """The --demo backend: one pool for the daemon's life (its ads never change)."""
    delay = float(environ.get(DEMO_DELAY_ENV) or 0)
    pool = SlowDemoPool(delay) if delay > 0 else DemoPool()
    return lambda: pool


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.check_config:
        return check_config(args.port, args.demo)
    make_backend: Callable[[], Condor] = demo_backend() if args.demo else condor.HTCondor
    return daemon.serve(demo=args.demo, port=args.port, make_backend=make_backend)


if __name__ == "__main__":
    sys.exit(main())
