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
from .test_auth import issuer  # noqa: F401 (a fixture)

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
    reads = method in ("GET", "HEAD", "OPTIONS")
    if not reads and "Transfer-Encoding" not in headers:
        assert r.status in (400, 405), (method, r)  # a body is read whole; then 405 (actions off)
    elif body or "Transfer-Encoding" in headers:
        assert r.status == 400 if reads else r.status in (400, 411), (method, r)
        assert method == "HEAD" or "body" in r.json()["message"] or "chunked" in r.json()["message"]


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


# ------------------------------------------------- hostile input, round two (issue #14)

ENDPOINTS = ("/v1/jobs/DEFAULT", "/v1/history/DEFAULT", "/v1/grouped_jobs/DEFAULT/owner",
             "/v1/grouped_history/DEFAULT/owner", "/v1/status", "/v1/grouped_status/MyType")
# the ClassAd library cannot list their references, or their evaluation fails on every ad
UNANALYSABLE = ["{}.x", "{}.x == 1", "[a=1].b", "{1}.x", '"s".x', "(1).x", "{ClusterId, {}}[1].x"]
FAILING = ["random(0)", "random(0) == 1", "1/0", "random(ClusterId - ClusterId) == 0",
           "ifThenElse(ClusterId > 0, random(0), 1)", "(" * 60 + "random(0)" + ")" * 60]
# near the bounds: evaluated, or not, by the library; a clean answer either way
EDGES = ["+".join(["ClusterId"] * 250) + " > 0",
         "(" * 60 + "+".join(["ClusterId"] * 190) + ")" * 60 + " > 0",
         "int(" * 60 + "+".join(["ClusterId"] * 190) + ")" * 60 + " > 0"]


def _upstream_errors(client: Client) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    r = client.get("/metrics")
    return sum(s.value for f in text_string_to_metric_families(r.text) for s in f.samples
               if s.name == "condor_restd_upstream_errors_total")


@pytest.mark.parametrize("constraint", UNANALYSABLE + FAILING + EDGES)
def test_a_client_expression_is_never_an_outage(make_client: Any, constraint: str) -> None:
    for hide in (frozenset(), frozenset({"environment"})):
        client = make_client(hide_job_attrs=hide)
        for path in ENDPOINTS:
            r = client.get(path, {"constraint": constraint})
            assert r.status == 200, (path, constraint, hide, r)
            if constraint in FAILING:  # a failed evaluation matches nothing
                assert r.json() in ([], {}), (path, constraint)
        assert _upstream_errors(client) == 0


@pytest.mark.parametrize("constraint, message", [
    ("+".join(["1"] * 300), "operators"), ("||".join(["ClusterId == 1"] * 200), "operators"),
    ("(" * 65 + "true" + ")" * 65, "nested"), ("{" * 70 + "1" + "}" * 70 + " == 1", "nested"),
    ("int(" * 80 + "1" + ")" * 80, "nested")])
def test_expressions_past_what_a_daemon_evaluates_are_400(client: Client, constraint: str,
                                                          message: str) -> None:
    for path in ENDPOINTS:
        r = client.get(path, {"constraint": constraint})
        assert r.status == 400 and message in r.json()["message"], (path, r)
    assert _upstream_errors(client) == 0


def test_an_expression_within_the_bounds_is_evaluated(client: Client) -> None:
    """The bounds leave room: 64 levels of brackets, 256 operators, both evaluated by the library."""
    many = " || ".join(f"ClusterId == {n}" for n in range(1, 86))  # 170 operators
    deep = "(" * 64 + 'Owner == "bob"' + ")" * 64
    assert len(client.get("/v1/jobs/DEFAULT", {"constraint": many}).json()) == len(
        client.get("/v1/jobs/DEFAULT").json())
    assert len(client.get("/v1/jobs/DEFAULT", {"constraint": deep}).json()) == 3


def test_the_real_adapter_never_sends_a_schedd_an_expression_past_the_bounds() -> None:
    """What reaches a schedd has been parsed and bounded by the same library (classads.check_size)."""
    from condor_restd import classads
    from condor_restd.errors import BadRequest

    for text in ("+".join(["1"] * 258), "(" * 65 + "1" + ")" * 65):
        with pytest.raises(BadRequest):
            classads.check_size(text)
    classads.check_size('Owner == "a" && ' + " || ".join(f'Cmd == "{"(" * 100}"' for _ in range(3)))


# --------------------------------------------- hidden attributes: nothing reaches their values

def twins(hide: frozenset[str]) -> tuple[DemoPool, DemoPool]:
    """Two demo pools alike but for the values of the `hide` attributes (ResidentSetSize,
    Environment), which differ on every job of queue and history."""
    first, second = DemoPool(), DemoPool()
    for n, (a, b) in enumerate(zip([*first.queues["vm"], *first.histories["vm"]],
                                   [*second.queues["vm"], *second.histories["vm"]])):
        for name in hide:
            a[name] = 2048 if name == "residentsetsize" else "API_TOKEN=one"
            b[name] = 1024 * (n + 7) if name == "residentsetsize" else f"OTHER={n}"
    return first, second


HIDE = frozenset({"residentsetsize", "environment"})
READS_THROUGH = ["MemoryUsage == 2", "MemoryUsage =!= undefined", "MemoryUsage > 1", "isUndefined(MemoryUsage)",
                 "MY.MemoryUsage == 2", "[a = MemoryUsage].a == 2", "{MemoryUsage}[0] == 2",
                 "ifThenElse(MemoryUsage == 2, true, false)", "true", "1", "ClusterId > 0 || true"]


@pytest.mark.parametrize("constraint", READS_THROUGH)
def test_no_attribute_expression_reads_a_hidden_value_back(make_client: Any, constraint: str) -> None:
    """With ResidentSetSize hidden, MemoryUsage (computed from it) tells nothing of it: every
    answer is the same whatever the hidden values are."""
    first, second = twins(HIDE)
    a, b = (make_client(backend=p, hide_job_attrs=HIDE) for p in (first, second))
    for path in ("/v1/jobs/DEFAULT", "/v1/history/DEFAULT", "/v1/grouped_jobs/DEFAULT/MemoryUsage",
                 "/v1/grouped_history/DEFAULT/Owner", "/v1/jobs/DEFAULT/18"):
        for extra in ({}, {"limit": "2"}, {"projection": "MemoryUsage,Owner"}):
            ra, rb = (c.get(path, {"constraint": constraint, **extra}) for c in (a, b))
            assert ra.status == rb.status == 200, (path, constraint, ra)
            assert ra.body == rb.body, (path, constraint, extra)
            assert "API_TOKEN" not in ra.text and "OTHER=" not in ra.text


def test_a_constraint_naming_no_attribute_is_answered_with_hiding(hidden: Client, client: Client) -> None:
    for constraint in ("true", "1", "!false", "2 > 1"):
        for path in ("/v1/jobs/DEFAULT", "/v1/history/DEFAULT", "/v1/grouped_jobs/DEFAULT/owner"):
            r = hidden.get(path, {"constraint": constraint})
            assert r.status == 200, (path, constraint, r)
            assert len(r.json()) == len(client.get(path).json())


@pytest.mark.parametrize("constraint", ["Environment.x == 1", "MY.Environment.x =!= undefined",
                                        "Environment.x.y", "MY.Environment.x", "(Environment).x",
                                        "TARGET.Environment.x", "'Environment'.x"])
def test_a_selection_inside_a_hidden_attribute_is_refused(hidden: Client, constraint: str) -> None:
    for path in ("/v1/jobs/DEFAULT", "/v1/history/DEFAULT", "/v1/grouped_jobs/DEFAULT/owner"):
        r = hidden.get(path, {"constraint": constraint})
        assert r.status == 400 and "hidden" in r.json()["message"], (path, r)


def test_hidden_filtering_keeps_limits_pages_and_caps(make_client: Any, client: Client) -> None:
    """The constraint is evaluated in the worker, after the scope; caps and pages count matches."""
    hidden = make_client(hide_job_attrs=HIDE)
    constraint = 'Owner == "condoruser" && ClusterId > 2'
    for path in ("/v1/jobs/DEFAULT", "/v1/history/DEFAULT"):
        expected = client.get(path, {"constraint": constraint}).json()
        assert len(expected) > 3
        seen, link = [], None
        r = hidden.get(path, {"constraint": constraint, "limit": "3"})
        while True:
            seen += r.json()
            link = r.headers.get("link")
            if not link:
                break
            from urllib.parse import parse_qsl, urlsplit
            r = hidden.get(path, dict(parse_qsl(urlsplit(link.split(";")[0].strip("<>")).query)))
        assert [j["jobid"] for j in seen] == [j["jobid"] for j in expected]
        capped = make_client(hide_job_attrs=HIDE, max_jobs=2).get(path, {"constraint": constraint})
        assert len(capped.json()) == 2 and capped.headers["x-restd-truncated"] == "true"


# ------------------------------------- OWN scope: another user's job is as one that is not there

def _own_clients(make_client: Any, tmp_path: Any) -> tuple[Client, Client, Any]:
    """With tokens and OWN scope: the schedd's history asked remotely, and read from its file."""
    from condor_restd import condor

    from .test_auth import TOKEN_SETTINGS
    from .test_condor import write_history

    path = write_history(tmp_path, list(DemoPool().histories["vm"]))

    class Local(DemoPool):
        def history_file(self, schedd: str | None) -> Any:
            return condor.HistoryFile(str(path)) if schedd is None else None

    return make_client(**TOKEN_SETTINGS), make_client(backend=Local(), **TOKEN_SETTINGS), path


def _others(user: str) -> list[str]:
    from condor_restd import condor

    return [f"{condor.value_of(ad, 'ClusterId')}.{condor.value_of(ad, 'ProcId')}"
            for ad in DemoPool().histories["vm"] if condor.value_of(ad, "User") != user]


def _cursor(data: dict[str, Any]) -> str:
    import base64
    import json

    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


@pytest.mark.usefixtures("issuer")
def test_own_scope_since_another_users_job_is_as_since_no_job(make_client: Any, tmp_path: Any) -> None:
    from .test_auth import bearer, make_token

    remote, filed, _ = _own_clients(make_client, tmp_path)
    token = bearer(make_token(sub="bob"))
    others = _others("bob@localhost")
    for app in (remote, filed):
        for extra in ({}, {"limit": "2"}, {"limit": "50"}):
            nothing = app.get("/v1/history/DEFAULT", {"since": "999999.0", **extra}, headers=token)
            assert nothing.status == 200 and nothing.json()
            for since in (others[0], others[len(others) // 2], others[-1], others[-1].split(".")[0]):
                r = app.get("/v1/history/DEFAULT", {"since": since, **extra}, headers=token)
                link = r.headers.get("link", "").replace(f"since={since}", "since=999999.0")
                assert (r.status, r.body, link) == (
                    nothing.status, nothing.body, nothing.headers.get("link", "")), (since, extra)
    # the user's own job still stops the history there
    own = remote.get("/v1/history/DEFAULT", headers=token).json()
    r = remote.get("/v1/history/DEFAULT", {"since": own[1]["jobid"]}, headers=token)
    assert [j["jobid"] for j in r.json()] == [own[0]["jobid"]]


@pytest.mark.usefixtures("issuer")
def test_own_scope_cursor_at_another_users_job_is_as_at_no_job(make_client: Any, tmp_path: Any) -> None:
    from condor_restd import condor

    from .test_auth import bearer, make_token

    remote, filed, path = _own_clients(make_client, tmp_path)
    token = bearer(make_token(sub="bob"))
    others = _others("bob@localhost")
    nothing = remote.get("/v1/history/DEFAULT", {"cursor": _cursor({"v": 1, "s": "history", "a": "999999.0",
                                                                     "n": 1}), "limit": 2}, headers=token)
    assert nothing.status == 200
    for anchor in others[:3] + others[-3:]:
        for n in (0, 1, 3):
            r = remote.get("/v1/history/DEFAULT", {"cursor": _cursor({"v": 1, "s": "history", "a": anchor,
                                                                      "n": n}), "limit": 2}, headers=token)
            assert (r.status, r.body, r.headers.get("link")) == (nothing.status, nothing.body, None), anchor
    # in the file: a record of another user's is refused as a position where no record starts
    records = list(condor.HistoryFile(str(path)).records())
    theirs = [pos for pos, ad in records if condor.value_of(ad, "User") != "bob@localhost"]
    answers = set()
    for name, offset in [*theirs[:3], ("history", theirs[0][1] + 1), ("history", 5)]:
        r = filed.get("/v1/history/DEFAULT", {"cursor": _cursor({"v": 1, "s": "history", "f": name, "o": offset}),
                                              "limit": 2}, headers=token)
        answers.add((r.status, r.body))
    assert len(answers) == 1 and answers.pop()[0] == 400
    # bob's own cursors still walk his history, from the file and from the schedd
    for app in (remote, filed):
        seen, params = [], {"limit": "1"}
        while True:
            r = app.get("/v1/history/DEFAULT", params, headers=token)
            assert r.status == 200
            seen += [j["jobid"] for j in r.json()]
            if "link" not in r.headers:
                break
            from urllib.parse import parse_qsl, urlsplit
            params = dict(parse_qsl(urlsplit(r.headers["link"].split(";")[0].strip("<>")).query))
        assert seen == [j["jobid"] for j in remote.get("/v1/history/DEFAULT", headers=token).json()]


# ------------------------------------------------------- property tests: the new input shapes

PIECES = ["{}.x", "[a=1].b", "{1}.x", "(1).x", "random(0)", "random()", "1/0", "MemoryUsage", "MY.MemoryUsage",
          "ResidentSetSize", "Environment.x", "MY", "ClusterId", "ProcId", "Owner", '"bob"', "true", "undefined",
          "error", "{1, 2}", "[a = MemoryUsage].a", "{MemoryUsage}[0]", 'eval("x")', "2", "JobStatus"]
OPERATORS = [" == ", " =?= ", " =!= ", " != ", " || ", " && ", " + ", " / ", " < ", "."]
SHAPES = st.one_of(
    st.builds(lambda first, rest: first + "".join(op + piece for op, piece in rest), st.sampled_from(PIECES),
              st.lists(st.tuples(st.sampled_from(OPERATORS), st.sampled_from(PIECES)), max_size=6)),
    st.builds(lambda n, op: op.join(["ClusterId"] * n) + " > 0", st.integers(1, 400), st.sampled_from(["+", "-"])),
    st.builds(lambda n, inner: "(" * n + inner + ")" * n, st.integers(1, 90), st.sampled_from(PIECES)),
    st.builds(lambda f, arg: f"{f}({arg})", st.sampled_from(["random", "int", "size", "unparse", "isError"]),
              st.sampled_from(PIECES)),
)


def _twin_clients() -> tuple[Client, Client]:
    """Clients over the two twin pools (in-thread calls: an example costs no fork), made once."""
    global _TWINS
    if _TWINS is None:
        from condor_restd.settings import Settings
        from condor_restd.web import make_app

        apps = [make_app(Settings(cache_ttl=0, hide_job_attrs=HIDE), p, False) for p in twins(HIDE)]
        _TWINS = (Client(apps[0]), Client(apps[1]))
    return _TWINS


_TWINS: tuple[Client, Client] | None = None


@FAST
@given(constraint=SHAPES)
def test_new_constraint_shapes_get_a_clean_answer(client: Client, constraint: str) -> None:
    for path in ENDPOINTS:
        assert_clean(client.get(path, {"constraint": constraint}))


@FAST
@given(constraint=st.one_of(SHAPES, TEXT))
def test_no_constraint_tells_a_hidden_value(constraint: str) -> None:
    """The twin pools differ only in their hidden values: every answer is the same in both."""
    if "random" in constraint.lower():  # a new value at each evaluation, hidden or not
        return
    first, second = _twin_clients()
    for path in ("/v1/jobs/DEFAULT", "/v1/history/DEFAULT", "/v1/grouped_jobs/DEFAULT/MemoryUsage",
                 "/v1/grouped_history/DEFAULT/Owner"):
        for extra in ({}, {"limit": "3"}):
            a, b = (c.get(path, {"constraint": constraint, **extra}) for c in (first, second))
            assert_clean(a)
            assert (a.status, a.body) == (b.status, b.body), (path, constraint)


FIELD_VALUES = st.one_of(st.integers(-(2**64), 2**64), st.text(max_size=12), st.booleans(), st.none(),
                         st.lists(st.integers(-5, 2**41), max_size=3), st.floats(allow_nan=True),
                         st.sampled_from(["13.0", "2.0", "999999.0", "history", "history.1", "../x"]))


@FAST
@given(fields=st.dictionaries(st.sampled_from(["v", "s", "a", "n", "f", "o", "after", "x"]), FIELD_VALUES,
                              max_size=5),
       base=st.sampled_from([{}, {"v": 1, "s": "history"}, {"v": 1, "s": "jobs"}]))
def test_any_forged_cursor_gets_a_clean_answer(client: Client, fields: dict[str, Any],
                                               base: dict[str, Any]) -> None:
    cursor = _cursor({**base, **fields})
    for path in ("/v1/jobs/DEFAULT", "/v1/history/DEFAULT", "/v1/history/schedd2@vm"):
        assert_clean(client.get(path, {"cursor": cursor, "limit": "2"}))


def test_the_history_file_path_is_as_safe(make_client: Any, tmp_path: Any) -> None:
    """Read straight from the history file: failed evaluations match nothing, the twin pools'
    files stream alike, and while attributes are hidden no cursor holds a byte offset (which
    would tell how long a record, and so a hidden value, is)."""
    import base64
    import json

    from condor_restd import condor

    from .test_condor import write_history

    backends = []
    for n, twin in enumerate(twins(HIDE)):
        folder = tmp_path / str(n)
        folder.mkdir()
        path = write_history(folder, list(twin.histories["vm"]))

        class Local(DemoPool):
            def history_file(self, schedd: str | None, path: Any = path) -> Any:
                return condor.HistoryFile(str(path)) if schedd is None else None

        backends.append(Local())
    plain = make_client(backend=backends[0])
    for constraint in FAILING + UNANALYSABLE:
        for extra in ({"limit": "3"}, {}):
            r = plain.get("/v1/history/DEFAULT", {"constraint": constraint, **extra})
            assert r.status == 200 and (constraint not in FAILING or r.json() == []), (constraint, r)
    assert _upstream_errors(plain) == 0
    streamed = [make_client(backend=b, hide_job_attrs=HIDE, max_jobs=0) for b in backends]
    for constraint in [*READS_THROUGH, 'Owner == "condoruser"']:
        a, b = (c.get("/v1/history/DEFAULT", {"constraint": constraint}) for c in streamed)
        assert a.status == b.status == 200 and a.body == b.body, constraint
    paged = make_client(backend=backends[0], hide_job_attrs=HIDE)
    r = paged.get("/v1/history/DEFAULT", {"limit": "2"})
    cursor = r.headers["link"].split("cursor=")[1].split("&")[0].split(">")[0]
    assert "f" not in json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    file_cursor = _cursor({"v": 1, "s": "history", "f": "history", "o": 0})
    assert paged.get("/v1/history/DEFAULT", {"limit": "2", "cursor": file_cursor}).status == 400


def test_streams_filtered_in_the_worker_have_their_own_etags(make_client: Any) -> None:
    """The client's constraint travels apart from the schedd's query while attributes are hidden:
    two constraints never share an ETag (a 304 for the other's answer)."""
    client = make_client(hide_job_attrs=HIDE, max_jobs=0)
    tags = {c: client.get("/v1/history/DEFAULT", {"constraint": c}).headers["etag"]
            for c in ('Owner == "condoruser"', 'Owner == "condoruser" && ClusterId > 0')}
    assert len(set(tags.values())) == 2
    r = client.get("/v1/history/DEFAULT", {"constraint": "ClusterId > 0 && Owner == \"condoruser\""},
                   headers={"If-None-Match": tags['Owner == "condoruser"']})
    assert r.status == 200


def test_a_constant_constraint_still_goes_to_the_schedd_with_hiding(make_client: Any, pool: DemoPool) -> None:
    """`false` (the summary's probe of each schedd) names no attribute: the schedd evaluates it,
    and is not asked for every job; a constraint naming one is evaluated in the worker."""
    sent: list[tuple[str, int]] = []

    class Recording:
        def __getattr__(self, name: str) -> Any:
            return getattr(pool, name)

        def jobs(self, schedd: str | None, constraint: str, projection: Any, limit: int) -> Any:
            sent.append((constraint, limit))
            return pool.jobs(schedd, constraint, projection, limit)

    client = make_client(Recording(), isolate=False, hide_job_attrs=HIDE)
    assert client.get("/v1/jobs/DEFAULT", {"constraint": "false", "limit": "1"}).json() == []
    assert client.get("/v1/jobs/DEFAULT", {"constraint": "MemoryUsage == 2"}).json() == []
    assert all("false" in constraint for constraint, _ in sent[:-1])
    assert "MemoryUsage" not in sent[-1][0] and sent[-1][1] == 0  # every job in scope, filtered here


@FAST
@given(constraint=SHAPES)
def test_the_worker_filter_copies_what_matters_and_decides_as_the_library(constraint: str) -> None:
    """With nothing hidden, the worker's filter (a copy of what the constraint reaches) keeps
    exactly the ads the library matches on the whole ad."""
    from condor_restd import classads

    if "random" in constraint.lower():  # a new value at each evaluation
        return
    try:
        expr = classads.check_expression(constraint)
    except Exception:
        return
    ads = [*DemoPool().queues["vm"], *DemoPool().histories["vm"]]
    expected = [ad for ad in ads if classads.matches(expr, ad)]
    assert classads.scrubbed_matches(ads, constraint, frozenset(), 0) == expected
