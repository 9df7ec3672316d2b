"""The condor_restd command: the daemon condor_master runs, a demo on the built-in pool, or a config check."""

from __future__ import annotations

import argparse
import importlib
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from . import __version__
from .logs import append_error
from .settings import log_path

EXIT_CONFIG = 99  # as daemon.EXIT_CONFIG: condor_master does not restart the daemon
BINDINGS = ("htcondor2", "classad2", "htcondor", "classad")
INSTALL = ("install them with `python3 -m pip install htcondor`, or the distribution's package "
           "(python3-condor on Enterprise Linux, python3-htcondor on Debian and Ubuntu)")


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return int(text)


def bindings_problem() -> ImportError | None:
    """Why HTCondor's Python bindings cannot be imported (None: they can), trying them as
    condor.py does: htcondor2 and classad2, else the version 1 modules."""
    problem: ImportError | None = None
    for modules in (BINDINGS[:2], BINDINGS[2:]):
        try:
            for name in modules:
                importlib.import_module(name)
        except ImportError as exc:  # missing, or there but broken (a shared library, say)
            problem = problem or exc
            continue
        return None
    return problem


def version_line() -> str:
    """condor_restd's version, and its bindings' (or that they are missing): one line."""
    if bindings_problem() is not None:
        return f"condor_restd {__version__} (no HTCondor Python bindings: {INSTALL})"
    from . import condor
    return " ".join(f"condor_restd {__version__} ({condor.version()})".split())


class _Version(argparse.Action):
    """--version: one line as it is (argparse's own wraps it at the terminal's width), found only
    when asked for, so that the bindings are not needed to print --help."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> NoReturn:
        print(version_line())
        parser.exit()


def _demo_user(text: str) -> str:
    if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}(@localhost)?", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a user name (alice, bob, condoruser)")
    return text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="condor_restd", description=__doc__,
        epilog="Settings are HTCondor configuration (RESTD_* knobs, read with htcondor2.param); "
               "see docs/configuration.md. Exit status 99: a configuration error, or no HTCondor "
               "Python bindings (condor_master does not restart the daemon); 44: the daemon log "
               "cannot be opened; 1: worth retrying (the port is in use).")
    parser.add_argument("--version", action=_Version)
    parser.add_argument("--demo", action="store_true",
                        help="serve the built-in demo pool instead of the real one")
    parser.add_argument("--port", type=_port, metavar="N", help="port to listen on (overrides RESTD_PORT)")
    parser.add_argument("--demo-token", metavar="USER", type=_demo_user,
                        help="print a token of the demo pool's USER (alice, bob, condoruser) and exit")
    parser.add_argument("--check-config", action="store_true",
                        help="print the effective settings and exit; non-zero if they are not valid")
    return parser


def no_bindings(error: ImportError, environ: Mapping[str, str] = os.environ) -> int:
    """Say, in one line, that the bindings are missing and how to install them, on standard
    error and in the daemon log when one can be found; exit 99, so that condor_master does not
    restart the daemon in a loop. --check-config says the same: nothing can run without them."""
    message = (f"HTCondor's Python bindings cannot be imported ({error}); {INSTALL}; then "
               "condor_on -daemon RESTD")
    print(f"condor_restd: {message}", file=sys.stderr)
    path = _log_without_bindings(environ)
    if path and (os.geteuid() != 0 or os.path.exists(path)):  # never a root-owned daemon log
        append_error(path, message)
    return EXIT_CONFIG


def _log_without_bindings(environ: Mapping[str, str]) -> str:
    """RESTD_LOG as far as it can be known without the bindings: from _CONDOR_ variables, else
    from condor_config_val, which every HTCondor host has."""
    config = {k[len("_CONDOR_"):]: v for k, v in environ.items() if k.startswith("_CONDOR_") and v}
    if "RESTD_LOG" not in config and "LOG" not in config:
        for name in ("RESTD_LOG", "LOG"):
            try:
                found = subprocess.run(["condor_config_val", name], capture_output=True, text=True,
                                       timeout=10, check=False)
            except (OSError, subprocess.SubprocessError):
                break
            if found.returncode == 0 and found.stdout.strip():
                config[name] = found.stdout.strip()
                break
    return log_path(config)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.demo_token:  # needs no bindings: a demo token is a JWT signed with the demo key
        from .demoacts import token
        print(token(args.demo_token))
        return 0
    problem = bindings_problem()
    if problem is not None:
        return no_bindings(problem)
    from . import commands
    return commands.run(demo=args.demo, port=args.port, check=args.check_config)


if __name__ == "__main__":
    sys.exit(main())
