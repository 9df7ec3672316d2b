"""Worker processes for pool calls: each runs, and is encoded, in a forked worker; only bytes come back.

The HTCondor bindings do not run in parallel in threads of one process, and a process that
held a big answer keeps its memory. So every pool call goes to one of a few worker processes,
forked from the daemon, each holding its own connection state to the pool. The front process
(HTTP, the answer cache, single flight, metrics) sends a call, waits at most the query timeout,
and gets back Rows or a plain value. A worker past its time is killed, one that dies costs its
call a 503, and one that has served its calls or grown too big is replaced by a fresh one.
"""

from __future__ import annotations

import ctypes
import logging
import os
import pickle
import queue
import signal
import socket
import threading
import time
from concurrent.futures import Future
from multiprocessing.connection import Connection
from typing import Any, Callable

from .condor import Condor, Encoded
from .errors import RestdError, Timeout, Unavailable
from .worker import PICKLE, become_worker, describe, serve

log = logging.getLogger("condor_restd.workers")

START_TIMEOUT = 10.0  # seconds a new worker may take to say it is ready


class Pool:
    """Up to `workers` worker processes running `source`'s calls (see condor.Encoded).

    `call(method, *args)` runs one call in an idle worker (forking one while fewer than
    `workers` are alive), waiting at most `wait` seconds for one to be free; a call past
    `timeout` seconds kills its worker. A worker is replaced after `max_calls` calls, or once
    its memory has grown by more than `max_growth` bytes since it started.
    """

    def __init__(self, source: Condor, *, workers: int, timeout: float, wait: float = 0.25,
                 max_calls: int = 0, max_growth: int = 0) -> None:
        self.source = source
        self.size = workers
        self.timeout = timeout
        self.wait = wait
        self.max_calls = max_calls
        self.max_growth = max_growth
        self._idle: list[_Worker] = []
        self._alive = 0  # idle, busy, and being forked
        self._cond = threading.Condition()
        self._closed = False
        self._draining = False  # every worker exits after its call (an old configuration's pool)
        self._dead: list[int] = []  # pids to reap
        _fixed_mmap_threshold()

    # ------------------------------------------------------------------------- the call

    def call(self, method: str, *args: Any) -> Any:
        """Run `method(*args)` of condor.Encoded in a worker; its value, or the RestdError it raised."""
        worker = self._checkout()
        healthy = False
        try:
            value = worker.run(method, args, self.timeout)
            healthy = True
            return value
        except _Broken as broken:
            raise broken.error from None
        except RestdError:
            healthy = True  # the call failed; the worker is fine
            raise
        finally:
            self._checkin(worker, healthy)

    def _checkout(self) -> _Worker:
        deadline = time.monotonic() + self.wait
        with self._cond:
            self._reap()
            while True:
                if self._closed:
                    raise Unavailable("the daemon is shutting down", retry_after=10)
                if self._idle:
                    return self._idle.pop()
                if self._alive < self.size:
                    self._alive += 1
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise Unavailable("every query worker is busy; try again shortly", retry_after=2)
                self._cond.wait(remaining)
        try:
            return _Worker.fork(self.source)
        except BaseException:
            with self._cond:
                self._alive -= 1
                self._cond.notify()
            raise

    def _checkin(self, worker: _Worker, healthy: bool) -> None:
        why = None
        if not healthy:
            why = "broken"
        elif self._closed or self._draining:
            why = "closed"
        elif self.max_calls and worker.calls >= self.max_calls:
            why = f"served {worker.calls} calls (RESTD_WORKER_MAX_CALLS)"
        elif self.max_growth and worker.rss - worker.start_rss > self.max_growth:
            why = (f"grew by {(worker.rss - worker.start_rss) >> 20} MiB "
                   "(RESTD_WORKER_MAX_GROWTH)")
        with self._cond:
            if why is None:
                self._idle.append(worker)
            else:
                if healthy:
                    log.debug("replacing query worker %d: %s", worker.pid, why)
                worker.retire()
                self._dead.append(worker.pid)
                self._alive -= 1
            self._cond.notify()

    def _reap(self) -> None:
        """Collect workers that have exited (called with the lock held)."""
        still = []
        for pid in self._dead:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                continue
            if not done:
                still.append(pid)
        self._dead = still

    # ----------------------------------------------------------------------- inspection

    def pids(self) -> list[int]:
        """The idle workers' process ids (busy ones are not listed)."""
        with self._cond:
            return [w.pid for w in self._idle]

    def recycle(self) -> None:
        """Replace every idle worker: the next calls fork fresh ones (tests change their pool)."""
        with self._cond:
            for worker in self._idle:
                worker.retire()
                self._dead.append(worker.pid)
                self._alive -= 1
            self._idle = []
            self._cond.notify_all()

    def drain(self) -> None:
        """Keep no worker idle from now on: the idle ones exit now, busy ones after their call.
        Calls still work (a request of an old configuration may still be streaming)."""
        self._draining = True
        self.recycle()

    def close(self, grace: float = 2.0) -> None:
        """No more calls: idle workers exit now, busy ones when their call ends."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            for worker in idle:
                worker.retire()
                self._dead.append(worker.pid)
                self._alive -= 1
            self._cond.notify_all()
            pids = list(self._dead)
        deadline = time.monotonic() + grace
        for pid in pids:
            while True:
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    break
                if done:
                    break
                if time.monotonic() > deadline:
                    _kill(pid)
                    deadline = float("inf")
                    continue
                time.sleep(0.005)
        with self._cond:
            self._dead = [pid for pid in self._dead if pid not in pids]


class Inline:
    """The same calls, encoding and bounds as Pool, run in the calling thread: no process, no
    kill on timeout. For tests that watch their backend, and for the threads-only baseline in
    bench/. Answers still go through pickle, as they would between processes."""

    def __init__(self, source: Condor, *, workers: int, wait: float = 0.25) -> None:
        self.source = source
        self.encoded = Encoded(source)
        self.wait = wait
        self._slots = threading.BoundedSemaphore(workers)

    def call(self, method: str, *args: Any) -> Any:
        if not self._slots.acquire(timeout=self.wait):
            raise Unavailable("every query worker is busy; try again shortly", retry_after=2)
        try:
            try:
                value = getattr(self.encoded, method)(*args)
            except RestdError:
                raise
            except Exception as exc:
                raise Unavailable(f"{describe(method, args)} failed: {type(exc).__name__}: {exc}") \
                    from None
            return pickle.loads(pickle.dumps(value, PICKLE))
        finally:
            self._slots.release()

    def recycle(self) -> None:
        pass

    def drain(self) -> None:
        pass

    def close(self, grace: float = 2.0) -> None:
        pass


class _Broken(Exception):
    def __init__(self, error: RestdError) -> None:
        super().__init__(error.message)
        self.error = error


class _Worker:
    """The front's handle on one worker process: its pid and the socket to it."""

    def __init__(self, pid: int, conn: Connection) -> None:
        self.pid = pid
        self.conn = conn
        self.calls = 0
        self.rss = self.start_rss = 0

    @classmethod
    def fork(cls, source: Condor) -> _Worker:
        front, back = socket.socketpair()
        parent = os.getpid()

        def start() -> int:
            pid = os.fork()
            if pid == 0:  # the worker; it never returns from here
                code = 0
                try:
                    front.close()
                    become_worker(back.fileno(), parent)
                    serve(Connection(back.detach()), Encoded(source))
                except BaseException:
                    code = 1
                finally:
                    os._exit(code)
            return pid

        try:
            pid = _SPAWNER.run(start)
        finally:
            back.close()
        worker = cls(pid, Connection(front.detach()))
        try:  # the worker's first word is its size, once it is ready
            if not worker.conn.poll(START_TIMEOUT):
                raise EOFError
            _, worker.start_rss, worker.rss = pickle.loads(worker.conn.recv_bytes())
        except (EOFError, OSError):
            _kill(pid)
            worker.retire()
            log.error("a new query worker (%d) did not start: %s", pid, _exit_status(pid))
            raise Unavailable("cannot start a query worker; try again", retry_after=2) from None
        return worker

    def run(self, method: str, args: tuple[Any, ...], timeout: float) -> Any:
        what = describe(method, args)
        try:
            self.conn.send_bytes(pickle.dumps((method, args), PICKLE))
            if not self.conn.poll(timeout):
                _kill(self.pid)
                log.warning("query worker %d killed: %s took longer than %g s (RESTD_QUERY_TIMEOUT)",
                            self.pid, what, timeout)
                raise _Broken(Timeout(f"the query took longer than {timeout:g} s "
                                      "(RESTD_QUERY_TIMEOUT)"))
            data = self.conn.recv_bytes()
        except (EOFError, OSError):
            status = _exit_status(self.pid)
            log.error("query worker %d died (%s) while running %s", self.pid, status, what)
            raise _Broken(Unavailable("the query worker died while answering; try again",
                                      retry_after=1)) from None
        self.calls += 1
        kind, value, rss = pickle.loads(data)
        self.rss = rss
        if kind == "ok":
            return value
        raise _rebuild(value)

    def retire(self) -> None:
        try:
            self.conn.close()  # the worker sees EOF and exits
        except OSError:
            pass


def _fixed_mmap_threshold() -> None:
    """Keep big buffers (answers passing through the front) in their own mappings, given back
    when freed. glibc otherwise raises its threshold after the first big free, up to 32 MiB,
    and later answers of that size stay in the heap once freed."""
    try:
        ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        pass


M_MMAP_THRESHOLD = -3  # mallopt(3)
MMAP_THRESHOLD = 256 << 10


def _rebuild(state: tuple[str, str, dict[str, Any], dict[str, str]]) -> RestdError:
    """The error a worker raised, as the same class with the same message, extra and headers."""
    from . import errors
    name, message, extra, headers = state
    cls = getattr(errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, RestdError)):
        cls = RestdError
    error = cls.__new__(cls)
    RestdError.__init__(error, message, **extra)
    error.headers = dict(headers)
    return error


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _exit_status(pid: int) -> str:
    """How a worker ended, waiting a moment for it to be gone."""
    for _ in range(200):
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return "already reaped"
        if done:
            if os.WIFSIGNALED(status):
                return f"killed by signal {os.WTERMSIG(status)}"
            return f"exit status {os.WEXITSTATUS(status)}"
        time.sleep(0.005)
    _kill(pid)
    return "not exiting; killed"


# -------------------------------------------------------------------------- the spawner

class _Spawner:
    """One long-lived thread forks every worker. A worker's PR_SET_PDEATHSIG fires when the
    thread that forked it ends: a request thread may end (the server resizes its pool), this
    one ends only with the daemon, so workers die with the daemon and only then."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], int], Future[int]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._thread = None  # a forked child starts without the thread
        self._jobs = queue.SimpleQueue()
        self._lock = threading.Lock()

    def run(self, fn: Callable[[], int]) -> int:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="restd-spawner", daemon=True)
                self._thread.start()
        done: Future[int] = Future()
        self._jobs.put((fn, done))
        return done.result()

    def _loop(self) -> None:
        while True:
            fn, done = self._jobs.get()
            try:
                done.set_result(fn())
            except BaseException as exc:
                done.set_exception(exc)


_SPAWNER = _Spawner()
