"""RESTD_* settings: the knobs, their defaults and types, read from an HTCondor config mapping."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable

from .errors import ConfigError

ATTRIBUTE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DEBUG_FLAG = re.compile(r"^D_[A-Z_]+(:[0-9])?$")


def _int(low: int, high: int | None = None) -> Callable[[Any], int]:
    def parse(raw: Any) -> int:
        if isinstance(raw, bool):
            raise ValueError("expected a whole number")
        if isinstance(raw, int):
            value = raw
        else:
            text = str(raw).strip()
            if not re.fullmatch(r"[+-]?[0-9]+", text):
                raise ValueError("expected a whole number")
            value = int(text)
        if value < low or (high is not None and value > high):
            bound = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise ValueError(f"must be {bound}")
        return value

    return parse


def _seconds(raw: Any) -> float:
    if isinstance(raw, bool):
        raise ValueError("expected a number of seconds")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValueError("expected a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise ValueError("must be a positive number of seconds")
    return value


def _text(raw: Any) -> str:
    return str(raw).strip()


SIZE = re.compile(r"([0-9]+)\s*([KMGT]?)B?", re.IGNORECASE)
SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _size(raw: Any) -> int:
    """Bytes, written as HTCondor writes log sizes: 10485760, 10 Mb, 512Kb, 1 G."""
    if isinstance(raw, bool):
        raise ValueError("expected a size in bytes, like 10485760 or 10 Mb")
    if isinstance(raw, int):
        value = raw
    else:
        match = SIZE.fullmatch(str(raw).strip())
        if not match:
            raise ValueError("expected a size in bytes, like 10485760 or 10 Mb")
        value = int(match.group(1)) * SIZE_UNITS[match.group(2).upper()]
    if value < 0:
        raise ValueError("must be at least 0")
    return value


HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-]*|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.%A-Za-z]*")


def _address(raw: Any) -> str:
    text = str(raw).strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if not HOST.fullmatch(text):
        raise ValueError("expected an interface address or host name, like 127.0.0.1, 0.0.0.0 or ::")
    return text


def _words(raw: Any) -> tuple[str, ...]:
    return tuple(w for w in re.split(r"[\s,]+", str(raw)) if w)


def _attributes(raw: Any) -> frozenset[str]:
    names = _words(raw)
    for name in names:
        if not ATTRIBUTE_NAME.match(name):
            raise ValueError(f"{name!r} is not a ClassAd attribute name")
    return frozenset(n.lower() for n in names)


def _origins(raw: Any) -> tuple[str, ...]:
    origins = _words(raw)
    for origin in origins:
        if origin != "*" and not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+", origin):
            raise ValueError(f"{origin!r} is not '*' or an origin like https://host:port")
    return origins


def _debug(raw: Any) -> tuple[str, ...]:
    flags = _words(raw.upper() if isinstance(raw, str) else raw)
    for flag in flags:
        if not DEBUG_FLAG.match(flag):
            raise ValueError(f"{flag!r} is not a debug flag like D_FULLDEBUG")
    return flags


@dataclass(frozen=True)
class Knob:
    name: str
    field: str
    default: str
    parse: Callable[[Any], Any]
    doc: str
    fallback: str | None = None  # the knob read when this one is not set, as HTCondor does


KNOBS: tuple[Knob, ...] = (
    Knob("RESTD_ADDRESS", "address", "127.0.0.1", _address,
         "Interface to listen on; 0.0.0.0 (or ::) for every interface."),
    Knob("RESTD_PORT", "port", "9680", _int(0, 65535), "TCP port to listen on; 0 picks a free port."),
    Knob("RESTD_THREADS", "threads", "10", _int(1, 1024), "Worker threads serving requests."),
    Knob("RESTD_MAX_JOBS", "max_jobs", "10000", _int(0),
         "Most jobs one jobs/history/grouped query returns; 0 means no cap."),
    Knob("RESTD_HIDE_JOB_ATTRS", "hide_job_attrs", "", _attributes,
         "Job attributes shown as \"<REDACTED>\" (comma or space separated)."),
    Knob("RESTD_CORS_ORIGINS", "cors_origins", "*", _origins,
         "Values for Access-Control-Allow-Origin; empty sends no CORS header."),
    Knob("RESTD_QUERY_TIMEOUT", "query_timeout", "30", _seconds,
         "Seconds one schedd or collector query may take before the client gets a 504."),
    Knob("RESTD_QUERY_WORKERS", "query_workers", "8", _int(1, 256),
         "Pool queries that may run at once; more wait, and past that get a 503."),
    Knob("RESTD_SHUTDOWN_TIMEOUT", "shutdown_timeout", "10", _seconds,
         "Seconds in-flight requests get to finish after SIGTERM."),
    Knob("RESTD_LOG", "log", "$(LOG)/RestdLog", _text,
         "The daemon log; empty logs to standard error."),
    Knob("RESTD_DEBUG", "debug", "", _debug,
         "Extra log detail, as other daemons' <SUBSYS>_DEBUG: D_FULLDEBUG adds debug lines."),
    Knob("MAX_RESTD_LOG", "max_log", "10485760", _size,
         "Size at which RESTD_LOG is rotated (bytes, or with a unit: 10 Mb); 0 never rotates.",
         fallback="MAX_DEFAULT_LOG"),
    Knob("MAX_NUM_RESTD_LOG", "max_num_log", "1", _int(1, 100),
         "How many rotated logs (RestdLog.old, ...) are kept."),
)


DEFAULT_NOT_RESPONDING_TIMEOUT = 3600  # condor_master's NOT_RESPONDING_TIMEOUT default


def keepalive_interval(config: Mapping[str, Any]) -> float:
    """A third of the time condor_master waits for a keepalive before it calls the daemon hung."""
    timeout = DEFAULT_NOT_RESPONDING_TIMEOUT
    for name in ("RESTD_NOT_RESPONDING_TIMEOUT", "NOT_RESPONDING_TIMEOUT"):
        raw = config.get(name)
        if raw is not None and re.fullmatch(r"\s*[0-9]+\s*", str(raw)) and int(raw) > 0:
            timeout = int(raw)
            break
    return max(1.0, timeout / 3)


def log_path(config: Mapping[str, Any]) -> str:
    """RESTD_LOG as set, else $(LOG)/RestdLog; empty (standard error) when neither is defined."""
    value = config.get("RESTD_LOG")
    if value is not None:
        return str(value).strip()
    log_dir = config.get("LOG")
    return f"{log_dir}/RestdLog" if log_dir else ""


@dataclass(frozen=True)
class Settings:
    address: str = "127.0.0.1"
    port: int = 9680
    threads: int = 10
    max_jobs: int = 10000
    hide_job_attrs: frozenset[str] = frozenset()
    cors_origins: tuple[str, ...] = ("*",)
    query_timeout: float = 30.0
    query_workers: int = 8
    shutdown_timeout: float = 10.0
    log: str = ""
    debug: tuple[str, ...] = ()
    max_log: int = 10485760
    max_num_log: int = 1

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Settings:
        """Build settings from an HTCondor config mapping (htcondor2.param, or a dict)."""
        values: dict[str, Any] = {}
        for knob in KNOBS:
            name, raw = knob.name, config.get(knob.name)
            if knob.name == "RESTD_LOG" and raw is None:
                raw = log_path(config)
            if raw is None and knob.fallback and config.get(knob.fallback) is not None:
                name, raw = knob.fallback, config.get(knob.fallback)
            if raw is None:
                raw = knob.default
            try:
                values[knob.field] = knob.parse(raw)
            except ValueError as exc:
                raise ConfigError(name, raw, str(exc)) from None
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @property
    def full_debug(self) -> bool:
        return any(f.split(":")[0] in ("D_FULLDEBUG", "D_ALL") for f in self.debug)

    def describe(self) -> list[tuple[str, str]]:
        """The effective value of every knob, as an admin would write it in a config file."""
        rows = []
        for knob in KNOBS:
            value = getattr(self, knob.field)
            if isinstance(value, (frozenset, tuple)):
                value = ", ".join(sorted(value) if isinstance(value, frozenset) else value)
            rows.append((knob.name, str(value)))
        return rows
