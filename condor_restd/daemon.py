"""The daemon's life under condor_master: start-up checks, the listener, signals, keepalives, privileges."""

from __future__ import annotations

import errno
import logging
import os
import pwd
import queue
import re
import signal
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import FrameType
from typing import Any, Callable, NoReturn, Protocol

import cherrypy

from . import __version__, condor, preflight
from .condor import Condor
from .errors import ConfigError
from .logs import DaemonLog, append_error
from .server import LISTEN_BACKLOG, Server, TLSAdapter
from .settings import (
    DEFAULT_NOT_RESPONDING_TIMEOUT,
    Settings,
    keepalive_interval,
    log_path,
)
from .web import make_app

log = logging.getLogger("condor_restd.daemon")

SUBSYSTEM = "RESTD"
# What must be done before the process ends (it ends with os._exit, which skips atexit).
EXIT_HOOKS: list[Callable[[], None]] = []
EXIT_OK = 0
EXIT_FAILED = 1  # condor_master restarts the daemon after its back-off
EXIT_NO_LOG = 44  # HTCondor's status for "could not open the daemon log"
EXIT_CONFIG = 99  # condor_master: "daemon will not restart automatically"
HANDLED_SIGNALS = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
MAX_REQUEST_HEADER_BYTES = 65536  # request line and headers; the app's own URL limit is lower
MAX_REQUEST_BODY_BYTES = 65536  # a read-only API reads no bodies
TICK = 1.0  # how often the main loop looks at the listener when no signal comes


class Fatal(Exception):
    """The daemon cannot go on; `code` is its exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


# ------------------------------------------------------------------------------ configuration

def load_settings(config: Mapping[str, Any], port: int | None = None, demo: bool = False) -> Settings:
    """Settings from the config, with --port applied. --demo logs to stderr unless RESTD_LOG is
    set, and acts on jobs (JobPrio editable) unless RESTD_ACTIONS and RESTD_EDIT_ATTRIBUTES are."""
    settings = Settings.from_config(config)
    if port is not None:
        settings = settings.replace(port=port)
    if demo and config.get("RESTD_LOG") is None:
        settings = settings.replace(log="")
    if demo and config.get("RESTD_ACTIONS") is None:  # the demo pool acts, as its demo users
        settings = settings.replace(actions=True)
    if demo and config.get("RESTD_EDIT_ATTRIBUTES") is None:
        settings = settings.replace(edit_attributes=frozenset({"jobprio"}))
    return settings


def under_master(environ: Mapping[str, str]) -> bool:
    """Whether condor_master started us, so that it expects a ready state and keepalives."""
    return bool(environ.get("CONDOR_INHERIT"))


def os_errno(error: BaseException) -> int | None:
    """The errno behind an error: cheroot raises a bare OSError("No socket could be created")
    and keeps the bind's own error as its cause."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno is not None:
            return current.errno
        current = current.__cause__ or current.__context__
    return None


def _url(address: tuple[str, int], tls: bool = False) -> str:
    host, port = address
    if ":" in host:
        host = f"[{host}]"  # IPv6
    return f"{'https' if tls else 'http'}://{host}:{port}/v1"


def _changes(old: Settings, new: Settings) -> str:
    before, after = dict(old.describe()), dict(new.describe())
    changed = [f"{k}: {before[k]!r} -> {after[k]!r}" for k in after if before.get(k) != after[k]]
    return "; ".join(changed) or "no RESTD_* value changed"


# --------------------------------------------------------------------------------- privileges

class PrivilegeError(Exception):
    """Running as root, and no way to become the HTCondor user."""


@dataclass(frozen=True)
class Identity:
    uid: int
    gid: int
    name: str | None


@dataclass(frozen=True)
class PrivOps:
    """The os/pwd calls a privilege switch makes; tests pass fakes."""

    geteuid: Callable[[], int] = os.geteuid
    getpwnam: Callable[[str], Any] = pwd.getpwnam
    getpwuid: Callable[[int], Any] = pwd.getpwuid
    initgroups: Callable[[str, int], None] = os.initgroups
    setgroups: Callable[[list[int]], None] = os.setgroups
    setgid: Callable[[int], None] = os.setgid
    setuid: Callable[[int], None] = os.setuid


def condor_identity(config: Mapping[str, Any], environ: Mapping[str, str], ops: PrivOps) -> Identity:
    """The HTCondor user: CONDOR_IDS (environment, then config) as uid.gid, else the condor account."""
    raw = environ.get("CONDOR_IDS") or config.get("CONDOR_IDS")
    if raw:
        match = re.fullmatch(r"\s*([0-9]+)\.([0-9]+)\s*", str(raw))
        if not match:
            raise ConfigError("CONDOR_IDS", raw, "expected uid.gid, like 999.995")
        uid, gid = int(match.group(1)), int(match.group(2))
        try:
            name: str | None = ops.getpwuid(uid).pw_name
        except KeyError:
            name = None
    else:
        try:
            entry = ops.getpwnam("condor")
        except KeyError:
            raise PrivilegeError("CONDOR_IDS is not set and there is no 'condor' account") from None
        uid, gid, name = entry.pw_uid, entry.pw_gid, "condor"
    if uid == 0:
        raise PrivilegeError(f"CONDOR_IDS = {raw!r} names root")
    return Identity(uid, gid, name)


def drop_privileges(config: Mapping[str, Any], environ: Mapping[str, str],
                    ops: PrivOps = PrivOps()) -> Identity | None:
    """Become the HTCondor user if running as root (None if not root); PrivilegeError if that fails."""
    if ops.geteuid() != 0:
        return None
    who = condor_identity(config, environ, ops)
    try:
        if who.name:
            ops.initgroups(who.name, who.gid)
        else:
            ops.setgroups([who.gid])
        ops.setgid(who.gid)
        ops.setuid(who.uid)
    except OSError as exc:
        raise PrivilegeError(f"cannot switch to uid {who.uid}, gid {who.gid}: {exc}") from None
    if ops.geteuid() == 0:
        raise PrivilegeError(f"still root after switching to uid {who.uid}")
    return who


# ------------------------------------------------------------------------------------------ TLS

def tls_adapter(settings: Settings) -> TLSAdapter | None:
    """cheroot's TLS adapter for RESTD_SSL_CERTFILE and RESTD_SSL_KEYFILE (None: plain HTTP).

    Reads the files as the daemon's user; ConfigError names the knob and the file that fails."""
    context = preflight.tls_context(settings)
    if context is None:
        return None
    adapter = TLSAdapter(settings.ssl_certfile, settings.ssl_keyfile)
    adapter.context = context
    return adapter


def tls_state(settings: Settings) -> tuple[Any, ...]:
    """The TLS files, and which file on disk each is and when it changed: a reload that finds
    any of it different loads them again (a renewed certificate under the same name, too)."""
    state = []
    for path in (settings.ssl_certfile, settings.ssl_keyfile):
        try:
            info = os.stat(path) if path else None
        except OSError:
            info = None
        state.append((path, info and (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)))
    return tuple(state)


# ----------------------------------------------------------------------------------- listener

class Listening(Protocol):
    """What the daemon needs from a listener (a cheroot server in production, a fake in tests)."""

    def start(self) -> None: ...

    @property
    def address(self) -> tuple[str, int]: ...

    def alive(self) -> bool: ...

    def set_app(self, app: Any) -> None: ...

    def set_threads(self, threads: int) -> None: ...

    def set_header_timeout(self, seconds: float) -> None: ...

    def set_tls(self, settings: Settings) -> None: ...

    def stop(self, timeout: float) -> threading.Thread: ...


class Listener:
    """One cheroot server: binds in start(), serves in a thread, stops within a bound."""

    def __init__(self, settings: Settings, app: Any) -> None:
        # Past the threads, a queue as long as the pool; a request that finds it full gets a
        # 503 at once instead of piling up behind the busy threads. Connections are accepted
        # as they come (a long listen backlog: a burst of them is not made to retry its SYN)
        # and wait for their request heads without a thread (see server.py).
        self.server = Server((settings.address, settings.port), app, numthreads=settings.threads,
                             server_name="condor_restd", request_queue_size=LISTEN_BACKLOG,
                             accepted_queue_size=settings.threads,
                             accepted_queue_timeout=0.05)  # type: ignore[arg-type]  # float works
        self.server.header_timeout = settings.header_timeout
        self.server.max_request_header_size = MAX_REQUEST_HEADER_BYTES
        self.server.max_request_body_size = MAX_REQUEST_BODY_BYTES
        self.server.ssl_adapter = tls_adapter(settings)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        try:
            self.server.prepare()
        except OSError as exc:
            if exc.errno is None and exc.__cause__ is None and self.server.bind_error is not None:
                raise exc from self.server.bind_error  # the errno (EADDRINUSE: retry) is there
            raise
        self._thread = threading.Thread(target=self._serve, name="restd-listener", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            self.server.serve()
        except Exception:
            log.exception("the listener failed")

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server.bind_addr[:2]
        return str(host), int(port)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and bool(self.server.ready)

    def set_app(self, app: Any) -> None:
        self.server.wsgi_app = app  # read afresh by every request

    def set_tls(self, settings: Settings) -> None:
        """New TLS files (or none) for the connections accepted from now on; ConfigError keeps the old."""
        self.server.ssl_adapter = tls_adapter(settings)

    def set_threads(self, threads: int) -> None:
        pool = self.server.requests
        old, pool.min = pool.min, threads
        if threads > old:
            pool.grow(threads - old)
        elif threads < old:
            pool.shrink(old - threads)

    def set_header_timeout(self, seconds: float) -> None:
        self.server.header_timeout = seconds  # for the request heads awaited from now on

    def stop(self, timeout: float) -> threading.Thread:
        """Close the socket, let requests finish for `timeout` s; the returned thread ends when done."""
        self.server.shutdown_timeout = timeout
        stopper = threading.Thread(target=self.server.stop, name="restd-stop", daemon=True)
        stopper.start()
        return stopper


# ------------------------------------------------------------------------------------- daemon

class Daemon:
    """The main loop: signals arrive on a queue; keepalives go to condor_master between them."""

    def __init__(self, settings: Settings, *, build_app: Callable[[Settings], Any],
                 reload: Callable[[], Settings], master: bool = False,
                 keepalive: float = DEFAULT_NOT_RESPONDING_TIMEOUT / 3,
                 daemon_log: DaemonLog | None = None,
                 listener: Callable[[Settings, Any], Listening] = Listener) -> None:
        self.settings = settings
        self.build_app = build_app
        self.reload = reload
        self.master = master
        self.keepalive = keepalive
        self.daemon_log = daemon_log
        self.new_listener = listener
        self.signals: queue.SimpleQueue[int] = queue.SimpleQueue()
        self.listener: Listening | None = None
        self.app: Any = None
        self._tls: tuple[Any, ...] = ()
        self._retired: list[tuple[float, Any]] = []  # old apps, closed once their requests are done

    def handle_signal(self, signum: int, frame: FrameType | None = None) -> None:
        self.signals.put(signum)  # SimpleQueue.put is safe in a signal handler

    def run(self) -> int:
        """Listen, then serve until a signal says stop; the exit status. Fatal if it cannot start."""
        self.app = self.build_app(self.settings)
        try:
            self.listener = self._listen(self.settings, self.app)
        except ConfigError as exc:
            raise Fatal(f"configuration error: {exc}", EXIT_CONFIG) from None
        except OSError as exc:
            code = EXIT_FAILED if os_errno(exc) == errno.EADDRINUSE else EXIT_CONFIG
            raise Fatal(f"cannot listen on {self.settings.address} port {self.settings.port} "
                        f"(RESTD_ADDRESS, RESTD_PORT): {exc}", code) from None
        self._tls = tls_state(self.settings)
        log.info("listening on %s", _url(self.listener.address, bool(self.settings.ssl_certfile)))
        if self.master:
            self._tell_master("set_ready_state", "Ready")
        next_alive = time.monotonic()
        while True:
            if not self.listener.alive():
                log.error("the listener stopped; exiting so that condor_master restarts the daemon")
                return EXIT_FAILED
            now = time.monotonic()
            if self.master and now >= next_alive:
                self._tell_master("send_alive")
                next_alive = now + self.keepalive
            self._close_retired(now)
            wait = min(TICK, max(next_alive - now, 0.0)) if self.master else TICK
            try:
                signum = self.signals.get(timeout=wait)
            except queue.Empty:
                continue
            if signum == signal.SIGHUP:
                self.reconfigure()
            elif signum in (signal.SIGTERM, signal.SIGINT):
                return self.shutdown(signal.Signals(signum).name)
            elif signum == signal.SIGQUIT:
                log.info("SIGQUIT: fast shutdown")
                return EXIT_OK

    def _listen(self, settings: Settings, app: Any) -> Listening:
        preflight.check_address(settings)
        listener = self.new_listener(settings, app)
        listener.start()
        return listener

    def _tell_master(self, call: str, *args: Any) -> None:
        try:
            getattr(condor, call)(*args)
        except Exception as exc:  # the master being away must not take the daemon down
            log.warning("%s to condor_master failed: %s", call, exc)
        else:
            log.debug("%s sent to condor_master", call)

    def reconfigure(self) -> None:
        """SIGHUP: re-read the config; apply it if it is good, else keep what runs and say why."""
        log.info("SIGHUP: re-reading the configuration")
        old = self.settings
        try:
            new = self.reload()
        except ConfigError as exc:
            log.error("keeping the current configuration: %s = %r: %s", exc.knob, exc.value, exc.reason)
            return
        except Exception as exc:
            log.error("keeping the current configuration: re-reading it failed: %s", exc)
            return
        if self.daemon_log is not None:
            try:
                self.daemon_log.apply(new)
            except OSError as exc:
                log.error("keeping the current configuration: cannot open RESTD_LOG = %r: %s", new.log, exc)
                return
        app = self.build_app(new)
        assert self.listener is not None
        if (new.address, new.port) != (old.address, old.port):
            try:
                listener = self._listen(new, app)
            except (ConfigError, OSError) as exc:
                log.error("keeping the current configuration: cannot listen on %s port %d: %s",
                          new.address, new.port, exc)
                self._restore_log(old)
                app.queries.close()
                return
            self.listener.stop(old.shutdown_timeout)  # finishes its requests in the background
            self.listener = listener
            log.info("listening on %s", _url(listener.address, bool(new.ssl_certfile)))
        else:
            if tls_state(new) != self._tls:
                try:
                    self.listener.set_tls(new)
                except ConfigError as exc:
                    log.error("keeping the current configuration: %s = %r: %s", exc.knob, exc.value,
                              exc.reason)
                    self._restore_log(old)
                    app.queries.close()
                    return
                log.info("TLS files (re)loaded: now serving %s", _url(self.listener.address,
                                                                      bool(new.ssl_certfile)))
            self.listener.set_app(app)
            self.listener.set_threads(new.threads)
            self.listener.set_header_timeout(new.header_timeout)
        self._tls = tls_state(new)
        self.app.queries.drain()  # its workers go as their calls end; the new app forks its own
        self._retired.append((time.monotonic() + old.query_timeout + old.shutdown_timeout, self.app))
        self.app, self.settings = app, new
        log.info("configuration reloaded: %s", _changes(old, new))

    def _restore_log(self, settings: Settings) -> None:
        if self.daemon_log is not None:
            try:
                self.daemon_log.apply(settings)
            except OSError as exc:
                log.error("cannot return to RESTD_LOG = %r: %s", settings.log, exc)

    def _close_retired(self, now: float) -> None:
        while self._retired and self._retired[0][0] <= now:
            self._retired.pop(0)[1].queries.close()

    def shutdown(self, why: str) -> int:
        """Stop accepting, give in-flight requests RESTD_SHUTDOWN_TIMEOUT, then exit 0 (SIGQUIT: now)."""
        timeout = self.settings.shutdown_timeout
        log.info("%s: shutting down; requests in progress get up to %g s to finish", why, timeout)
        assert self.listener is not None
        stopper = self.listener.stop(timeout)
        deadline = time.monotonic() + timeout + 1.0
        while stopper.is_alive():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.warning("requests still running after %g s (RESTD_SHUTDOWN_TIMEOUT); exiting anyway",
                            timeout)
                break
            try:
                if self.signals.get(timeout=min(remaining, 0.2)) == signal.SIGQUIT:
                    log.info("SIGQUIT: fast shutdown")
                    break
            except queue.Empty:
                pass
        for _, app in self._retired:
            app.queries.close()
        self.app.queries.close()
        return EXIT_OK


def install_signal_handlers(daemon: Daemon) -> None:
    for signum in HANDLED_SIGNALS:
        signal.signal(signum, daemon.handle_signal)


# ------------------------------------------------------------------------------------ start-up

def _complain(message: str, config: Mapping[str, Any], demo: bool, root: bool) -> None:
    """A fatal start-up problem: to stderr, and to the daemon log if that can be done safely."""
    print(f"condor_restd: {message}", file=sys.stderr)
    path = "" if demo and config.get("RESTD_LOG") is None else log_path(config)
    if not path or (root and not os.path.exists(path)):
        return  # never create a root-owned daemon log
    append_error(path, message)


def serve(*, demo: bool, port: int | None, make_backend: Callable[[], Condor],
          environ: Mapping[str, str] = os.environ, ops: PrivOps = PrivOps()) -> int:
    """Run the daemon. Returns only a start-up failure's status; after serving, the process exits."""
    condor.set_subsystem(SUBSYSTEM)
    config = condor.param()
    root = ops.geteuid() == 0
    try:
        settings = load_settings(config, port, demo)
    except ConfigError as exc:
        _complain(f"configuration error: {exc}; fix it, then condor_on -daemon {SUBSYSTEM}",
                  config, demo, root)
        return EXIT_CONFIG
    if root and not demo:
        try:
            drop_privileges(config, environ, ops)
        except (PrivilegeError, ConfigError) as exc:
            _complain(f"refusing to serve as root: {exc}. Set RESTD_USERID = condor (or CONDOR_IDS), "
                      "or start condor_restd as the HTCondor user", config, demo, root)
            return EXIT_CONFIG
    cherrypy.log.screen = False  # CherryPy's logs go to the daemon log, nowhere else
    problem = preflight.log_problem(settings)  # what --check-config says too
    if problem is None:
        try:
            daemon_log = DaemonLog.open(settings)
        except OSError as exc:
            problem = preflight.log_error(settings, exc)
    if problem is not None:
        print(f"condor_restd: {problem}", file=sys.stderr)
        return EXIT_NO_LOG
    log.info("*" * 54)
    log.info("** condor_restd %s (%s) STARTING UP", __version__, SUBSYSTEM)
    log.info("** PID = %d, uid = %d, bindings: %s", os.getpid(), ops.geteuid(), condor.version())
    log.info("*" * 54)
    if demo:
        log.info("serving the built-in demo pool (--demo), not a real one")
        log.info("to act as a demo user (alice, bob, condoruser), get a token with "
                 "`condor_restd --demo-token alice` and send it as `Authorization: Bearer TOKEN`")
        if root:
            log.warning("running as root; allowed only because --demo serves no real data")
    for name, value in settings.describe():
        log.debug("%s = %s", name, value)

    def build_app(current: Settings) -> Any:
        return make_app(current, make_backend())

    def reload() -> Settings:
        condor.reload_config()
        return load_settings(condor.param(), port, demo)

    daemon = Daemon(settings, build_app=build_app, reload=reload, master=under_master(environ),
                    keepalive=keepalive_interval(config), daemon_log=daemon_log)
    install_signal_handlers(daemon)
    try:
        code = daemon.run()
    except Fatal as exc:
        log.error("%s", exc.message)
        print(f"condor_restd: {exc.message}", file=sys.stderr)
        code = exc.code
    except Exception:
        log.exception("unexpected error; exiting")
        code = EXIT_FAILED
    log.info("**** condor_restd (%s) pid %d EXITING WITH STATUS %d", SUBSYSTEM, os.getpid(), code)
    _exit(code)


def _exit(code: int) -> NoReturn:
    """Exit now: worker threads stuck in a slow query must not hold the process past its deadline."""
    for hook in EXIT_HOOKS:
        hook()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
