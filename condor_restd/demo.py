"""The demo pool: the Condor protocol over real ClassAds captured from a real HTCondor 25.14 pool."""

from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import tempfile
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Callable

from . import condor, demoacts
from .condor import Ad
from .errors import BadRequest, NotFound

DATA = Path(__file__).with_name("demo_data")
DEFAULT_SCHEDD = "vm"
SCHEDD_FILES = {"vm": "default", "schedd2@vm": "schedd2"}
# The MyType of the ads each collector query type returns, as a real collector answers them.
MY_TYPES = {
    "startd": ("Machine",), "schedd": ("Scheduler",), "master": ("DaemonMaster",),
    "collector": ("Collector",), "negotiator": ("Negotiator",), "submitter": ("Submitter",),
    "accounting": ("Accounting",), "credd": ("CredD",), "defrag": ("Defrag",),
    "generic": ("Generic",), "grid": ("Grid",), "had": ("HAD",), "license": ("License",),
}
# The capture holds the master's and the schedd's remote view; in a one-host pool the other
# daemons read the same config files as the master.
DAEMON_CONFIG = {"master": "master", "schedd": "schedd", "collector": "master",
                 "negotiator": "master", "startd": "master"}
NOT_DEFINED = condor.NOT_DEFINED
JOURNAL_PREFIX = "condor-restd-demo-"  # + the creating process's pid: a journal's directory


def _read(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


class DemoPool:
    """Two schedds with queue and history, a collector with every ad type, and config.

    Constraints are evaluated and projections taken by the real ClassAd library. Like a real
    schedd, the queue comes back in no particular order (here: newest cluster first).

    Changes (acting: hold, remove, edit, submit...) are lines of a journal file that every
    process sharing it applies before it reads jobs: the acting children write it, the workers
    read it. DemoPool() makes its own journal in a private temporary directory, removed when
    the creating process exits; DemoPool(journal=path) shares an existing one.
    """

    default_schedd = DEFAULT_SCHEDD

    def __init__(self, queues: Mapping[str, Sequence[Ad]] | None = None,
                 histories: Mapping[str, Sequence[Ad]] | None = None,
                 collector: Sequence[Ad] | None = None,
                 config: Mapping[str, Mapping[str, Any]] | None = None,
                 journal: str | None = None) -> None:
        if queues is None:
            queues = {name: list(reversed(condor.parse_ads(_read(f"jobs-{f}.ads"))))
                      for name, f in SCHEDD_FILES.items()}
        if histories is None:
            histories = {name: condor.parse_ads(_read(f"history-{f}.ads"))
                         for name, f in SCHEDD_FILES.items()}
        if collector is None:
            collector = condor.parse_ads(_read("collector.ads"))
        if config is None:
            config = {"static": json.loads(_read("config-static.json")),
                      "master": json.loads(_read("config-master.json")),
                      "schedd": json.loads(_read("config-schedd.json"))}
        self.queues = dict(queues)
        self.histories = dict(histories)
        self.collector = list(collector)
        self._config = {key: dict(values) for key, values in config.items()}
        # schedds are located through the collector, as on a real pool
        self._schedds = {condor.value_of(ad, "Name") for ad in self.collector
                         if condor.value_of(ad, "MyType") == "Scheduler"}
        if journal is None:
            _sweep(tempfile.gettempdir())
            directory = tempfile.mkdtemp(prefix=f"{JOURNAL_PREFIX}{os.getpid()}-")
            journal = os.path.join(directory, "journal")
            open(journal, "xb").close()
            self._remove: Callable[[], Any] = weakref.finalize(
                self, _remove_journal, directory, os.getpid())
        else:
            self._remove = lambda: None
        self.journal = journal
        self._applied = 0  # journal bytes applied
        self._catching_up = threading.Lock()

    def close(self) -> None:
        """Remove the journal this pool made (only in the process that made it)."""
        self._remove()

    def acting_argv(self) -> list[str]:
        """How the acting child (python -m condor_restd.acting) is started for this pool."""
        return ["--demo", self.journal]

    def catch_up(self, locked: bool = False) -> None:
        """Apply the journal lines written since the last call (one stat when there are none)."""
        try:
            size = os.stat(self.journal).st_size
        except OSError:
            return
        if size <= self._applied:
            return
        with self._catching_up:
            ops, self._applied = demoacts.read_ops(self.journal, self._applied, locked)
            for op in ops:
                demoacts.apply_op(self.queues, self.histories, op)

    # --------------------------------------------------------------------- the protocol

    def jobs(self, schedd: str | None, constraint: str, projection: Sequence[str],
             limit: int) -> Sequence[Ad]:
        self.catch_up()
        ads = self.queues[self._schedd(schedd)]
        return self._select(ads, constraint, projection, limit)

    def history(self, schedd: str | None, constraint: str, projection: Sequence[str],
                limit: int, since: str | None = None) -> Sequence[Ad]:
        self.catch_up()
        ads: Iterable[Ad] = self.histories[self._schedd(schedd)]
        if since is not None:
            ads = self._until(ads, since)
        return self._select(ads, constraint, projection, limit)

    def status(self, ad_type: str, constraint: str, projection: Sequence[str]) -> Sequence[Ad]:
        if ad_type not in condor.AD_TYPES:
            raise BadRequest(f"unknown ad type {ad_type!r}")
        ads = self.collector
        if ad_type != "any":
            wanted = MY_TYPES[ad_type]
            ads = [ad for ad in ads if condor.value_of(ad, "MyType") in wanted]
        return self._select(ads, constraint, projection, -1)

    def config(self, daemon: str | None) -> Mapping[str, Any]:
        return {k: v for k, v in self._view(daemon).items() if v != NOT_DEFINED}

    def config_value(self, daemon: str | None, name: str) -> Any:
        view = self._view(daemon)
        value = view.get(name)
        if value is None:
            upper = name.upper()
            value = next((v for k, v in view.items() if k.upper() == upper), None)
        if value is None or value == NOT_DEFINED:
            raise NotFound(f"{name} is not defined in the {daemon or 'local'} configuration")
        return value

    # ----------------------------------------------------------------------- internals

    def _schedd(self, name: str | None) -> str:
        if name is None:
            return DEFAULT_SCHEDD
        if name not in self._schedds or name not in self.queues:
            raise NotFound(f"no schedd named {name!r} is known to the collector")
        return name

    def _view(self, daemon: str | None) -> Mapping[str, Any]:
        if daemon is None:
            return self._config["static"]
        if daemon not in DAEMON_CONFIG:
            raise NotFound(f"no {daemon} is running")
        return self._config[DAEMON_CONFIG[daemon]]

    @staticmethod
    def _select(ads: Iterable[Ad], constraint: str, projection: Sequence[str],
                limit: int) -> list[Ad]:
        expr = condor.check_expression(constraint or "true")
        everything = constraint.strip().lower() in ("", "true")
        out = []
        for ad in ads:
            if everything or condor.matches(expr, ad):
                out.append(condor.project(ad, projection) if projection else ad)
                if 0 < limit <= len(out):
                    break
        return out

    @staticmethod
    def _until(ads: Iterable[Ad], since: str) -> Iterable[Ad]:
        """Newest-first ads up to, not including, the one `since` names (as Schedd.history does)."""
        if re.fullmatch(r"[0-9]+", since):
            since = f"ClusterId == {since}"
        elif re.fullmatch(r"[0-9]+\.[0-9]+", since):
            cluster, proc = since.split(".")
            since = f"ClusterId == {cluster} && ProcId == {proc}"
        stop = condor.check_expression(since)
        for ad in ads:
            if condor.matches(stop, ad):
                return
            yield ad


def _remove_journal(directory: str, creator: int) -> None:
    if os.getpid() == creator:  # never from a forked worker
        shutil.rmtree(directory, ignore_errors=True)


def _sweep(parent: str) -> None:
    """Remove the journals of demo pools whose process died without removing them (kill -9)."""
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        found = re.fullmatch(re.escape(JOURNAL_PREFIX) + r"([0-9]+)-[A-Za-z0-9_]+", name)
        if found is None or _alive(int(found.group(1))):
            continue
        path = os.path.join(parent, name)
        try:
            if os.lstat(path).st_uid == os.geteuid():
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # someone else's: alive
        return True
    return True


# ------------------------------------------------------------------ a schedd's costs, modelled

_HOLD: Any = None


def hold_gil(microseconds: float) -> None:
    """Wait `microseconds` holding the GIL, as the HTCondor bindings do while a schedd answers:
    libc's usleep called through ctypes.PyDLL keeps the GIL (through ctypes.CDLL it would be
    released, and threads would seem to scale as they do not with the bindings)."""
    global _HOLD
    if _HOLD is None:
        _HOLD = ctypes.PyDLL(None).usleep
        _HOLD.argtypes = [ctypes.c_uint]
    left = int(microseconds)
    while left > 0:
        step = min(left, 500_000)
        _HOLD(step)
        left -= step


class CostlyPool(DemoPool):
    """The demo pool with a real schedd's costs: every call holds the GIL for `call_us`, plus
    `scan_us` for each record the schedd reads and `send_us` for each ad it sends (and the
    client builds). Measured on a real HTCondor 25.14 schedd: one single-job query took 6.6 ms
    from one thread, and 8 threads in one process made 87 queries a second in all."""

    def __init__(self, call_us: float = 6600, scan_us: float = 0.0, send_us: float = 0.0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.call_us, self.scan_us, self.send_us = call_us, scan_us, send_us

    def _select(self, ads: Iterable[Ad], constraint: str, projection: Sequence[str],  # type: ignore[override]
                limit: int) -> list[Ad]:
        scanned = 0

        def counted() -> Iterator[Ad]:
            nonlocal scanned
            for ad in ads:
                scanned += 1
                yield ad

        out = DemoPool._select(counted(), constraint, projection, limit)
        hold_gil(self.call_us + self.scan_us * scanned + self.send_us * len(out))
        return out
