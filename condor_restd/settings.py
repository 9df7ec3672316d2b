"""RESTD_* settings: the knobs, their defaults and types, read from an HTCondor config mapping."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable

from .errors import ConfigError
from .knobvalues import (
    NO_ORIGINS,
    STDERR,
    USER_NAME,
    UserMap,
    _address,
    _attributes,
    _audiences,
    _bool,
    _choice,
    _claim,
    _debug,
    _editable,
    _int,
    _issuers,
    _log,
    _origins,
    _readable_file,
    _seconds,
    _size,
    _user_map,
    _users,
)


@dataclass(frozen=True)
class Knob:
    name: str
    field: str
    default: str
    parse: Callable[[Any], Any]
    doc: str
    fallback: str | None = None  # the knob read when this one is not set, as HTCondor does
    empty: str = ""  # the word an admin writes for an empty value (an empty one reads as unset)


KNOBS: tuple[Knob, ...] = (
    Knob("RESTD_ADDRESS", "address", "127.0.0.1", _address,
         "Interface to listen on; 0.0.0.0 (or ::) for every interface."),
    Knob("RESTD_PORT", "port", "9680", _int(0, 65535), "TCP port to listen on; 0 picks a free port."),
    Knob("RESTD_THREADS", "threads", "10", _int(1, 1024), "Worker threads serving requests."),
    Knob("RESTD_MAX_JOBS", "max_jobs", "10000", _int(0),
         "Most jobs one jobs/history/grouped query returns; 0 means no cap."),
    Knob("RESTD_STREAM_BATCH", "stream_batch", "5000", _int(100, 1_000_000),
         "Most records one schedd query fetches while a big answer streams: memory against "
         "schedd work."),
    Knob("RESTD_HIDE_JOB_ATTRS", "hide_job_attrs", "", _attributes,
         "Job attributes shown as \"<REDACTED>\" (comma or space separated)."),
    Knob("RESTD_CORS_ORIGINS", "cors_origins", "*", _origins,
         "Values for Access-Control-Allow-Origin; NONE sends no CORS header.", empty=NO_ORIGINS),
    Knob("RESTD_QUERY_TIMEOUT", "query_timeout", "30", _seconds(),
         "Seconds one schedd or collector query may take before the client gets a 504."),
    Knob("RESTD_CACHE_TTL", "cache_ttl", "2", _seconds(zero=True),
         "Seconds an answer is reused for identical requests; 0 turns the cache off."),
    Knob("RESTD_QUERY_WORKERS", "query_workers", "4", _int(1, 256),
         "Worker processes that run pool queries, one query each at a time; more wait, and past "
         "that get a 503."),
    Knob("RESTD_WORKER_MAX_CALLS", "worker_max_calls", "1000", _int(0),
         "Pool calls after which a worker process is replaced by a fresh one; 0 never."),
    Knob("RESTD_WORKER_MAX_GROWTH", "worker_max_growth", "64", _int(0),
         "MiB a worker process may grow beyond its size at start before it is replaced (after "
         "its call); 0 never."),
    Knob("RESTD_HEADER_TIMEOUT", "header_timeout", "10", _seconds(),
         "Seconds a client has to send a request's line and headers; slower ones get a 408."),
    Knob("RESTD_SHUTDOWN_TIMEOUT", "shutdown_timeout", "10", _seconds(),
         "Seconds in-flight requests get to finish after SIGTERM."),
    Knob("RESTD_LOG", "log", "$(LOG)/RestdLog", _log,
         "The daemon log; STDERR logs to standard error.", empty=STDERR),
    Knob("RESTD_DEBUG", "debug", "", _debug,
         "Extra log detail, as other daemons' <SUBSYS>_DEBUG: D_FULLDEBUG adds debug lines."),
    Knob("MAX_RESTD_LOG", "max_log", "10485760", _size,
         "Size at which RESTD_LOG is rotated (bytes, or with a unit: 10 Mb); 0 never rotates.",
         fallback="MAX_DEFAULT_LOG"),
    Knob("MAX_NUM_RESTD_LOG", "max_num_log", "1", _int(1, 100),
         "How many rotated logs (RestdLog.old, ...) are kept."),
    Knob("RESTD_SSL_CERTFILE", "ssl_certfile", "", _readable_file,
         "PEM certificate (chain) to serve HTTPS with; set with RESTD_SSL_KEYFILE, or neither."),
    Knob("RESTD_SSL_KEYFILE", "ssl_keyfile", "", _readable_file,
         "PEM private key (not encrypted) of RESTD_SSL_CERTFILE."),
    Knob("RESTD_AUTHENTICATION", "authentication", "NONE", _choice("NONE", "TOKEN"),
         "NONE serves everyone; TOKEN requires a bearer JWT from one of RESTD_TOKEN_ISSUERS."),
    Knob("RESTD_TOKEN_ISSUERS", "token_issuers", "", _issuers,
         "Issuers (https URLs, as in the tokens' iss claim) whose tokens are accepted."),
    Knob("RESTD_TOKEN_AUDIENCE", "token_audience", "", _audiences,
         "Audiences a token's aud claim must name one of; empty does not check aud."),
    Knob("RESTD_TOKEN_USER_CLAIM", "token_user_claim", "sub", _claim,
         "The claim naming the user; user@domain as is, a bare name gets @$(UID_DOMAIN)."),
    Knob("RESTD_TOKEN_USER_MAPFILE", "token_user_mapfile", "", _user_map,
         "A map file (<method> <principal> <canonical> lines) from issuer,claim to user@domain."),
    Knob("RESTD_ADMIN_USERS", "admin_users", "", _users,
         "HTCondor users (user@domain) who see every job and the configuration."),
    Knob("RESTD_USER_JOB_SCOPE", "user_job_scope", "ALL", _choice("ALL", "OWN"),
         "Which jobs other users see: ALL, or OWN (only jobs whose User is theirs)."),
    Knob("RESTD_METRICS_MAX_OWNERS", "metrics_max_owners", "20", _int(0, 10000),
         "Owners named in /metrics' pool job counts (those with most jobs); the rest are 'other'."),
    Knob("RESTD_ACTIONS", "actions", "false", _bool,
         "true lets users hold, release, remove, vacate, edit and submit jobs, with their own "
         "tokens: the schedd decides what each may do."),
    Knob("RESTD_EDIT_ATTRIBUTES", "edit_attributes", "", _editable,
         "Job attributes users may edit (with RESTD_ACTIONS); none by default."),
    Knob("RESTD_ACTION_CONFIRM_ABOVE", "action_confirm_above", "100", _int(0, 1_000_000),
         "An action by constraint touching more jobs than this needs confirm=<the count>."),
    Knob("RESTD_HTCONDOR_TOKENS", "htcondor_tokens", "false", _bool,
         "true also accepts, for reads, bearer tokens HTCondor accepts (IDTOKENS), checked by "
         "the schedd; RESTD_ACTIONS always accepts them for actions."),
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
    """RESTD_LOG as set, else $(LOG)/RestdLog; empty (standard error) for STDERR, or when
    neither is defined."""
    value = config.get("RESTD_LOG")
    if value is not None:
        return _log(value)
    log_dir = config.get("LOG")
    return f"{log_dir}/RestdLog" if log_dir else ""


@dataclass(frozen=True)
class Settings:
    address: str = "127.0.0.1"
    port: int = 9680
    threads: int = 10
    max_jobs: int = 10000
    stream_batch: int = 5000
    hide_job_attrs: frozenset[str] = frozenset()
    cors_origins: tuple[str, ...] = ("*",)
    query_timeout: float = 30.0
    query_workers: int = 4
    worker_max_calls: int = 1000
    worker_max_growth: int = 64
    cache_ttl: float = 2.0
    shutdown_timeout: float = 10.0
    header_timeout: float = 10.0
    log: str = ""
    debug: tuple[str, ...] = ()
    max_log: int = 10485760
    max_num_log: int = 1
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    authentication: str = "NONE"
    token_issuers: tuple[str, ...] = ()
    token_audience: tuple[str, ...] = ()
    token_user_claim: str = "sub"
    token_user_mapfile: UserMap = UserMap()  # noqa: RUF009 (frozen: immutable)
    admin_users: frozenset[str] = frozenset()
    user_job_scope: str = "ALL"
    metrics_max_owners: int = 20
    actions: bool = False
    edit_attributes: frozenset[str] = frozenset()
    action_confirm_above: int = 100
    htcondor_tokens: bool = False
    uid_domain: str = ""  # HTCondor's UID_DOMAIN, not a RESTD knob: the domain of bare user names

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Settings:
        """Build settings from an HTCondor config mapping (htcondor2.param, or a dict)."""
        values: dict[str, Any] = {}
        raws: dict[str, Any] = {}
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
            raws[knob.name] = raw
        values["uid_domain"] = str(config.get("UID_DOMAIN") or "").strip()
        settings = cls(**values)
        settings._check(raws)
        return settings

    def _check(self, raws: Mapping[str, Any]) -> None:
        """The rules between knobs; `raws` holds each knob's value as configured."""
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            unset = "RESTD_SSL_KEYFILE" if self.ssl_certfile else "RESTD_SSL_CERTFILE"
            other = "RESTD_SSL_CERTFILE" if self.ssl_certfile else "RESTD_SSL_KEYFILE"
            raise ConfigError(unset, raws[unset], f"must be set when {other} is (both or neither)")
        if self.authentication == "TOKEN":
            if not self.token_issuers and not (self.htcondor_tokens or self.actions):
                raise ConfigError("RESTD_TOKEN_ISSUERS", raws["RESTD_TOKEN_ISSUERS"],
                                  "must list at least one issuer when RESTD_AUTHENTICATION = TOKEN, "
                                  "unless RESTD_HTCONDOR_TOKENS or RESTD_ACTIONS is true")
            if not self.uid_domain:
                raise ConfigError("UID_DOMAIN", "", "must be set when RESTD_AUTHENTICATION = TOKEN: "
                                  "bare user names from tokens become name@$(UID_DOMAIN)")
            if not USER_NAME.fullmatch(f"x@{self.uid_domain}"):
                raise ConfigError("UID_DOMAIN", self.uid_domain, "is not a domain for user names")
        elif self.user_job_scope == "OWN":
            raise ConfigError("RESTD_USER_JOB_SCOPE", raws["RESTD_USER_JOB_SCOPE"],
                              "OWN needs RESTD_AUTHENTICATION = TOKEN: without authentication there "
                              "is no user to limit the jobs to")

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
            rows.append((knob.name, str(value) or knob.empty))
        return rows
