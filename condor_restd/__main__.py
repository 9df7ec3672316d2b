"""The condor_restd command: the daemon condor_master runs, or a demo on the built-in pool."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cheroot import wsgi

from . import __version__
from .condor import Condor
from .settings import Settings
from .web import make_app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="condor_restd", description=__doc__)
    parser.add_argument("--version", action="version", version=f"condor_restd {__version__}")
    parser.add_argument("--demo", action="store_true", help="serve the built-in demo pool")
    parser.add_argument("--port", type=int, help="port to listen on (overrides RESTD_PORT)")
    args = parser.parse_args(argv)

    backend: Condor
    if args.demo:
        from .demo import DemoPool

        settings = Settings()
        backend = DemoPool()
    else:
        from . import condor

        settings = Settings.from_config(condor.param())
        backend = condor.HTCondor()
    if args.port is not None:
        settings = settings.replace(port=args.port)
    server = wsgi.Server((settings.address, settings.port), make_app(settings, backend),
                         numthreads=settings.threads)
    print(f"condor_restd {__version__} serving on http://{settings.address}:{settings.port}/v1",
          file=sys.stderr)
    try:
        server.safe_start()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
