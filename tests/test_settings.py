"""RESTD_* settings: defaults, every knob's parsing, bad values, and the typed values htcondor2.param returns."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from condor_restd.errors import ConfigError
from condor_restd.knobvalues import UserMap
from condor_restd.settings import KNOBS, Settings, log_path


def build(**config: Any) -> Settings:
    return Settings.from_config(config)


def test_defaults_without_any_config() -> None:
    settings = build()
    assert settings == Settings()  # the dataclass defaults and the KNOBS defaults agree
    assert settings.address == "127.0.0.1"
    assert settings.port == 9680
    assert settings.threads == 10
    assert settings.max_jobs == 10000
    assert settings.hide_job_attrs == frozenset()
    assert settings.cors_origins == ("*",)
    assert settings.query_timeout == 30.0
    assert settings.query_workers == 4
    assert settings.worker_max_calls == 1000
    assert settings.worker_max_growth == 64
    assert settings.shutdown_timeout == 10.0
    assert settings.log == ""
    assert settings.debug == ()
    assert not settings.full_debug
    assert settings.max_log == 10485760
    assert settings.max_num_log == 1


def test_every_knob_has_a_field_a_default_that_parses_and_a_doc() -> None:
    fields = set(Settings.__dataclass_fields__)
    for knob in KNOBS:
        assert knob.field in fields, knob.name
        assert knob.doc, knob.name
        if knob.name != "RESTD_LOG":  # its default is derived from LOG
            assert knob.parse(knob.default) == getattr(Settings(), knob.field), knob.name


def test_knob_names_are_unique_and_restd() -> None:
    names = [k.name for k in KNOBS]
    assert len(names) == len(set(names))
    assert all("RESTD" in name for name in names)


# ----------------------------------------------------------------------------- good values

GOOD = [
    ("RESTD_ADDRESS", "0.0.0.0", "address", "0.0.0.0"),
    ("RESTD_ADDRESS", " :: ", "address", "::"),
    ("RESTD_ADDRESS", "[::1]", "address", "::1"),
    ("RESTD_ADDRESS", "restd.example.org", "address", "restd.example.org"),
    ("RESTD_PORT", "8080", "port", 8080),
    ("RESTD_PORT", 8080, "port", 8080),
    ("RESTD_PORT", "0", "port", 0),
    ("RESTD_PORT", "65535", "port", 65535),
    ("RESTD_THREADS", "4", "threads", 4),
    ("RESTD_THREADS", 32, "threads", 32),
    ("RESTD_MAX_JOBS", "0", "max_jobs", 0),
    ("RESTD_MAX_JOBS", " 500 ", "max_jobs", 500),
    ("RESTD_MAX_JOBS", 500, "max_jobs", 500),
    ("RESTD_STREAM_BATCH", "100", "stream_batch", 100),
    ("RESTD_STREAM_BATCH", " 20000 ", "stream_batch", 20000),
    ("RESTD_HIDE_JOB_ATTRS", "Environment, Env  Args", "hide_job_attrs",
     frozenset({"environment", "env", "args"})),
    ("RESTD_HIDE_JOB_ATTRS", "", "hide_job_attrs", frozenset()),
    ("RESTD_CORS_ORIGINS", "https://dash.example.org, http://localhost:3000", "cors_origins",
     ("https://dash.example.org", "http://localhost:3000")),
    ("RESTD_CORS_ORIGINS", "", "cors_origins", ()),
    ("RESTD_CORS_ORIGINS", "NONE", "cors_origins", ()),  # a word: HTCondor reads `KNOB =` as unset
    ("RESTD_CORS_ORIGINS", " none ", "cors_origins", ()),
    ("RESTD_QUERY_TIMEOUT", "2.5", "query_timeout", 2.5),
    ("RESTD_QUERY_TIMEOUT", 60, "query_timeout", 60.0),
    ("RESTD_QUERY_WORKERS", "16", "query_workers", 16),
    ("RESTD_WORKER_MAX_CALLS", "0", "worker_max_calls", 0),
    ("RESTD_WORKER_MAX_GROWTH", "256", "worker_max_growth", 256),
    ("RESTD_CACHE_TTL", "0", "cache_ttl", 0.0),
    ("RESTD_CACHE_TTL", "2.5", "cache_ttl", 2.5),
    ("RESTD_CACHE_TTL", 10, "cache_ttl", 10.0),
    ("RESTD_SHUTDOWN_TIMEOUT", "30", "shutdown_timeout", 30.0),
    ("RESTD_HEADER_TIMEOUT", "5", "header_timeout", 5.0),
    ("RESTD_HEADER_TIMEOUT", "0.5", "header_timeout", 0.5),
    ("RESTD_SHUTDOWN_TIMEOUT", 0.5, "shutdown_timeout", 0.5),
    ("RESTD_LOG", "/var/log/condor/RestdLog", "log", "/var/log/condor/RestdLog"),
    ("RESTD_LOG", "", "log", ""),
    ("RESTD_LOG", "STDERR", "log", ""),
    ("RESTD_LOG", " Stderr ", "log", ""),
    ("RESTD_DEBUG", "d_fulldebug", "debug", ("D_FULLDEBUG",)),
    ("RESTD_DEBUG", "D_ALWAYS:2, D_CAT", "debug", ("D_ALWAYS:2", "D_CAT")),
    ("MAX_RESTD_LOG", "1000", "max_log", 1000),
    ("MAX_RESTD_LOG", 0, "max_log", 0),
    ("MAX_RESTD_LOG", "10 Mb", "max_log", 10 * 1024 * 1024),
    ("MAX_RESTD_LOG", "512Kb", "max_log", 512 * 1024),
    ("MAX_RESTD_LOG", "1 G", "max_log", 1 << 30),
    ("MAX_NUM_RESTD_LOG", "3", "max_num_log", 3),
    ("MAX_NUM_RESTD_LOG", 1, "max_num_log", 1),
    # authentication, authorization and TLS: values valid on their own (more at the end of the file)
    ("RESTD_AUTHENTICATION", "none", "authentication", "NONE"),
    ("RESTD_TOKEN_ISSUERS", "https://issuer.example.org", "token_issuers", ("https://issuer.example.org",)),
    ("RESTD_TOKEN_AUDIENCE", "https://restd.example.org", "token_audience", ("https://restd.example.org",)),
    ("RESTD_TOKEN_USER_CLAIM", "email", "token_user_claim", "email"),
    ("RESTD_TOKEN_USER_MAPFILE", "", "token_user_mapfile", UserMap()),
    ("RESTD_ADMIN_USERS", "alice@example.org", "admin_users", frozenset({"alice@example.org"})),
    ("RESTD_USER_JOB_SCOPE", "All", "user_job_scope", "ALL"),
    ("RESTD_METRICS_MAX_OWNERS", "0", "metrics_max_owners", 0),
    ("RESTD_METRICS_MAX_OWNERS", " 50 ", "metrics_max_owners", 50),
    ("RESTD_SSL_CERTFILE", "", "ssl_certfile", ""),
    ("RESTD_SSL_KEYFILE", "", "ssl_keyfile", ""),
    ("RESTD_ACTIONS", "true", "actions", True),
    ("RESTD_ACTIONS", " Yes ", "actions", True),
    ("RESTD_ACTIONS", "FALSE", "actions", False),
    ("RESTD_ACTIONS", "0", "actions", False),
    ("RESTD_ACTIONS", True, "actions", True),
    ("RESTD_EDIT_ATTRIBUTES", "JobPrio, Nice_User  RequestMemory", "edit_attributes",
     frozenset({"jobprio", "nice_user", "requestmemory"})),
    ("RESTD_EDIT_ATTRIBUTES", "", "edit_attributes", frozenset()),
    ("RESTD_ACTION_CONFIRM_ABOVE", "0", "action_confirm_above", 0),
    ("RESTD_ACTION_CONFIRM_ABOVE", " 500 ", "action_confirm_above", 500),
    ("RESTD_HTCONDOR_TOKENS", "true", "htcondor_tokens", True),
    ("RESTD_HTCONDOR_TOKENS", "no", "htcondor_tokens", False),
]


@pytest.mark.parametrize(("knob", "raw", "field", "expected"), GOOD,
                         ids=[f"{k}={r!r}" for k, r, _, _ in GOOD])
def test_good_values(knob: str, raw: Any, field: str, expected: Any) -> None:
    assert getattr(build(**{knob: raw}), field) == expected


def test_every_knob_is_covered_by_good_and_bad_cases() -> None:
    assert {k.name for k in KNOBS} <= {case[0] for case in GOOD}
    assert {k.name for k in KNOBS} - {"RESTD_LOG"} <= {case[0] for case in BAD}  # any text is a path


# ------------------------------------------------------------------------------ bad values

BAD = [
    ("RESTD_ADDRESS", ""),
    ("RESTD_ADDRESS", "not an address"),
    ("RESTD_ADDRESS", "-x"),
    ("RESTD_PORT", "http"),
    ("RESTD_PORT", "96.80"),
    ("RESTD_PORT", "65536"),
    ("RESTD_PORT", -1),
    ("RESTD_PORT", True),
    ("RESTD_THREADS", "0"),
    ("RESTD_THREADS", "many"),
    ("RESTD_MAX_JOBS", "lots"),
    ("RESTD_MAX_JOBS", "-5"),
    ("RESTD_MAX_JOBS", "1e3"),
    ("RESTD_MAX_JOBS", False),
    ("RESTD_STREAM_BATCH", "0"),
    ("RESTD_STREAM_BATCH", "99"),
    ("RESTD_STREAM_BATCH", "1000001"),
    ("RESTD_HIDE_JOB_ATTRS", "Environment, 2bad"),
    ("RESTD_HIDE_JOB_ATTRS", "Env;rm"),
    ("RESTD_CORS_ORIGINS", "dash.example.org"),
    ("RESTD_CORS_ORIGINS", "ftp://x"),
    ("RESTD_CORS_ORIGINS", "NONE https://dash.example.org"),
    ("RESTD_QUERY_TIMEOUT", "0"),
    ("RESTD_QUERY_TIMEOUT", "-3"),
    ("RESTD_QUERY_TIMEOUT", "soon"),
    ("RESTD_QUERY_TIMEOUT", "inf"),
    ("RESTD_QUERY_TIMEOUT", True),
    ("RESTD_QUERY_WORKERS", "0"),
    ("RESTD_QUERY_WORKERS", "257"),
    ("RESTD_WORKER_MAX_CALLS", "-1"),
    ("RESTD_WORKER_MAX_GROWTH", "lots"),
    ("RESTD_CACHE_TTL", "-1"),
    ("RESTD_CACHE_TTL", "soon"),
    ("RESTD_CACHE_TTL", "inf"),
    ("RESTD_SHUTDOWN_TIMEOUT", "0"),
    ("RESTD_HEADER_TIMEOUT", "0"),
    ("RESTD_HEADER_TIMEOUT", "soon"),
    ("RESTD_SHUTDOWN_TIMEOUT", "later"),
    ("RESTD_DEBUG", "FULLDEBUG"),
    ("RESTD_DEBUG", True),
    ("MAX_RESTD_LOG", "big"),
    ("MAX_RESTD_LOG", "10 parsecs"),
    ("MAX_RESTD_LOG", -1),
    ("MAX_RESTD_LOG", True),
    ("MAX_NUM_RESTD_LOG", "0"),
    ("MAX_NUM_RESTD_LOG", "101"),
    ("MAX_NUM_RESTD_LOG", "two"),
    # authentication, authorization and TLS: values bad on their own (more at the end of the file)
    ("RESTD_AUTHENTICATION", "BASIC"),
    ("RESTD_TOKEN_ISSUERS", "http://issuer.example.org"),
    ("RESTD_TOKEN_AUDIENCE", "\x00"),
    ("RESTD_TOKEN_USER_CLAIM", "a claim"),
    ("RESTD_TOKEN_USER_MAPFILE", "/nonexistent/restd.map"),
    ("RESTD_ADMIN_USERS", "alice"),
    ("RESTD_USER_JOB_SCOPE", "SOME"),
    ("RESTD_METRICS_MAX_OWNERS", "-1"),
    ("RESTD_METRICS_MAX_OWNERS", "lots"),
    ("RESTD_METRICS_MAX_OWNERS", "100000"),
    ("RESTD_SSL_CERTFILE", "/nonexistent/restd.crt"),
    ("RESTD_SSL_KEYFILE", "/nonexistent/restd.key"),
    ("RESTD_ACTIONS", "maybe"),
    ("RESTD_ACTIONS", "2"),
    ("RESTD_EDIT_ATTRIBUTES", "JobPrio, Owner"),  # whose a job is: never editable
    ("RESTD_EDIT_ATTRIBUTES", "accountinggroup"),
    ("RESTD_EDIT_ATTRIBUTES", "JobStatus"),
    ("RESTD_EDIT_ATTRIBUTES", "1bad"),
    ("RESTD_ACTION_CONFIRM_ABOVE", "-1"),
    ("RESTD_ACTION_CONFIRM_ABOVE", "many"),
    ("RESTD_HTCONDOR_TOKENS", "sometimes"),
]


@pytest.mark.parametrize(("knob", "raw"), BAD, ids=[f"{k}={r!r}" for k, r in BAD])
def test_bad_values_name_the_knob_and_the_value(knob: str, raw: Any) -> None:
    with pytest.raises(ConfigError) as info:
        build(**{knob: raw})
    error = info.value
    assert error.knob == knob
    assert error.value == raw
    assert error.reason
    assert knob in str(error) and repr(raw) in str(error)


def test_a_bad_value_is_reported_even_when_other_knobs_are_good() -> None:
    with pytest.raises(ConfigError) as info:
        build(RESTD_PORT="9000", RESTD_THREADS="4", RESTD_MAX_JOBS="ten")
    assert info.value.knob == "RESTD_MAX_JOBS"


# -------------------------------------------------------------- values as htcondor2.param has them

def test_typed_values_as_the_bindings_return_them() -> None:
    # htcondor2.param returns int/bool/float for knobs in its table, str for everything else
    settings = build(RESTD_PORT=9681, RESTD_THREADS=2, RESTD_MAX_JOBS=0, RESTD_QUERY_TIMEOUT=5,
                     RESTD_SHUTDOWN_TIMEOUT=2.5, MAX_RESTD_LOG=1048576, MAX_NUM_RESTD_LOG=2,
                     RESTD_ADDRESS="0.0.0.0", RESTD_HIDE_JOB_ATTRS="Environment")
    assert (settings.port, settings.threads, settings.max_jobs) == (9681, 2, 0)
    assert (settings.query_timeout, settings.shutdown_timeout) == (5.0, 2.5)
    assert (settings.max_log, settings.max_num_log) == (1048576, 2)
    assert settings.hide_job_attrs == frozenset({"environment"})


@pytest.mark.parametrize("value", [True, False])
def test_a_boolean_is_never_a_number(value: bool) -> None:
    for knob in ("RESTD_PORT", "RESTD_THREADS", "RESTD_MAX_JOBS", "RESTD_QUERY_TIMEOUT",
                 "MAX_RESTD_LOG", "MAX_NUM_RESTD_LOG"):
        with pytest.raises(ConfigError):
            build(**{knob: value})


def test_unrelated_knobs_are_ignored() -> None:
    assert build(CONDOR_HOST="cm.example.org", SCHEDD_DEBUG="D_FULLDEBUG", MAX_SCHEDD_LOG="x") == Settings()


# ------------------------------------------------------------------------------- the log knobs

def test_restd_log_is_derived_from_log() -> None:
    assert build(LOG="/var/log/condor").log == "/var/log/condor/RestdLog"
    assert log_path({"LOG": "/var/log/condor"}) == "/var/log/condor/RestdLog"


def test_restd_log_set_explicitly_wins_over_log() -> None:
    assert build(LOG="/var/log/condor", RESTD_LOG="/tmp/restd.log").log == "/tmp/restd.log"
    assert build(LOG="/var/log/condor", RESTD_LOG="").log == ""


def test_no_log_and_no_restd_log_means_standard_error() -> None:
    assert build().log == ""
    assert log_path({}) == ""


def test_max_restd_log_falls_back_to_max_default_log_as_htcondor_does() -> None:
    assert build(MAX_DEFAULT_LOG="10 Mb").max_log == 10485760
    assert build(MAX_DEFAULT_LOG="1 Mb", MAX_RESTD_LOG="2 Mb").max_log == 2 * 1048576
    with pytest.raises(ConfigError) as info:
        build(MAX_DEFAULT_LOG="huge")
    assert info.value.knob == "MAX_DEFAULT_LOG"  # the knob that holds the bad value


def test_full_debug_flags() -> None:
    assert build(RESTD_DEBUG="D_FULLDEBUG").full_debug
    assert build(RESTD_DEBUG="D_ALL").full_debug
    assert build(RESTD_DEBUG="D_FULLDEBUG:2 D_CAT").full_debug
    assert not build(RESTD_DEBUG="D_ALWAYS").full_debug


def test_describe_lists_every_knob_as_an_admin_writes_it() -> None:
    rows = dict(build(RESTD_HIDE_JOB_ATTRS="Env Args", RESTD_PORT="9000").describe())
    assert list(rows) == [k.name for k in KNOBS]
    assert rows["RESTD_PORT"] == "9000"
    assert rows["RESTD_HIDE_JOB_ATTRS"] == "args, env"
    assert rows["RESTD_ADDRESS"] == "127.0.0.1"


# ------------------------------------------------------------------------- the shipped snippet

SNIPPET = Path(__file__).resolve().parent.parent / "condor_config.d" / "50-condor-restd.conf"


def test_the_snippet_shows_every_default_that_the_code_uses() -> None:
    shown = dict(re.findall(r"^#((?:MAX_)?\w*RESTD\w*) = ?(.*)$", SNIPPET.read_text(), re.M))
    assert {k.name for k in KNOBS} <= set(shown)
    config = {name: value.replace("$(LOG)", "/var/log/condor") for name, value in shown.items() if value}
    assert Settings.from_config(config) == Settings(log="/var/log/condor/RestdLog")


def test_the_snippet_makes_condor_master_run_the_daemon_as_condor() -> None:
    lines = SNIPPET.read_text().splitlines()
    assert "RESTD = $(LIBEXEC)/condor_restd" in lines
    assert "RESTD_USERID = condor" in lines
    assert "DAEMON_LIST = $(DAEMON_LIST) RESTD" in lines
    assert any(line.startswith("RESTD_ARGS =") for line in lines)


# ==================================================================================================
# Authentication, authorization and TLS: RESTD_AUTHENTICATION, RESTD_TOKEN_*, RESTD_ADMIN_USERS,
# RESTD_USER_JOB_SCOPE, RESTD_SSL_*. Some need other knobs set to be valid (TOKEN needs issuers
# and UID_DOMAIN; a certificate needs its key), so each case carries its context.
# ==================================================================================================

ISSUER = "https://issuer.example.org"
TOKEN_CONTEXT = {"RESTD_AUTHENTICATION": "TOKEN", "RESTD_TOKEN_ISSUERS": ISSUER, "UID_DOMAIN": "example.org"}
A_FILE = str(Path(__file__).resolve())  # any readable file will do where only readability is checked
SSL_CONTEXT = {"RESTD_SSL_CERTFILE": A_FILE, "RESTD_SSL_KEYFILE": A_FILE}

AUTH_GOOD: list[tuple[str, Any, str, Any, dict[str, Any]]] = [
    ("RESTD_AUTHENTICATION", "NONE", "authentication", "NONE", {}),
    ("RESTD_AUTHENTICATION", "token", "authentication", "TOKEN", TOKEN_CONTEXT),
    ("RESTD_AUTHENTICATION", " Token ", "authentication", "TOKEN", TOKEN_CONTEXT),
    ("RESTD_TOKEN_ISSUERS", "https://a.example.org, https://b.example.org/realms/htc", "token_issuers",
     ("https://a.example.org", "https://b.example.org/realms/htc"), {}),
    ("RESTD_TOKEN_ISSUERS", "https://[::1]:8443/oidc", "token_issuers", ("https://[::1]:8443/oidc",), {}),
    ("RESTD_TOKEN_ISSUERS", "", "token_issuers", (), {}),
    ("RESTD_TOKEN_AUDIENCE", "https://restd.example.org ANY", "token_audience",
     ("https://restd.example.org", "ANY"), {}),
    ("RESTD_TOKEN_AUDIENCE", "", "token_audience", (), {}),
    ("RESTD_TOKEN_USER_CLAIM", "preferred_username", "token_user_claim", "preferred_username", {}),
    ("RESTD_TOKEN_USER_CLAIM", " sub ", "token_user_claim", "sub", {}),
    ("RESTD_TOKEN_USER_MAPFILE", "", "token_user_mapfile", UserMap(), {}),
    ("RESTD_ADMIN_USERS", "alice@example.org, root@cm.example.org", "admin_users",
     frozenset({"alice@example.org", "root@cm.example.org"}), {}),
    ("RESTD_ADMIN_USERS", "", "admin_users", frozenset(), {}),
    ("RESTD_USER_JOB_SCOPE", "all", "user_job_scope", "ALL", {}),
    ("RESTD_USER_JOB_SCOPE", "OWN", "user_job_scope", "OWN", TOKEN_CONTEXT),
    ("RESTD_SSL_CERTFILE", A_FILE, "ssl_certfile", A_FILE, {"RESTD_SSL_KEYFILE": A_FILE}),
    ("RESTD_SSL_CERTFILE", "", "ssl_certfile", "", {}),
    ("RESTD_SSL_KEYFILE", f" {A_FILE} ", "ssl_keyfile", A_FILE, {"RESTD_SSL_CERTFILE": A_FILE}),
    ("RESTD_SSL_KEYFILE", "", "ssl_keyfile", "", {}),
]

AUTH_BAD: list[tuple[str, Any, dict[str, Any]]] = [
    ("RESTD_AUTHENTICATION", "JWT", {}),
    ("RESTD_AUTHENTICATION", "", {}),
    ("RESTD_AUTHENTICATION", True, {}),
    ("RESTD_TOKEN_ISSUERS", "http://issuer.example.org", {}),  # keys over plain HTTP could be anyone's
    ("RESTD_TOKEN_ISSUERS", "issuer.example.org", {}),
    ("RESTD_TOKEN_ISSUERS", "https://", {}),
    ("RESTD_TOKEN_AUDIENCE", "aud\x07", {}),
    ("RESTD_TOKEN_USER_CLAIM", "", {}),
    ("RESTD_TOKEN_USER_CLAIM", "two words", {}),
    ("RESTD_TOKEN_USER_MAPFILE", "/nonexistent/restd.map", {}),
    ("RESTD_TOKEN_USER_MAPFILE", "/", {}),
    ("RESTD_ADMIN_USERS", "alice", {}),
    ("RESTD_ADMIN_USERS", "alice@example.org bob@", {}),
    ("RESTD_ADMIN_USERS", 'a"b@example.org', {}),
    ("RESTD_USER_JOB_SCOPE", "MINE", {}),
    ("RESTD_USER_JOB_SCOPE", "OWN", {}),  # without TOKEN there is no user to scope to
    ("RESTD_SSL_CERTFILE", "/nonexistent/restd.crt", {"RESTD_SSL_KEYFILE": A_FILE}),
    ("RESTD_SSL_CERTFILE", "/", {"RESTD_SSL_KEYFILE": A_FILE}),
    ("RESTD_SSL_KEYFILE", "/nonexistent/restd.key", {"RESTD_SSL_CERTFILE": A_FILE}),
]


@pytest.mark.parametrize(("knob", "raw", "field", "expected", "context"), AUTH_GOOD,
                         ids=[f"{k}={r!r}" for k, r, _, _, _ in AUTH_GOOD])
def test_auth_good_values(knob: str, raw: Any, field: str, expected: Any, context: dict[str, Any]) -> None:
    assert getattr(build(**{**context, knob: raw}), field) == expected


@pytest.mark.parametrize(("knob", "raw", "context"), AUTH_BAD, ids=[f"{k}={r!r}" for k, r, _ in AUTH_BAD])
def test_auth_bad_values_name_the_knob_and_the_value(knob: str, raw: Any, context: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        build(**{**context, knob: raw})
    assert info.value.knob == knob
    assert info.value.value == raw
    assert knob in str(info.value) and repr(raw) in str(info.value)


def test_tls_files_go_together() -> None:
    with pytest.raises(ConfigError) as info:
        build(RESTD_SSL_CERTFILE=A_FILE)
    assert info.value.knob == "RESTD_SSL_KEYFILE" and "RESTD_SSL_CERTFILE" in info.value.reason
    with pytest.raises(ConfigError) as info:
        build(RESTD_SSL_KEYFILE=A_FILE)
    assert info.value.knob == "RESTD_SSL_CERTFILE"
    assert build(**SSL_CONTEXT).ssl_certfile == A_FILE


def test_a_missing_tls_file_is_named_with_its_path() -> None:
    with pytest.raises(ConfigError) as info:
        build(RESTD_SSL_CERTFILE="/nonexistent/restd.crt", RESTD_SSL_KEYFILE=A_FILE)
    assert str(info.value) == "RESTD_SSL_CERTFILE = '/nonexistent/restd.crt': no such file"


def test_token_authentication_needs_issuers() -> None:
    with pytest.raises(ConfigError) as info:
        build(**{**TOKEN_CONTEXT, "RESTD_TOKEN_ISSUERS": ""})
    assert info.value.knob == "RESTD_TOKEN_ISSUERS" and "at least one issuer" in info.value.reason


@pytest.mark.parametrize("origins", ["*", "https://dash.example.org *"])
def test_token_authentication_takes_a_wildcard_origin(origins: str) -> None:
    """Bearer tokens are not ambient credentials: a page can send one only if it holds it."""
    assert "*" in build(**{**TOKEN_CONTEXT, "RESTD_CORS_ORIGINS": origins}).cors_origins


def test_token_authentication_needs_nothing_but_the_issuers() -> None:
    """An admin who sets only RESTD_AUTHENTICATION and RESTD_TOKEN_ISSUERS gets a daemon
    (UID_DOMAIN is always defined in a real configuration: $(FULL_HOSTNAME) by default)."""
    settings = build(RESTD_AUTHENTICATION="TOKEN", RESTD_TOKEN_ISSUERS=ISSUER, UID_DOMAIN="vm")
    assert settings.authentication == "TOKEN" and settings.cors_origins == ("*",)


def test_the_words_for_empty_values_round_trip_through_describe() -> None:
    """HTCondor reads `KNOB =` as unset, so "none" is said with a word, and describe() writes it."""
    settings = build(RESTD_CORS_ORIGINS="none", RESTD_LOG="stderr", LOG="/var/log/condor")
    rows = dict(settings.describe())
    assert rows["RESTD_CORS_ORIGINS"] == "NONE" and rows["RESTD_LOG"] == "STDERR"
    assert Settings.from_config(rows) == settings
    assert log_path({"RESTD_LOG": "STDERR", "LOG": "/var/log/condor"}) == ""


def test_token_authentication_with_listed_origins() -> None:
    settings = build(**{**TOKEN_CONTEXT, "RESTD_CORS_ORIGINS": "https://dash.example.org"})
    assert settings.cors_origins == ("https://dash.example.org",)


def test_token_authentication_needs_a_uid_domain() -> None:
    with pytest.raises(ConfigError) as info:
        build(**{**TOKEN_CONTEXT, "UID_DOMAIN": ""})
    assert info.value.knob == "UID_DOMAIN"
    with pytest.raises(ConfigError):
        build(**{**TOKEN_CONTEXT, "UID_DOMAIN": "bad domain"})


def test_uid_domain_is_read_but_is_not_a_restd_knob() -> None:
    assert build(UID_DOMAIN=" example.org ").uid_domain == "example.org"
    assert build().uid_domain == ""
    assert "UID_DOMAIN" not in dict(build(UID_DOMAIN="example.org").describe())


def test_the_map_file_is_parsed_at_start_up(tmp_path: Path) -> None:
    good = tmp_path / "good.map"
    good.write_text("# comment\n\nSCITOKENS /^https:\\/\\/issuer\\.example\\.org,(.*)$/ \\1\n"
                    'GSI "/DC=org/CN=Bob" bob\n* "https://issuer.example.org,x" alice@example.org\n')
    settings = build(RESTD_TOKEN_USER_MAPFILE=str(good))
    assert settings.token_user_mapfile.path == str(good)
    assert len(settings.token_user_mapfile.rules) == 2  # the GSI line is for another method
    assert dict(settings.describe())["RESTD_TOKEN_USER_MAPFILE"] == str(good)
    for text, why in (("* /(unclosed/ bob\n", "regular expression"), ("* onlytwo\n", "line 1"),
                      ("\n* /a/ \\1\n", "line 2")):
        bad = tmp_path / "bad.map"
        bad.write_text(text)
        with pytest.raises(ConfigError) as info:
            build(RESTD_TOKEN_USER_MAPFILE=str(bad))
        assert info.value.knob == "RESTD_TOKEN_USER_MAPFILE" and why in info.value.reason


def test_describe_shows_the_new_knobs_as_written() -> None:
    rows = dict(build(**{**TOKEN_CONTEXT, "RESTD_ADMIN_USERS": "b@x a@x",
                         "RESTD_TOKEN_ISSUERS": f"{ISSUER} https://two.example.org"}).describe())
    assert rows["RESTD_AUTHENTICATION"] == "TOKEN"
    assert rows["RESTD_ADMIN_USERS"] == "a@x, b@x"
    assert rows["RESTD_TOKEN_ISSUERS"] == f"{ISSUER}, https://two.example.org"
    assert rows["RESTD_TOKEN_USER_MAPFILE"] == ""


def test_token_authentication_without_issuers_takes_htcondor_tokens() -> None:
    """IDTOKENS only: HTCondor checks each token, so no issuer need be listed."""
    for knob in ("RESTD_HTCONDOR_TOKENS", "RESTD_ACTIONS"):
        settings = build(**{**TOKEN_CONTEXT, "RESTD_TOKEN_ISSUERS": "", knob: "true"})
        assert settings.token_issuers == () and settings.authentication == "TOKEN"


def test_actions_are_off_and_nothing_is_editable_by_default() -> None:
    settings = build()
    assert settings.actions is False and settings.edit_attributes == frozenset()
    assert settings.action_confirm_above == 100 and settings.htcondor_tokens is False
