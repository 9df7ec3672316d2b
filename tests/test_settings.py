"""RESTD_* settings: defaults, every knob's parsing, bad values, and the typed values htcondor2.param returns."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from condor_restd.errors import ConfigError
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
    assert settings.query_workers == 8
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
    ("RESTD_HIDE_JOB_ATTRS", "Environment, Env  Args", "hide_job_attrs",
     frozenset({"environment", "env", "args"})),
    ("RESTD_HIDE_JOB_ATTRS", "", "hide_job_attrs", frozenset()),
    ("RESTD_CORS_ORIGINS", "https://dash.example.org, http://localhost:3000", "cors_origins",
     ("https://dash.example.org", "http://localhost:3000")),
    ("RESTD_CORS_ORIGINS", "", "cors_origins", ()),
    ("RESTD_QUERY_TIMEOUT", "2.5", "query_timeout", 2.5),
    ("RESTD_QUERY_TIMEOUT", 60, "query_timeout", 60.0),
    ("RESTD_QUERY_WORKERS", "16", "query_workers", 16),
    ("RESTD_SHUTDOWN_TIMEOUT", "30", "shutdown_timeout", 30.0),
    ("RESTD_SHUTDOWN_TIMEOUT", 0.5, "shutdown_timeout", 0.5),
    ("RESTD_LOG", "/var/log/condor/RestdLog", "log", "/var/log/condor/RestdLog"),
    ("RESTD_LOG", "", "log", ""),
    ("RESTD_DEBUG", "d_fulldebug", "debug", ("D_FULLDEBUG",)),
    ("RESTD_DEBUG", "D_ALWAYS:2, D_CAT", "debug", ("D_ALWAYS:2", "D_CAT")),
    ("MAX_RESTD_LOG", "1000", "max_log", 1000),
    ("MAX_RESTD_LOG", 0, "max_log", 0),
    ("MAX_RESTD_LOG", "10 Mb", "max_log", 10 * 1024 * 1024),
    ("MAX_RESTD_LOG", "512Kb", "max_log", 512 * 1024),
    ("MAX_RESTD_LOG", "1 G", "max_log", 1 << 30),
    ("MAX_NUM_RESTD_LOG", "3", "max_num_log", 3),
    ("MAX_NUM_RESTD_LOG", 1, "max_num_log", 1),
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
    ("RESTD_HIDE_JOB_ATTRS", "Environment, 2bad"),
    ("RESTD_HIDE_JOB_ATTRS", "Env;rm"),
    ("RESTD_CORS_ORIGINS", "dash.example.org"),
    ("RESTD_CORS_ORIGINS", "ftp://x"),
    ("RESTD_QUERY_TIMEOUT", "0"),
    ("RESTD_QUERY_TIMEOUT", "-3"),
    ("RESTD_QUERY_TIMEOUT", "soon"),
    ("RESTD_QUERY_TIMEOUT", "inf"),
    ("RESTD_QUERY_TIMEOUT", True),
    ("RESTD_QUERY_WORKERS", "0"),
    ("RESTD_QUERY_WORKERS", "257"),
    ("RESTD_SHUTDOWN_TIMEOUT", "0"),
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
