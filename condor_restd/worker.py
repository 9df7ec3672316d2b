"""A worker process's own side: become a worker, then answer the front's calls until it hangs up."""

from __future__ import annotations

import ctypes
import os
import pickle
import signal
import stat
from multiprocessing.connection import Connection
from typing import Any

from .condor import Encoded
from .errors import RestdError, Unavailable

PR_SET_PDEATHSIG = 1  # prctl(2): a signal the child gets when the thread that forked it ends
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
PICKLE = pickle.HIGHEST_PROTOCOL


def become_worker(keep: int, parent: int) -> None:
    """A fresh worker: dies with the daemon, ignores the daemon's signals, holds no client socket."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass
    if os.getppid() != parent:  # the daemon died before prctl took effect
        os._exit(0)
    for signum in (signal.SIGTERM, signal.SIGQUIT):
        signal.signal(signum, signal.SIG_DFL)
    for signum in (signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, signal.SIG_IGN)  # the daemon handles these and tells its workers
    # Client connections, the listening socket and other workers' sockets stay the daemon's:
    # a copy here would keep a closed connection open. /dev/null takes their place, so that no
    # number a stale object in this copy of the daemon still holds can be reused.
    null = os.open(os.devnull, os.O_RDWR)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd in (keep, null):
            continue
        try:
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                os.dup2(null, fd)
        except OSError:
            continue


def serve(conn: Connection, encoded: Encoded) -> None:
    """Answer calls until the daemon closes the socket."""
    conn.send_bytes(pickle.dumps(("rss", rss(), rss()), PICKLE))  # the size it starts at
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        method, args = pickle.loads(data)
        try:
            reply: tuple[str, Any] = ("ok", getattr(encoded, method)(*args))
        except RestdError as exc:
            reply = ("error", state(exc))
        except Exception as exc:  # a source must raise RestdError; anything else is an outage
            reply = ("error", state(Unavailable(f"{describe(method, args)} failed: "
                                                 f"{type(exc).__name__}: {exc}")))
        try:
            blob = pickle.dumps((*reply, rss()), PICKLE)
        except Exception as exc:
            blob = pickle.dumps(("error", state(Unavailable(f"cannot send the answer: {exc}")),
                                 rss()), PICKLE)
        conn.send_bytes(blob)


def rss() -> int:
    try:
        with open("/proc/self/statm", "rb") as file:
            return int(file.read().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        return 0


def state(error: RestdError) -> tuple[str, str, dict[str, Any], dict[str, str]]:
    return type(error).__name__, error.message, error.extra, error.headers


def describe(method: str, args: tuple[Any, ...]) -> str:
    shown = ", ".join(_short(a) for a in args if not hasattr(a, "__dataclass_fields__"))
    return f"{method}({shown})"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
