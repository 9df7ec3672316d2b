"""The condor_restd command and daemon: CLI, start-up checks, privileges, logs, the master handshake,
SIGHUP/SIGTERM/SIGQUIT in-process with a fake listener, and the real daemon as a subprocess."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import pytest

from condor_restd import __main__ as cli
from condor_restd import __version__, commands, condor, daemon
from condor_restd.daemon import Daemon, Fatal, PrivilegeError, PrivOps
from condor_restd.demo import DemoPool
from condor_restd.errors import ConfigError
from condor_restd.logs import CondorFormatter, CondorLogHandler, DaemonLog
from condor_restd.settings import Settings

LOG_LINE = re.compile(r"^\d\d/\d\d/\d\d \d\d:\d\d:\d\d ")  # HTCondor's daemon log format
DEFAULT_SCHEDD_JOBS = 14  # jobs in the demo pool's default schedd


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def subsystems(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """condor.set_subsystem is recorded, not called."""
    calls: list[str] = []
    monkeypatch.setattr(condor, "set_subsystem", calls.append)
    return calls


@pytest.fixture
def fake_config(monkeypatch: pytest.MonkeyPatch, subsystems: list[str]) -> dict[str, Any]:
    """condor.param() answers from this dict."""
    config: dict[str, Any] = {}
    monkeypatch.setattr(condor, "param", lambda: config)
    return config


# ---------------------------------------------------------------------------------- the CLI

def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--version", "--demo", "--port", "--check-config"):
        assert option in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert f"condor_restd {__version__}" in out
    assert condor.BINDINGS in out
    assert "; compiled helper)" in out  # the README's install builds it


@pytest.mark.parametrize("port", ["http", "-1", "65536"])
def test_a_bad_port_option_is_a_usage_error(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--port", port, "--check-config"])
    assert info.value.code == 2
    assert "port" in capsys.readouterr().err


def test_check_config_prints_the_effective_settings(fake_config: dict[str, Any], subsystems: list[str],
                                                    capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path) -> None:
    fake_config.update(RESTD_MAX_JOBS="50", LOG=str(tmp_path), RESTD_PORT="9000")
    assert cli.main(["--check-config", "--port", "9100"]) == 0
    out = capsys.readouterr().out
    assert "RESTD_MAX_JOBS = 50\n" in out
    assert "RESTD_PORT = 9100\n" in out  # --port overrides RESTD_PORT
    assert "RESTD_ADDRESS = 127.0.0.1\n" in out
    assert f"RESTD_LOG = {tmp_path}/RestdLog\n" in out
    assert subsystems == ["RESTD"]


def test_check_config_in_demo_mode_logs_to_stderr_unless_restd_log_is_set(
        fake_config: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    fake_config.update(LOG="/var/log/condor")
    assert cli.main(["--check-config", "--demo"]) == 0
    assert "RESTD_LOG = STDERR\n" in capsys.readouterr().out
    fake_config.update(RESTD_LOG="/tmp/RestdLog")
    assert cli.main(["--check-config", "--demo"]) == 0
    assert "RESTD_LOG = /tmp/RestdLog\n" in capsys.readouterr().out


def test_check_config_with_a_bad_value_fails_naming_knob_and_value(
        fake_config: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    fake_config.update(RESTD_MAX_JOBS="lots")
    assert cli.main(["--check-config"]) == daemon.EXIT_CONFIG
    captured = capsys.readouterr()
    assert "RESTD_MAX_JOBS" in captured.err and "'lots'" in captured.err
    assert captured.out == ""


@pytest.mark.parametrize("args", [[], ["--demo"]])
def test_bad_config_at_start_exits_99_naming_knob_and_value(
        args: list[str], fake_config: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    fake_config.update(RESTD_PORT="http")
    assert cli.main(args) == 99  # condor_master: "daemon will not restart automatically"
    err = capsys.readouterr().err
    assert "RESTD_PORT" in err and "'http'" in err


def test_bad_config_is_also_written_to_an_existing_daemon_log(
        tmp_path: Path, fake_config: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    log_file = tmp_path / "RestdLog"
    log_file.write_text("")
    fake_config.update(RESTD_LOG=str(log_file), RESTD_THREADS="0")
    assert daemon.serve(demo=False, port=None, make_backend=DemoPool, ops=fake_ops(uid=1000)) == 99
    text = log_file.read_text()
    assert LOG_LINE.match(text) and "RESTD_THREADS = '0'" in text


def test_an_unopenable_daemon_log_exits_44(fake_config: dict[str, Any], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    fake_config.update(RESTD_LOG=str(tmp_path / "no" / "such" / "dir" / "RestdLog"))
    assert daemon.serve(demo=False, port=None, make_backend=DemoPool, ops=fake_ops(uid=1000)) == 44
    assert "RestdLog" in capsys.readouterr().err


def test_demo_backend_is_one_pool_and_slow_only_when_asked() -> None:
    make = commands.demo_backend({})
    assert type(make()) is DemoPool and make() is make()
    slow = commands.demo_backend({commands.DEMO_DELAY_ENV: "0.01"})()
    assert isinstance(slow, commands.SlowDemoPool)
    assert len(slow.jobs(None, "true", [], 0)) == DEFAULT_SCHEDD_JOBS


# ------------------------------------------------------------------------ settings at start-up

def test_load_settings_applies_port_and_demo_logging() -> None:
    config = {"LOG": "/var/log/condor", "RESTD_PORT": "9000"}
    assert daemon.load_settings(config).port == 9000
    assert daemon.load_settings(config, port=0).port == 0
    assert daemon.load_settings(config).log == "/var/log/condor/RestdLog"
    assert daemon.load_settings(config, demo=True).log == ""
    assert daemon.load_settings({**config, "RESTD_LOG": "/x/RestdLog"}, demo=True).log == "/x/RestdLog"


def test_the_demo_acts_unless_configured_not_to() -> None:
    config = {"LOG": "/var/log/condor"}
    assert not daemon.load_settings(config).actions
    demo = daemon.load_settings(config, demo=True)
    assert demo.actions and demo.edit_attributes == frozenset({"jobprio"})
    quiet = daemon.load_settings({**config, "RESTD_ACTIONS": "false", "RESTD_EDIT_ATTRIBUTES": "Nice_User"},
                                 demo=True)
    assert not quiet.actions and quiet.edit_attributes == frozenset({"nice_user"})


def test_under_master_needs_condor_inherit() -> None:
    assert daemon.under_master({"CONDOR_INHERIT": "1234 <127.0.0.1:9618?addrs=...>"})
    assert not daemon.under_master({})
    assert not daemon.under_master({"CONDOR_INHERIT": ""})


@pytest.mark.parametrize(("config", "interval"), [
    ({}, 1200.0),
    ({"NOT_RESPONDING_TIMEOUT": 3600}, 1200.0),
    ({"NOT_RESPONDING_TIMEOUT": "600"}, 200.0),
    ({"RESTD_NOT_RESPONDING_TIMEOUT": "30", "NOT_RESPONDING_TIMEOUT": 3600}, 10.0),
    ({"NOT_RESPONDING_TIMEOUT": "x"}, 1200.0),
    ({"NOT_RESPONDING_TIMEOUT": 1}, 1.0),
])
def test_keepalives_go_three_times_per_not_responding_timeout(config: dict[str, Any],
                                                              interval: float) -> None:
    assert daemon.keepalive_interval(config) == interval


# ---------------------------------------------------------------------------------- privileges

class FakeOS:
    """Records the privilege calls; setuid changes the effective uid as the kernel would."""

    def __init__(self, euid: int = 0, accounts: dict[str, tuple[int, int]] | None = None,
                 fail: str | None = None, setuid_works: bool = True) -> None:
        self.euid = euid
        self.accounts = {"condor": (999, 995)} if accounts is None else accounts
        self.fail = fail
        self.setuid_works = setuid_works
        self.calls: list[tuple[Any, ...]] = []

    def _record(self, name: str, *args: Any) -> None:
        self.calls.append((name, *args))
        if name == self.fail:
            raise PermissionError(1, "Operation not permitted")

    def getpwnam(self, name: str) -> Any:
        if name not in self.accounts:
            raise KeyError(name)
        uid, gid = self.accounts[name]
        return SimpleNamespace(pw_name=name, pw_uid=uid, pw_gid=gid)

    def getpwuid(self, uid: int) -> Any:
        for name, (u, g) in self.accounts.items():
            if u == uid:
                return SimpleNamespace(pw_name=name, pw_uid=u, pw_gid=g)
        raise KeyError(uid)

    def setuid(self, uid: int) -> None:
        self._record("setuid", uid)
        if self.setuid_works:
            self.euid = uid

    def ops(self) -> PrivOps:
        return PrivOps(geteuid=lambda: self.euid, getpwnam=self.getpwnam, getpwuid=self.getpwuid,
                       initgroups=lambda name, gid: self._record("initgroups", name, gid),
                       setgroups=lambda gids: self._record("setgroups", gids),
                       setgid=lambda gid: self._record("setgid", gid), setuid=self.setuid)


def fake_ops(uid: int) -> PrivOps:
    return FakeOS(euid=uid).ops()


def test_not_root_changes_nothing() -> None:
    fake = FakeOS(euid=1000)
    assert daemon.drop_privileges({"CONDOR_IDS": "999.995"}, {}, fake.ops()) is None
    assert fake.calls == []


def test_root_switches_to_condor_ids_from_the_config() -> None:
    fake = FakeOS()
    who = daemon.drop_privileges({"CONDOR_IDS": "999.995"}, {}, fake.ops())
    assert who == daemon.Identity(999, 995, "condor")
    assert fake.calls == [("initgroups", "condor", 995), ("setgid", 995), ("setuid", 999)]
    assert fake.euid == 999


def test_condor_ids_in_the_environment_wins_as_in_htcondor() -> None:
    fake = FakeOS(accounts={"condor": (999, 995), "htc": (501, 502)})
    daemon.drop_privileges({"CONDOR_IDS": "999.995"}, {"CONDOR_IDS": "501.502"}, fake.ops())
    assert fake.calls[-1] == ("setuid", 501)


def test_root_without_condor_ids_uses_the_condor_account() -> None:
    fake = FakeOS()
    assert daemon.drop_privileges({}, {}, fake.ops()) == daemon.Identity(999, 995, "condor")
    assert fake.euid == 999


def test_ids_without_an_account_get_just_their_group() -> None:
    fake = FakeOS(accounts={})
    daemon.drop_privileges({"CONDOR_IDS": "4000.4001"}, {}, fake.ops())
    assert fake.calls == [("setgroups", [4001]), ("setgid", 4001), ("setuid", 4000)]


def test_root_without_condor_ids_or_account_refuses() -> None:
    fake = FakeOS(accounts={})
    with pytest.raises(PrivilegeError, match="no 'condor' account"):
        daemon.drop_privileges({}, {}, fake.ops())
    assert fake.calls == []


def test_bad_condor_ids_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        daemon.drop_privileges({"CONDOR_IDS": "condor"}, {}, FakeOS().ops())
    assert info.value.knob == "CONDOR_IDS" and info.value.value == "condor"


def test_condor_ids_naming_root_refuses() -> None:
    with pytest.raises(PrivilegeError, match="root"):
        daemon.drop_privileges({"CONDOR_IDS": "0.0"}, {}, FakeOS().ops())


@pytest.mark.parametrize("failing", ["initgroups", "setgid", "setuid"])
def test_a_failing_switch_refuses(failing: str) -> None:
    with pytest.raises(PrivilegeError, match="cannot switch"):
        daemon.drop_privileges({}, {}, FakeOS(fail=failing).ops())


def test_still_root_after_switching_refuses() -> None:
    with pytest.raises(PrivilegeError, match="still root"):
        daemon.drop_privileges({}, {}, FakeOS(setuid_works=False).ops())


def test_serve_as_root_refuses_with_99_when_it_cannot_switch(
        fake_config: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeOS(accounts={})
    assert daemon.serve(demo=False, port=None, make_backend=DemoPool, environ={}, ops=fake.ops()) == 99
    err = capsys.readouterr().err
    assert "refusing to serve as root" in err and "RESTD_USERID" in err


def test_serve_switches_user_before_opening_the_log(
        fake_config: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeOS()
    fake_config.update(RESTD_LOG=str(tmp_path / "missing" / "RestdLog"))  # fails: stop before serving
    assert daemon.serve(demo=False, port=None, make_backend=DemoPool, environ={}, ops=fake.ops()) == 44
    assert fake.calls[-1] == ("setuid", 999)


def test_demo_as_root_does_not_switch(fake_config: dict[str, Any], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeOS()
    fake_config.update(RESTD_LOG=str(tmp_path / "missing" / "RestdLog"))
    assert daemon.serve(demo=True, port=None, make_backend=DemoPool, environ={}, ops=fake.ops()) == 44
    assert fake.calls == []


# ---------------------------------------------------------------------------------------- logs

def record(message: str, level: int = logging.INFO, name: str = "condor_restd.test",
           exc_info: Any = None) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, None, exc_info)


def test_the_log_format_is_htcondors() -> None:
    line = CondorFormatter().format(record("hello"))
    assert re.fullmatch(r"\d\d/\d\d/\d\d \d\d:\d\d:\d\d hello", line)
    assert CondorFormatter().format(record("careful", logging.WARNING)).endswith(" WARNING: careful")
    assert CondorFormatter().format(record("bad", logging.ERROR)).endswith(" ERROR: bad")


def test_every_line_of_a_traceback_carries_the_time() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        text = CondorFormatter().format(record("failed", logging.ERROR, exc_info=sys.exc_info()))
    lines = text.splitlines()
    assert len(lines) > 2 and all(LOG_LINE.match(line) for line in lines)
    assert "ValueError: boom" in lines[-1]


def test_cherrypys_own_timestamp_is_dropped() -> None:
    line = CondorFormatter().format(record("[25/Nov/2026:07:38:56]  ENGINE hello", name="cherrypy.error.1"))
    assert line.endswith(" ENGINE hello") and "Nov/2026" not in line


def test_the_log_rotates_to_old_like_htcondor(tmp_path: Path) -> None:
    path = tmp_path / "RestdLog"
    handler = CondorLogHandler(str(path), max_bytes=400, max_num=1)
    handler.setFormatter(CondorFormatter())
    for i in range(30):
        handler.emit(record(f"line {i:02d} " + "x" * 20))
    handler.close()
    old = tmp_path / "RestdLog.old"
    assert old.exists() and path.stat().st_size <= 400
    assert "Saving log file to" in old.read_text().splitlines()[-1]
    assert "line 29" in path.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["RestdLog", "RestdLog.old"]


def test_with_several_rotations_the_oldest_go(tmp_path: Path) -> None:
    path = tmp_path / "RestdLog"
    for name in ("RestdLog.old", "RestdLog.20200101T000000", "RestdLog.20200102T000000",
                 "RestdLog.20200103T000000", "OtherLog.old"):
        (tmp_path / name).write_text("old\n")
    handler = CondorLogHandler(str(path), max_bytes=100, max_num=3)
    handler.setFormatter(CondorFormatter())
    for i in range(5):
        handler.emit(record(f"line {i} " + "y" * 40))
    handler.close()
    rotated = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("RestdLog."))
    assert len(rotated) == 3
    assert "RestdLog.old" not in rotated and "RestdLog.20200101T000000" not in rotated
    assert (tmp_path / "OtherLog.old").exists()


def test_no_rotation_when_max_is_zero(tmp_path: Path) -> None:
    handler = CondorLogHandler(str(tmp_path / "RestdLog"), max_bytes=0)
    handler.setFormatter(CondorFormatter())
    for i in range(50):
        handler.emit(record(f"line {i}"))
    handler.close()
    assert [p.name for p in tmp_path.iterdir()] == ["RestdLog"]


@pytest.fixture
def daemon_log_cleanup() -> Iterator[list[DaemonLog]]:
    logs: list[DaemonLog] = []
    yield logs
    for log in logs:
        log.close()
    logging.getLogger("condor_restd").setLevel(logging.NOTSET)


def test_the_daemon_log_collects_ours_and_cherrypys(tmp_path: Path,
                                                    daemon_log_cleanup: list[DaemonLog]) -> None:
    path = tmp_path / "RestdLog"
    log = DaemonLog.open(Settings(log=str(path)))
    daemon_log_cleanup.append(log)
    logging.getLogger("condor_restd.x").info("ours")
    logging.getLogger("condor_restd.x").debug("hidden")
    logging.getLogger("cherrypy.access.123").info("an access line")
    logging.getLogger("cherrypy.error.123").error("an error line")
    text = path.read_text()
    assert "ours" in text and "an access line" in text and "ERROR: an error line" in text
    assert "hidden" not in text
    assert all(LOG_LINE.match(line) for line in text.splitlines())


def test_sighup_settings_change_the_daemon_log(tmp_path: Path,
                                               daemon_log_cleanup: list[DaemonLog]) -> None:
    first, second = tmp_path / "A", tmp_path / "B"
    log = DaemonLog.open(Settings(log=str(first)))
    daemon_log_cleanup.append(log)
    log.apply(Settings(log=str(first), debug=("D_FULLDEBUG",), max_log=5000, max_num_log=2))
    logging.getLogger("condor_restd.x").debug("now visible")
    assert "now visible" in first.read_text()
    assert isinstance(log.handler, CondorLogHandler) and log.handler.max_bytes == 5000
    log.apply(Settings(log=str(second)))
    logging.getLogger("condor_restd.x").info("in the new file")
    assert "in the new file" in second.read_text() and "in the new file" not in first.read_text()
    with pytest.raises(OSError):
        log.apply(Settings(log=str(tmp_path / "missing" / "C")))
    logging.getLogger("condor_restd.x").info("still here")
    assert "still here" in second.read_text()


# ------------------------------------------------------- the daemon in-process, with a fake listener

class FakeApp:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.queries = SimpleNamespace(closed=False, drained=False)
        self.queries.close = lambda: setattr(self.queries, "closed", True)
        self.queries.drain = lambda: setattr(self.queries, "drained", True)


class FakeListener:
    """Stands in for the cheroot server: no sockets."""

    def __init__(self, world: World, settings: Settings, app: Any) -> None:
        self.world = world
        self.settings = settings
        self.app = app
        self.threads = settings.threads
        self.running = False
        self.stopped_with: float | None = None

    def start(self) -> None:
        if self.settings.port in self.world.busy_ports:
            raise OSError(98, "Address already in use")
        self.running = True
        self.world.events.append(("listening", self.settings.port))

    @property
    def address(self) -> tuple[str, int]:
        return self.settings.address, self.settings.port or 45678

    def alive(self) -> bool:
        return self.running and not self.world.listener_died

    def set_app(self, app: Any) -> None:
        self.app = app

    def set_threads(self, threads: int) -> None:
        self.threads = threads

    def set_header_timeout(self, seconds: float) -> None:
        self.header_timeout = seconds

    def stop(self, timeout: float) -> threading.Thread:
        self.stopped_with = timeout
        self.running = False
        stopper = threading.Thread(target=self.world.stop_done.wait, daemon=True)
        stopper.start()
        return stopper


class World:
    """A daemon under test, its fake listeners and what it told the master."""

    def __init__(self, settings: Settings, master: bool = False, keepalive: float = 0.02) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.listeners: list[FakeListener] = []
        self.busy_ports: set[int] = set()
        self.listener_died = False
        self.stop_done = threading.Event()
        self.stop_done.set()
        self.next_settings: Any = settings
        self.daemon = Daemon(settings, build_app=FakeApp, reload=self._reload, master=master,
                             keepalive=keepalive, listener=self._listener)
        self.thread: threading.Thread | None = None
        self.result: list[Any] = []
        self.reconfigured = threading.Event()
        reconfigure = self.daemon.reconfigure

        def reconfigure_and_tell() -> None:
            reconfigure()
            self.reconfigured.set()

        self.daemon.reconfigure = reconfigure_and_tell  # type: ignore[method-assign]

    def _reload(self) -> Settings:
        if isinstance(self.next_settings, Exception):
            raise self.next_settings
        settings: Settings = self.next_settings
        return settings

    def _listener(self, settings: Settings, app: Any) -> FakeListener:
        listener = FakeListener(self, settings, app)
        self.listeners.append(listener)
        return listener

    def start(self) -> World:
        def run() -> None:
            try:
                self.result.append(self.daemon.run())
            except Fatal as exc:
                self.result.append(exc)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        wait_until(lambda: (self.listeners and self.listeners[0].running) or self.result, what="listening")
        return self

    def send(self, signum: int) -> None:
        self.daemon.signals.put(signum)

    def finish(self, timeout: float = 10.0) -> Any:
        assert self.thread is not None
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the daemon did not stop"
        return self.result[0]

    def hup(self) -> None:
        self.reconfigured.clear()
        self.send(signal.SIGHUP)
        assert self.reconfigured.wait(10), "SIGHUP was not handled"


@pytest.fixture
def master_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """The bindings' master calls, stubbed at the seam (condor.set_ready_state / condor.send_alive)."""
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(condor, "set_ready_state", lambda state="Ready": calls.append(("ready", state)))
    monkeypatch.setattr(condor, "send_alive", lambda *args: calls.append(("alive",)))
    return calls


def test_under_the_master_ready_once_listening_then_keepalives(
        master_calls: list[tuple[Any, ...]]) -> None:
    world = World(Settings(port=0), master=daemon.under_master({"CONDOR_INHERIT": "1 <x>"})).start()
    wait_until(lambda: master_calls.count(("alive",)) >= 3, what="three keepalives")
    world.send(signal.SIGTERM)
    assert world.finish() == 0
    assert master_calls[0] == ("ready", "Ready")
    assert master_calls.count(("ready", "Ready")) == 1
    assert world.listeners[0].running is False  # stopped by SIGTERM
    assert world.events[0] == ("listening", 0)  # listening came before the ready state


def test_without_the_master_no_ready_state_and_no_keepalives(
        master_calls: list[tuple[Any, ...]]) -> None:
    world = World(Settings(), master=daemon.under_master({}), keepalive=0.01).start()
    time.sleep(0.3)
    world.send(signal.SIGTERM)
    assert world.finish() == 0
    assert master_calls == []


def test_a_failing_master_call_is_logged_not_fatal(monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    def unreachable(*args: Any) -> None:
        raise RuntimeError("CONDOR_INHERIT not in environment.")

    alive: list[int] = []
    monkeypatch.setattr(condor, "set_ready_state", unreachable)
    monkeypatch.setattr(condor, "send_alive", lambda: alive.append(1))
    with caplog.at_level(logging.WARNING, logger="condor_restd"):
        world = World(Settings(), master=True).start()
        wait_until(lambda: len(alive) >= 2, what="keepalives after a failed ready state")
        world.send(signal.SIGTERM)
        assert world.finish() == 0
    assert "set_ready_state to condor_master failed" in caplog.text


def test_sighup_applies_a_good_config_keeping_the_listener(caplog: pytest.LogCaptureFixture) -> None:
    world = World(Settings(max_jobs=20, threads=4)).start()
    first_app = world.listeners[0].app
    world.next_settings = Settings(max_jobs=5, threads=8)
    with caplog.at_level(logging.INFO, logger="condor_restd"):
        world.hup()
    listener = world.listeners[0]
    assert len(world.listeners) == 1  # the same socket
    assert listener.app is not first_app and listener.app.settings.max_jobs == 5
    assert listener.threads == 8
    assert world.daemon.settings.max_jobs == 5
    assert "RESTD_MAX_JOBS: '20' -> '5'" in caplog.text
    world.send(signal.SIGTERM)
    assert world.finish() == 0
    assert first_app.queries.closed and listener.app.queries.closed


def test_sighup_with_a_bad_config_keeps_the_old_one_and_says_why(
        caplog: pytest.LogCaptureFixture) -> None:
    world = World(Settings(max_jobs=20)).start()
    app = world.listeners[0].app
    world.next_settings = ConfigError("RESTD_MAX_JOBS", "lots", "expected a whole number")
    with caplog.at_level(logging.INFO, logger="condor_restd"):
        world.hup()
    assert world.listeners[0].app is app and world.daemon.settings.max_jobs == 20
    assert "keeping the current configuration: RESTD_MAX_JOBS = 'lots'" in caplog.text
    world.send(signal.SIGTERM)
    assert world.finish() == 0


def test_sighup_with_a_new_port_moves_the_listener() -> None:
    world = World(Settings(port=9680)).start()
    world.next_settings = Settings(port=9681)
    world.hup()
    old, new = world.listeners
    assert old.stopped_with is not None and not old.running
    assert new.running and new.settings.port == 9681
    world.send(signal.SIGTERM)
    assert world.finish() == 0


def test_sighup_with_a_port_in_use_keeps_the_old_listener(caplog: pytest.LogCaptureFixture) -> None:
    world = World(Settings(port=9680)).start()
    world.busy_ports.add(9681)
    world.next_settings = Settings(port=9681)
    with caplog.at_level(logging.INFO, logger="condor_restd"):
        world.hup()
    assert world.listeners[0].running and world.daemon.settings.port == 9680
    assert "cannot listen on 127.0.0.1 port 9681" in caplog.text
    world.send(signal.SIGTERM)
    assert world.finish() == 0


def test_sigterm_waits_for_the_listener_within_the_shutdown_timeout() -> None:
    world = World(Settings(shutdown_timeout=0.2)).start()
    world.stop_done.clear()  # a request that never finishes
    started = time.monotonic()
    world.send(signal.SIGTERM)
    assert world.finish() == 0
    assert 0.2 <= time.monotonic() - started < 3.0
    assert world.listeners[0].stopped_with == 0.2


def test_sigquit_during_a_graceful_shutdown_ends_it() -> None:
    world = World(Settings(shutdown_timeout=60)).start()
    world.stop_done.clear()
    started = time.monotonic()
    world.send(signal.SIGTERM)
    time.sleep(0.3)
    world.send(signal.SIGQUIT)
    assert world.finish() == 0
    assert time.monotonic() - started < 3.0


def test_sigquit_exits_at_once() -> None:
    world = World(Settings(shutdown_timeout=60)).start()
    world.stop_done.clear()
    world.send(signal.SIGQUIT)
    assert world.finish(timeout=3) == 0
    assert world.listeners[0].stopped_with is None  # no graceful stop


def test_a_dead_listener_makes_the_daemon_exit_for_a_restart() -> None:
    world = World(Settings()).start()
    world.listener_died = True
    assert world.finish() == daemon.EXIT_FAILED


def test_a_port_in_use_at_start_is_retried_by_the_master() -> None:
    world = World(Settings(port=9680))
    world.busy_ports.add(9680)
    world.start()
    error = world.finish()
    assert isinstance(error, Fatal) and error.code == daemon.EXIT_FAILED
    assert "RESTD_PORT" in error.message


def test_a_port_a_real_socket_holds_exits_1_for_the_master_to_retry() -> None:
    """cheroot's error has no errno of its own; the bind's EADDRINUSE is its cause."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        runner = Daemon(Settings(port=port), build_app=FakeApp, reload=Settings)
        with pytest.raises(Fatal) as info:
            runner.run()
    assert info.value.code == daemon.EXIT_FAILED, info.value.message
    assert f"port {port}" in info.value.message and "RESTD_PORT" in info.value.message


def test_the_errno_is_found_behind_wrapping_errors() -> None:
    def raised(make: Callable[[], BaseException]) -> BaseException:
        try:
            make()
        except BaseException as exc:
            return exc
        raise AssertionError

    def wrapped() -> None:
        try:
            raise OSError(98, "Address already in use")
        except OSError as exc:
            raise OSError("No socket could be created") from exc

    def implicit() -> None:
        try:
            raise OSError(98, "Address already in use")
        except OSError:
            raise RuntimeError("bind failed")  # noqa: B904 (the OSError is its __context__)

    assert daemon.os_errno(raised(wrapped)) == 98
    assert daemon.os_errno(raised(implicit)) == 98
    assert daemon.os_errno(OSError("no errno at all")) is None


def test_an_unresolvable_address_at_start_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_such_host(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    world = World(Settings(address="no-such-host.example")).start()
    error = world.finish()
    assert isinstance(error, Fatal) and error.code == 99
    assert "RESTD_ADDRESS" in error.message and "no-such-host.example" in error.message


def test_signal_handlers_hand_signals_to_the_main_loop() -> None:
    world = World(Settings())
    world.daemon.handle_signal(signal.SIGHUP, None)
    assert world.daemon.signals.get_nowait() == signal.SIGHUP


# ------------------------------------------------------------------- the real daemon, as a subprocess

class RunningDaemon:
    """`python -m condor_restd --demo --port 0` with its own CONDOR_CONFIG and _CONDOR_ variables."""

    def __init__(self, tmp_path: Path, config: dict[str, str], env: dict[str, str] | None = None) -> None:
        self.tmp_path = tmp_path
        self.config_file = tmp_path / "condor_config"
        self.log_file = tmp_path / "log" / "RestdLog"
        self.log_file.parent.mkdir()
        self.config = {"LOG": str(self.log_file.parent), "RESTD_LOG": "$(LOG)/RestdLog", **config}
        self.write_config()
        environ = {k: v for k, v in os.environ.items()
                   if not k.startswith("_CONDOR_") and k not in ("CONDOR_CONFIG", "CONDOR_INHERIT",
                                                                  commands.DEMO_DELAY_ENV)}
        environ.update({"CONDOR_CONFIG": str(self.config_file), "_CONDOR_RESTD_ADDRESS": "127.0.0.1",
                        **(env or {})})
        self.stderr = open(tmp_path / "stderr", "w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "condor_restd", "--demo", "--port", "0"],
                                     env=environ, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self.stderr)
        self.port = 0

    def write_config(self) -> None:
        self.config_file.write_text("".join(f"{k} = {v}\n" for k, v in self.config.items()))

    def log(self) -> str:
        return self.log_file.read_text() if self.log_file.exists() else ""

    def wait_for_log(self, pattern: str, count: int = 1, timeout: float = 20.0) -> re.Match[str]:
        def found() -> re.Match[str] | None:
            matches = list(re.finditer(pattern, self.log()))
            if len(matches) >= count:
                return matches[count - 1]
            if self.proc.poll() is not None:
                raise AssertionError(f"the daemon exited ({self.proc.returncode}):\n{self.log()}"
                                     f"{self.stderr_text()}")
            return None

        match: re.Match[str] = wait_until(found, timeout, what=f"{pattern!r} in the log")
        return match

    def stderr_text(self) -> str:
        self.stderr.flush()
        return (self.tmp_path / "stderr").read_text()

    def listening(self) -> RunningDaemon:
        self.port = int(self.wait_for_log(r"listening on http://127\.0\.0\.1:(\d+)/v1").group(1))
        return self

    def get(self, path: str, timeout: float = 20.0) -> tuple[int, Any]:
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 20.0) -> int:
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.stderr.close()


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[Callable[..., RunningDaemon]]:
    started: list[RunningDaemon] = []

    def start(config: dict[str, str] | None = None, env: dict[str, str] | None = None) -> RunningDaemon:
        running = RunningDaemon(tmp_path, config or {}, env)
        started.append(running)
        return running

    yield start
    for running in started:
        running.close()


def job_count(running: RunningDaemon) -> int:
    status, body = running.get("/v1/jobs/DEFAULT?projection=Owner")
    assert status == 200
    return len(body)


@pytest.mark.slow
def test_daemon_serves_reloads_on_sighup_and_logs_like_htcondor(
        start_daemon: Callable[..., RunningDaemon]) -> None:
    running = start_daemon({"RESTD_MAX_JOBS": "20", "RESTD_PORT": "1", "RESTD_THREADS": "4"},
                           env={"_CONDOR_RESTD_HIDE_JOB_ATTRS": "Environment"}).listening()
    assert running.port not in (0, 1, 9680)  # --port wins over RESTD_PORT
    status, body = running.get("/v1")
    assert status == 200 and body["version"] == __version__
    assert job_count(running) == DEFAULT_SCHEDD_JOBS
    assert running.get("/v1/jobs/DEFAULT/18/0/Environment") == (200, "<REDACTED>")  # _CONDOR_ env

    running.config.update(RESTD_MAX_JOBS="5", RESTD_THREADS="6")
    running.write_config()
    running.signal(signal.SIGHUP)
    running.wait_for_log(r"configuration reloaded: RESTD_THREADS: '4' -> '6'; RESTD_MAX_JOBS: '20' -> '5'")
    assert job_count(running) == 5  # same port: the listening socket was kept

    running.config["RESTD_MAX_JOBS"] = "lots"
    running.write_config()
    running.signal(signal.SIGHUP)
    running.wait_for_log(r"ERROR: keeping the current configuration: RESTD_MAX_JOBS = 'lots': "
                         r"expected a whole number")
    assert job_count(running) == 5
    assert running.proc.poll() is None

    running.signal(signal.SIGTERM)
    assert running.wait() == 0
    text = running.log()
    lines = text.splitlines()
    assert lines and all(LOG_LINE.match(line) for line in lines), text
    assert '"GET /v1/jobs/DEFAULT?projection=Owner HTTP/1.1" 200' in text  # CherryPy's access log
    assert "STARTING UP" in text and "EXITING WITH STATUS 0" in text
    assert "get a token with `condor_restd --demo-token alice`" in text  # how to act in the demo
    journals = Path(tempfile.gettempdir()).glob(f"condor-restd-demo-{running.proc.pid}-*")
    assert not list(journals)  # the demo pool's journal went with the daemon
    if os.geteuid() == 0:
        assert "WARNING: running as root; allowed only because --demo" in text


@pytest.mark.slow
def test_sigterm_completes_the_request_in_flight_then_exits_0(
        start_daemon: Callable[..., RunningDaemon]) -> None:
    running = start_daemon({"RESTD_SHUTDOWN_TIMEOUT": "15"}, env={commands.DEMO_DELAY_ENV: "3"}).listening()
    answer: list[Any] = []
    request = threading.Thread(target=lambda: answer.append(running.get("/v1/jobs/DEFAULT?projection=Owner")),
                               daemon=True)
    request.start()
    running.wait_for_log(r"holding a demo jobs query")
    running.signal(signal.SIGTERM)
    running.wait_for_log(r"SIGTERM: shutting down")

    def refused() -> bool:
        try:
            socket.create_connection(("127.0.0.1", running.port), timeout=1).close()
        except OSError:
            return True
        return False

    wait_until(refused, timeout=2.5, what="the listening socket to close")  # while the request runs
    assert request.is_alive()
    assert running.wait() == 0
    request.join(10)
    assert answer and answer[0][0] == 200 and len(answer[0][1]) == DEFAULT_SCHEDD_JOBS


@pytest.mark.slow
def test_sigquit_exits_quickly_even_with_a_request_in_flight(
        start_daemon: Callable[..., RunningDaemon]) -> None:
    running = start_daemon(env={commands.DEMO_DELAY_ENV: "60"}).listening()

    def request() -> None:
        with pytest.raises(OSError):  # the daemon goes away without answering
            running.get("/v1/jobs/DEFAULT", timeout=70)

    threading.Thread(target=request, daemon=True).start()
    running.wait_for_log(r"holding a demo jobs query")
    started = time.monotonic()
    running.signal(signal.SIGQUIT)
    assert running.wait(timeout=10) == 0
    assert time.monotonic() - started < 3.0
    assert "SIGQUIT: fast shutdown" in running.log()


@pytest.mark.slow
def test_a_bad_condor_env_value_stops_the_daemon_with_99(
        start_daemon: Callable[..., RunningDaemon]) -> None:
    running = start_daemon(env={"_CONDOR_RESTD_PORT": "http"})
    assert running.wait() == 99
    err = running.stderr_text()
    assert "RESTD_PORT" in err and "'http'" in err


@pytest.mark.slow
def test_tokens_with_only_the_issuers_set_give_a_running_daemon(
        start_daemon: Callable[..., RunningDaemon]) -> None:
    """RESTD_AUTHENTICATION = TOKEN and RESTD_TOKEN_ISSUERS, nothing else: the default
    RESTD_CORS_ORIGINS = * stays, and the pool URLs ask for a token."""
    running = start_daemon({"RESTD_AUTHENTICATION": "TOKEN",
                            "RESTD_TOKEN_ISSUERS": "https://issuer.example.org"}).listening()
    assert running.get("/healthz") == (200, {"status": "ok"})
    status, body = running.get("/v1/jobs/DEFAULT")
    assert status == 401 and "bearer token" in body["message"]
    running.signal(signal.SIGTERM)
    assert running.wait() == 0


def run_command(args: list[str], env: dict[str, str], tmp_path: Path,
                timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """`python -m condor_restd ...` under a CONDOR_CONFIG of its own and these _CONDOR_ variables."""
    config_file = tmp_path / "condor_config"
    if not config_file.exists():
        config_file.write_text(f"LOG = {tmp_path}\n")
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith("_CONDOR_") and k not in ("CONDOR_CONFIG", "CONDOR_INHERIT")}
    environ.update({"CONDOR_CONFIG": str(config_file), **env})
    return subprocess.run([sys.executable, "-m", "condor_restd", *args], env=environ, text=True,
                          capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.mark.slow
@pytest.mark.parametrize(("env", "status", "words"), [
    ({"_CONDOR_RESTD_LOG": "/nonexistent/restd/RestdLog"}, 44,
     "cannot open the daemon log RESTD_LOG = '/nonexistent/restd/RestdLog': [Errno 2]"),
    ({"_CONDOR_RESTD_ADDRESS": "192.0.2.1"}, 99,  # TEST-NET-1: no host here has it
     "configuration error: RESTD_ADDRESS = '192.0.2.1': is not an address of this host"),
    ({"_CONDOR_RESTD_ADDRESS": "no-such-host.invalid"}, 99,
     "configuration error: RESTD_ADDRESS = 'no-such-host.invalid': cannot be resolved"),
])
def test_check_config_refuses_what_the_daemon_refuses_in_its_words(
        tmp_path: Path, env: dict[str, str], status: int, words: str) -> None:
    """--check-config and the daemon share one check: same message, same exit status."""
    daemon_run = run_command(["--demo", "--port", "0"], env, tmp_path)  # as root too
    check = run_command(["--check-config", "--demo"], env, tmp_path)
    assert daemon_run.returncode == status, daemon_run.stderr
    assert check.returncode == status and check.stdout == ""
    said = [line for line in daemon_run.stderr.splitlines()
            if words in line and line.startswith("condor_restd: ")]  # not the --demo log's lines
    assert said and said[0] in check.stderr.splitlines(), (daemon_run.stderr, check.stderr)


# --------------------------------------------------------------------- without HTCondor's bindings

@pytest.fixture
def no_bindings_env(tmp_path: Path) -> dict[str, str]:
    """PYTHONPATH with stand-ins for htcondor2, htcondor, classad2 and classad whose import fails,
    as on a host where the package was installed without its recommended bindings."""
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name in ("htcondor2", "htcondor", "classad2", "classad"):
        (stubs / f"{name}.py").write_text(f'raise ModuleNotFoundError("No module named {name!r}", '
                                          f"name={name!r})\n")
    return {"PYTHONPATH": os.pathsep.join([str(stubs), str(Path(__file__).resolve().parent.parent)])}


@pytest.mark.slow
def test_without_the_bindings_help_and_version_work(tmp_path: Path,
                                                    no_bindings_env: dict[str, str]) -> None:
    for args in (["--help"], ["--version"]):
        done = run_command(args, no_bindings_env, tmp_path)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done
    done = run_command(["--version"], no_bindings_env, tmp_path)
    assert done.stdout.startswith(f"condor_restd {__version__} (no HTCondor Python bindings: ")
    assert "pip install htcondor" in done.stdout and done.stdout.count("\n") == 1
    assert "--check-config" in run_command(["--help"], no_bindings_env, tmp_path).stdout


@pytest.mark.slow
@pytest.mark.parametrize("args", [[], ["--demo"], ["--check-config"]])
def test_without_the_bindings_the_daemon_says_how_to_install_them_and_exits_99(
        tmp_path: Path, no_bindings_env: dict[str, str], args: list[str]) -> None:
    """99: condor_master does not restart it in a loop. One line, on stderr and in the log."""
    log_file = tmp_path / "RestdLog"
    log_file.write_text("")  # as root (the tests' user here), only a log that exists is written
    done = run_command(args, {**no_bindings_env, "_CONDOR_RESTD_LOG": str(log_file)}, tmp_path)
    assert done.returncode == 99 and done.stdout == ""
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("condor_restd: HTCondor's Python bindings cannot "
                                                   "be imported (No module named 'htcondor2')")
    for words in ("python3 -m pip install htcondor", "python3-condor", "python3-htcondor"):
        assert words in lines[0]
    logged = log_file.read_text().splitlines()
    assert len(logged) == 1 and LOG_LINE.match(logged[0])
    assert "ERROR: HTCondor's Python bindings cannot be imported" in logged[0]


def test_version_is_one_line_however_narrow_the_terminal(monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COLUMNS", "30")
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith(f"condor_restd {__version__} (")
    assert out.rstrip().endswith("compiled helper)")


def daemon_children(running: RunningDaemon) -> set[int]:
    """The daemon's live child processes: its query workers."""
    found = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                fields = open(f"/proc/{name}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == running.proc.pid and fields[0] != "Z":
                found.add(int(name))
    return found


def gone(pids: set[int]) -> bool:
    return not any(os.path.exists(f"/proc/{pid}") and
                   open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
                   for pid in pids if os.path.exists(f"/proc/{pid}"))


@pytest.mark.slow
def test_query_workers_die_with_a_killed_daemon(start_daemon: Callable[..., RunningDaemon]) -> None:
    running = start_daemon({"RESTD_QUERY_WORKERS": "3"}).listening()
    assert job_count(running) == DEFAULT_SCHEDD_JOBS
    workers = daemon_children(running)
    assert workers  # the query ran in a worker process
    running.proc.kill()  # kill -9: no handler runs, condor_master would start a fresh daemon
    running.wait()
    wait_until(lambda: gone(workers), timeout=5, what="the workers to die with the daemon")


@pytest.mark.slow
def test_sighup_brings_new_workers_and_the_old_ones_go(start_daemon: Callable[..., RunningDaemon]) -> None:
    running = start_daemon({"RESTD_MAX_JOBS": "20"}).listening()
    assert job_count(running) == DEFAULT_SCHEDD_JOBS
    old = daemon_children(running)
    running.config["RESTD_MAX_JOBS"] = "5"
    running.write_config()
    running.signal(signal.SIGHUP)
    running.wait_for_log(r"configuration reloaded")
    wait_until(lambda: gone(old), timeout=5, what="the old workers to exit")
    assert job_count(running) == 5  # the new settings, from new workers
    assert daemon_children(running) and not daemon_children(running) & old
    running.signal(signal.SIGTERM)
    assert running.wait() == 0
