"""An attacker's battery: hidden attributes stay hidden, limits hold, faults map precisely, nothing 5xx."""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from condor_restd.demo import DemoPool
from condor_restd.errors import Unavailable

from .conftest import Client

SECRET = "not-a-real-secret"  # the Environment of jobs 18.0/18.1 in the demo pool


@pytest.fixture
def hidden(make_client: Any) -> Client:
    client: Client = make_client(hide_job_attrs=frozenset({"environment"}))
    return client


# ----------------------------------------------------------------------- hidden attributes

PROBES = [
    'Environment == "API_TOKEN=not-a-real-secret"',
    'environment == "API_TOKEN=not-a-real-secret"',
    'ENVIRONMENT =!= undefined',
    'MY.Environment != ""',
    'my.environment != ""',
    'TARGET.Environment == "x"',
    "'Environment' == \"x\"",
    'regexp("secret", Environment)',
    'stringListMember("API_TOKEN=not-a-real-secret", Environment)',
    'size(Environment) > 10',
    'substr(Environment, 0, 1) == "A"',
    'unparse(Environment) != ""',
    'ifThenElse(Environment == "", 1, 0) == 0',
    '{Environment}[0] == "x"',
    '[a = Environment].a == "x"',
    '.Environment == "x"',
    'parent.Environment == "x"',
    'eval("Environment") == "x"',
    'EVAL ("Environ" + "ment") == "x"',
    'eval(strcat("Envi", "ronment")) == "x"',
    '[x = "Environment"; y = eval(x)].y == "x"',
    'MY["Environment"] == "x"',
    'MY["Environ" + "ment"] == "x"',
    'unparse(MY) != ""',
    'TARGET["Environment"] == "x"',
    'Owner == "bob" && Environment == "x"',
    'Owner == "bob" || (true && regexp("API", Environment))',
]


@pytest.mark.parametrize("constraint", PROBES)
@pytest.mark.parametrize("endpoint", ["/v1/jobs/DEFAULT", "/v1/history/DEFAULT", "/v1/jobs/DEFAULT/18",
                                      "/v1/grouped_jobs/DEFAULT/owner", "/v1/grouped_history/DEFAULT/owner/18"])
def test_constraints_cannot_probe_hidden_values(hidden: Client, endpoint: str, constraint: str) -> None:
    r = hidden.get(endpoint, {"constraint": constraint})
    assert r.status == 400, (constraint, r)
    assert SECRET not in r.text


def test_innocent_constraints_still_work_with_hiding(hidden: Client) -> None:
    assert len(hidden.get("/v1/jobs/DEFAULT", {"constraint": 'Owner == "bob"'}).json()) == 3
    # a string that merely mentions the name is not a reference
    assert hidden.get("/v1/jobs/DEFAULT", {"constraint": 'Cmd != "Environment"'}).status == 200


@pytest.mark.parametrize("path", ["/v1/jobs/DEFAULT/18/0/Environment", "/v1/jobs/DEFAULT/18/0/environment",
                                  "/v1/jobs/DEFAULT/18/0/ENVIRONMENT"])
def test_attribute_url_redacts(hidden: Client, path: str) -> None:
    r = hidden.get(path)
    assert r.status == 200 and r.json() == "<REDACTED>"


@pytest.mark.parametrize("projection", ["Environment", "environment", "Owner,ENVIRONMENT", "environment,environment"])
def test_projection_redacts(hidden: Client, projection: str) -> None:
    for path in ("/v1/jobs/DEFAULT", "/v1/jobs/DEFAULT/18/0", "/v1/grouped_jobs/DEFAULT/owner"):
        r = hidden.get(path, {"projection": projection})
        assert r.status == 200
        assert SECRET not in r.text and "<REDACTED>" in r.text


@pytest.mark.parametrize("groupby", ["Environment", "environment", "ENVIRONMENT"])
def test_groupby_hidden_is_refused(hidden: Client, groupby: str) -> None:
    for path in (f"/v1/grouped_jobs/DEFAULT/{groupby}", f"/v1/grouped_history/schedd2@vm/{groupby}/2"):
        r = hidden.get(path)
        assert r.status == 400 and SECRET not in r.text


def test_secret_never_appears_in_any_job_response(hidden: Client) -> None:
    for path in ("/v1/jobs/DEFAULT", "/v1/jobs/DEFAULT/18", "/v1/jobs/DEFAULT/18/0",
                 "/v1/grouped_jobs/DEFAULT/owner", "/v1/grouped_jobs/DEFAULT/cmd/18"):
        for fmt in ("json", "yaml"):
            r = hidden.get(path, {"format": fmt})
            assert r.status == 200 and SECRET not in r.text


# ------------------------------------------------------------------------------- limits

def test_url_too_long_is_414(client: Client) -> None:
    r = client.get("/v1/jobs/DEFAULT", query="constraint=" + "1%2B" * 5000 + "1")
    assert r.status == 414 and r.json()["status"] == 414


def test_long_path_segment_is_414(client: Client) -> None:
    r = client.get("/v1/status/" + "a" * 2000)
    assert r.status == 414


def test_long_constraint_is_400(client: Client) -> None:
    r = client.get("/v1/jobs/DEFAULT", {"constraint": "x" * 9000})
    assert r.status == 400 and "longer than" in r.json()["message"]


def test_too_many_projection_attributes_is_400(client: Client) -> None:
    r = client.get("/v1/jobs/DEFAULT", {"projection": ",".join(f"a{i}" for i in range(300))})
    assert r.status == 400 and "at most" in r.json()["message"]


@pytest.mark.parametrize("path", [b"/v1/status/\xff\xfe", b"/v1/jobs/\xc3", b"/v1/config/\xed\xa0\x80"])
def test_invalid_utf8_in_path_is_400(client: Client, path: bytes) -> None:
    r = client.get(path)
    assert r.status == 400 and "UTF-8" in r.json()["message"]


def test_invalid_utf8_in_query_is_400(client: Client) -> None:
    r = client.get("/v1/jobs/DEFAULT", query="constraint=%FF%FE")
    assert r.status == 400 and "UTF-8" in r.json()["message"]


@pytest.mark.parametrize("path", ["/v1/status/a\x00b", "/v1/jobs/DEFAULT/2/0/cmd\x01", "/v1/config/X\x1b[2J"])
def test_control_characters_in_path_are_400(client: Client, path: str) -> None:
    assert client.get(path).status == 400


@pytest.mark.parametrize("value", ["Owner\x00", "true\x07", "\x1b[31mtrue"])
def test_nul_and_control_characters_in_query_are_400(client: Client, value: str) -> None:
    r = client.get("/v1/jobs/DEFAULT", {"constraint": value})
    assert r.status == 400 and "control characters" in r.json()["message"]


def test_line_breaks_in_a_constraint_are_whitespace(client: Client) -> None:
    assert client.get("/v1/jobs/DEFAULT", {"constraint": 'Owner == "bob"\n\t&& true'}).status == 200


def test_deeply_nested_constraint_is_a_clean_answer(client: Client) -> None:
    for depth in (50, 500, 2000):
        r = client.get("/v1/jobs/DEFAULT", {"constraint": "(" * depth + "true" + ")" * depth})
        assert r.status in (200, 400)


# ---------------------------------------------------------------------------------- faults

class Flaky:
    """The demo pool behind a switch: while `down`, every call fails as a dead collector does."""

    def __init__(self, pool: DemoPool) -> None:
        self.pool = pool
        self.down = True

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.pool, name)

        def call(*args: Any) -> Any:
            if self.down:
                raise Unavailable("locating the local schedd failed: Failed communication with collector.")
            return real(*args)
        return call


def test_collector_outage_is_503_and_recovers_by_itself(make_client: Any, pool: DemoPool) -> None:
    flaky = Flaky(pool)
    client = make_client(backend=flaky, isolate=False)  # the outage ends here, in this process
    for path in ("/v1/status", "/v1/jobs/DEFAULT", "/v1/config?daemon=master"):
        route, _, query = path.partition("?")
        r = client.get(route, query=query)
        assert r.status == 503 and int(r.headers["retry-after"]) > 0
        assert "collector" in r.json()["message"]
    flaky.down = False
    assert client.get("/v1/status").status == 200
    assert client.get("/v1/jobs/DEFAULT").status == 200


class Hanging:
    """A schedd that does not answer until released (the flag is in memory shared with the
    workers; a multiprocessing.Event would wait for the sleepers that were killed)."""

    def __init__(self, pool: DemoPool) -> None:
        self.pool = pool
        self.released = __import__("multiprocessing").Value("b", 0, lock=False)

    def jobs(self, *args: Any) -> Any:
        deadline = time.monotonic() + 10
        while not self.released.value and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.pool.jobs(*args)

    def status(self, *args: Any) -> Any:
        return self.pool.status(*args)


def _alive(pid: int) -> bool:
    try:
        done, _ = __import__("os").waitpid(pid, __import__("os").WNOHANG)
    except ChildProcessError:
        return False  # reaped
    return not done


def test_hung_schedd_gives_504_kills_its_worker_and_recovers(make_client: Any, pool: DemoPool) -> None:
    backend = Hanging(pool)
    client = make_client(backend=backend, query_timeout=0.3, query_workers=2)
    queries = client.app.queries  # type: ignore[attr-defined]
    assert client.get("/v1/status").status == 200  # a worker that answers
    (worker,) = queries.pool.pids()
    try:
        results: list[int] = []
        # two different queries (identical ones would share one upstream call)
        threads = [threading.Thread(target=lambda n=n: results.append(
            client.get("/v1/jobs/DEFAULT", {"constraint": f"ClusterId != {n}"}).status)) for n in range(2)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(5)
        assert results == [504, 504] and time.monotonic() - started < 2.5
        # the workers stuck upstream were killed: none is left waiting, the next calls get fresh ones
        deadline = time.monotonic() + 2  # SIGKILL takes a moment to land
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not _alive(worker) and queries.pool.pids() == []
        assert client.get("/v1/status").status == 200
        assert client.get("/healthz").status == 200  # the daemon itself still answers
    finally:
        backend.released.value = 1
    assert client.get("/v1/jobs/DEFAULT").status == 200  # the schedd answers again: so do we


def test_a_crashed_worker_costs_its_request_a_503_and_is_replaced(make_client: Any, pool: DemoPool,
                                                                   caplog: Any) -> None:
    class Crashing:
        def __getattr__(self, name: str) -> Any:
            return getattr(pool, name)

        def history(self, *args: Any) -> Any:
            __import__("os")._exit(-9 & 0xFF)  # as an out-of-memory kill or a crash in the bindings

    client = make_client(backend=Crashing())
    assert client.get("/v1/jobs/DEFAULT/2/0").status == 200
    with caplog.at_level("ERROR", logger="condor_restd.workers"):
        r = client.get("/v1/history/DEFAULT/1/0")
    assert r.status == 503 and int(r.headers["retry-after"]) > 0
    assert "died" in caplog.text and "history(" in caplog.text  # which call it was running
    assert client.get("/v1/jobs/DEFAULT/2/0").status == 200


def test_backend_raising_anything_is_never_500(make_client: Any) -> None:
    class Broken:
        def __getattr__(self, name: str) -> Any:
            def boom(*args: Any) -> Any:
                raise ZeroDivisionError("bug in a backend")
            return boom

    client = make_client(backend=Broken())
    for path in ("/v1/jobs/DEFAULT", "/v1/history/DEFAULT/1/0/cmd", "/v1/status", "/v1/config/X",
                 "/readyz"):
        r = client.get(path)
        assert r.status == 503, (path, r)


# ------------------------------------------------------------------------ property tests

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)
NAMES = st.one_of(TEXT, st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True))
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def assert_clean(r: Any) -> None:
    assert r.status < 500, r
    if r.status >= 400:
        body = r.json()
        assert body["status"] == r.status and body["message"]


@FAST
@given(constraint=TEXT)
def test_any_constraint_gets_a_clean_answer(hidden: Client, constraint: str) -> None:
    for path in ("/v1/jobs/DEFAULT", "/v1/history/schedd2@vm", "/v1/status", "/v1/grouped_status/MyType"):
        assert_clean(hidden.get(path, {"constraint": constraint}))


@FAST
@given(projection=st.one_of(TEXT, st.lists(NAMES, max_size=5).map(",".join)))
def test_any_projection_gets_a_clean_answer(hidden: Client, projection: str) -> None:
    for path in ("/v1/jobs/DEFAULT", "/v1/history/DEFAULT/13/0", "/v1/status"):
        r = hidden.get(path, {"projection": projection})
        assert_clean(r)
        assert SECRET not in r.text


@FAST
@given(groupby=NAMES)
def test_any_groupby_gets_a_clean_answer(hidden: Client, groupby: str) -> None:
    for prefix in ("/v1/grouped_jobs/DEFAULT/", "/v1/grouped_history/DEFAULT/", "/v1/grouped_status/"):
        r = hidden.get(prefix + quote(groupby, safe="") if "/" in groupby else prefix + groupby)
        assert_clean(r)
        assert SECRET not in r.text


@FAST
@given(segments=st.lists(TEXT, min_size=1, max_size=5), family=st.sampled_from(
    ["jobs", "history", "grouped_jobs", "grouped_history", "status", "grouped_status", "config", "x"]))
def test_any_path_gets_a_clean_answer(hidden: Client, family: str, segments: list[str]) -> None:
    r = hidden.get("/v1/" + family + "/" + "/".join(segments))
    assert_clean(r)
    assert SECRET not in r.text


@FAST
@given(name=TEXT, value=TEXT)
def test_any_query_parameter_gets_a_clean_answer(client: Client, name: str, value: str) -> None:
    assert_clean(client.get("/v1/jobs/DEFAULT", {name: value}))


BODY_HEADERS = st.sampled_from([{}, {"Transfer-Encoding": "chunked"}, {"Transfer-Encoding": "identity"},
                                {"Content-Type": "application/json"}, {"Expect": "100-continue"}])


@FAST
@given(method=st.sampled_from(["GET", "HEAD", "OPTIONS", "POST", "PUT", "DELETE", "PATCH"]),
       path=st.sampled_from(["/healthz", "/v1/jobs/DEFAULT", "/v1/status", "/v1", "/nosuch"]),
       body=st.one_of(st.just(b""), st.binary(min_size=1, max_size=40),
                      st.just(b"GET /v1/config HTTP/1.1\r\nHost: x\r\n\r\n")),
       headers=BODY_HEADERS)
def test_any_request_body_gets_a_clean_answer(hidden: Client, method: str, path: str, body: bytes,
                                              headers: dict[str, str]) -> None:
    # under a hosting WSGI server too (the daemon's own server refuses these before the app)
    r = hidden.request(method, path, headers=headers, body=body)
    if method == "HEAD":  # the same status, no body
        assert r.status < 500 and r.body == b"", r
    else:
        assert_clean(r)
    if body or "Transfer-Encoding" in headers:
        assert r.status == 400, (method, r)
        assert method == "HEAD" or "body" in r.json()["message"]


# ------------------------------------------------------------------- overload, real server

def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_overload_gets_a_fast_503_not_a_pile_up(tmp_path: Any) -> None:
    """Two threads, every query held 1 s: a flood of 24 clients is answered, never queued forever."""
    import http.client
    import os
    import subprocess
    import sys

    port = _free_port()
    config = tmp_path / "condor_config"
    config.write_text("RESTD_THREADS = 2\nRESTD_LOG =\n")
    env = dict(os.environ, CONDOR_CONFIG=str(config), CONDOR_RESTD_DEMO_DELAY="1")
    proc = subprocess.Popen([sys.executable, "-m", "condor_restd", "--demo", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.1)
            assert time.monotonic() < deadline and proc.poll() is None, "daemon did not start"

        outcomes: list[tuple[int, float]] = []
        lock = threading.Lock()

        def one() -> None:
            started = time.monotonic()
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                c.request("GET", "/v1/jobs/DEFAULT/2/0")
                status = c.getresponse().status
            except (OSError, http.client.HTTPException):
                status = 0
            with lock:
                outcomes.append((status, time.monotonic() - started))

        flood = [threading.Thread(target=one) for _ in range(24)]
        for t in flood:
            t.start()
        for t in flood:
            t.join(40)
        statuses = sorted(s for s, _ in outcomes)
        assert len(outcomes) == 24 and set(statuses) <= {200, 503}, statuses
        refused = [took for status, took in outcomes if status == 503]
        assert refused and min(refused) < 3 and max(refused) < 10, outcomes  # refused, not queued for long
        assert statuses.count(200) >= 2
        assert proc.poll() is None  # and the daemon lives on
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200
    finally:
        proc.terminate()
        proc.wait(20)
