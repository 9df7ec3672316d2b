"""Headless Chromium drives the dashboard served by a real cheroot server over the demo pool."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import classad2
import pytest
from cheroot import wsgi

from condor_restd.demo import DemoPool
from condor_restd.settings import Settings
from condor_restd.web import make_app

from .test_openapi import AUDIENCE, ISSUER, IssuerKeys, bearer

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
    pytest.skip("chromium and chromedriver are not installed (tests/ci-browser-deps.sh installs them)",
                allow_module_level=True)

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait as _Wait  # noqa: E402


def WebDriverWait(driver: Any, timeout: float) -> Any:
    """selenium's wait, which also waits out an element replaced while it was read (a view
    re-rendering as its data arrives): that is not a failure, the next poll reads the new one."""
    return _Wait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,))

TIMEOUT = 30
ARGUMENTS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", "--disable-extensions", "--window-size=1280,1024")
TOKEN_SETTINGS = {"authentication": "TOKEN", "token_issuers": (ISSUER,), "token_audience": (AUDIENCE,),
                  "uid_domain": "localhost", "cors_origins": (), "user_job_scope": "OWN",
                  "admin_users": frozenset({"alice@localhost"})}


class Recorder:
    """WSGI middleware noting each request's path, query, status and If-None-Match."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[tuple[str, str, int, str | None]] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            self.seen.append((environ["PATH_INFO"], environ.get("QUERY_STRING", ""), int(status.split()[0]),
                              environ.get("HTTP_IF_NONE_MATCH")))
            return start_response(status, headers, exc_info)
        return self.app(environ, start)

    def calls(self, path: str) -> list[tuple[str, str, int, str | None]]:
        return [s for s in self.seen if s[0] == path]


def serve(settings: Settings, pool: DemoPool | None = None) -> Iterator[tuple[str, Recorder]]:
    """A real HTTP server on a free port, serving the demo pool, stopped at the end."""
    app = make_app(settings, pool or DemoPool())
    if app.auth is not None:
        app.auth.issuers = IssuerKeys()
    recorder = Recorder(app)
    server = wsgi.Server(("127.0.0.1", 0), recorder, numthreads=8, timeout=TIMEOUT)
    server.prepare()
    thread = threading.Thread(target=server.serve, name="test-cheroot", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.bind_addr[1]}", recorder
    finally:
        server.stop()
        thread.join(timeout=TIMEOUT)
        app.queries.close()
        assert not thread.is_alive(), "the test server did not stop"


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Recorder]]:
    yield from serve(Settings())


@pytest.fixture(scope="module")
def token_server() -> Iterator[tuple[str, Recorder]]:
    yield from serve(Settings().replace(**TOKEN_SETTINGS))


@pytest.fixture(scope="module")
def crowded_server() -> Iterator[tuple[str, Recorder]]:
    """The demo pool with twelve more submitters on schedd vm."""
    pool = DemoPool()
    pool.collector.extend(classad2.ClassAd({"MyType": "Submitter", "Name": f"user{i:02d}@localhost",
                                            "ScheddName": "vm", "IdleJobs": i + 1, "RunningJobs": 0,
                                            "HeldJobs": 0}) for i in range(12))
    yield from serve(Settings(), pool)


@pytest.fixture(scope="module")
def base_url(server: tuple[str, Recorder]) -> str:
    return server[0]


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ARGUMENTS:
        options.add_argument(argument)
    profile: Path = tmp_path_factory.mktemp("chromium-profile")
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    chrome.set_page_load_timeout(TIMEOUT)
    chrome.set_script_timeout(TIMEOUT)
    try:
        yield chrome
    finally:
        chrome.quit()


def severe(chrome: Any) -> list[dict[str, Any]]:
    return [entry for entry in chrome.get_log("browser") if entry.get("level") == "SEVERE"]


def wait(chrome: Any, css: str) -> Any:
    return WebDriverWait(chrome, TIMEOUT).until(lambda d: next(
        (e for e in d.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()), None))


def text(chrome: Any, css: str) -> str:
    return str(wait(chrome, css).text.strip())


def show(chrome: Any, base_url: str, view: str, ready: str) -> None:
    """Open a view afresh (a new document, so that no state carries over) and wait for it."""
    chrome.get("about:blank")
    chrome.get(f"{base_url}/#/{view}")
    wait(chrome, ready)


def rows(chrome: Any, table: str) -> list[str]:
    """The job ids of a table's rows, read at one instant (the page may be redrawing it)."""
    return list(chrome.execute_script(
        "return [...document.querySelectorAll(arguments[0] + ' tbody tr')].map(r => r.dataset.jobid)", table))


VIEWS = [("", "#counts"), ("jobs", "#jobs-table"), ("batches", "#batch-results table"), ("held", "#view table"), ("machines", "#machines-table"),
         ("history", "#history-results table"), ("job/vm/17.2", "#view td.value"),
         ("job/schedd2@vm/2.4?source=history", "#view td.value")]


# ------------------------------------------------------------------------ every view renders

def test_the_overview_shows_the_demo_pool(driver: Any, base_url: str) -> None:
    severe(driver)
    show(driver, base_url, "", "#counts")
    assert text(driver, "#pool-name") == "Personal Condor at 127.0.0.1@vm"
    assert text(driver, "#htcondor-version") == "25.14.0"
    assert text(driver, "#demo") == "DEMO"
    assert text(driver, "#fetched").startswith("· fetched ")
    expected = {"vm": {"running": "4", "idle": "6", "held": "4", "total": "14"},
                "schedd2@vm": {"running": "2", "idle": "6", "held": "4", "total": "12"}}
    for schedd, counts in expected.items():
        for status, count in counts.items():
            assert text(driver, f'#counts tr.schedd[data-schedd="{schedd}"] td[data-status="{status}"]') == count
    assert text(driver, '#counts tr[data-owner="bob@localhost"][data-schedd="vm"] td[data-status="held"]') == "2"
    assert text(driver, '#resources tr[data-resource="cpus"] td[data-kind="partitionable_free"]') == "2"
    assert driver.find_element(By.CSS_SELECTOR, "#views a[aria-current=page]").text == "Overview"
    assert severe(driver) == []


@pytest.mark.parametrize("view, ready", VIEWS)
def test_every_view_renders_without_console_errors(driver: Any, base_url: str, view: str, ready: str) -> None:
    severe(driver)
    show(driver, base_url, view, ready)
    assert wait(driver, "#view h2, #summary h2").text
    assert not driver.find_element(By.ID, "problem").is_displayed()
    raw = [a.get_attribute("href") for a in driver.find_elements(By.CSS_SELECTOR, "p.raw a")]
    assert raw and all(link.startswith(base_url + "/v1/") for link in raw), raw  # JSON and YAML behind it
    assert any(link.endswith("format=yaml") for link in raw)
    assert severe(driver) == []


def test_a_count_leads_to_the_jobs_it_counts(driver: Any, base_url: str) -> None:
    show(driver, base_url, "", "#counts")
    driver.find_element(By.CSS_SELECTOR, '#counts tr[data-owner="bob@localhost"][data-schedd="vm"] '
                                          'td[data-status="held"] a').click()
    wait(driver, "#jobs-table")
    assert rows(driver, "#jobs-table") == ["18.0", "18.1"]
    assert {c.text for c in driver.find_elements(By.CSS_SELECTOR, "#jobs-table tbody td:nth-of-type(2)")} \
        == {"held"}


def test_batches_count_as_condor_q_does(driver: Any, base_url: str) -> None:
    show(driver, base_url, "", "#counts")
    driver.find_element(By.CSS_SELECTOR, '#counts tr[data-owner="bob@localhost"][data-schedd="vm"] th a').click()
    wait(driver, "#batch-results table")
    row = driver.find_element(By.CSS_SELECTOR, '#batch-results tr[data-batch="bob-analysis"]')
    counts = {td.get_attribute("data-count"): td.text for td in row.find_elements(By.CSS_SELECTOR, "td[data-count]")}
    none = "\N{EN DASH}"  # no job in that state
    assert counts == {"done": none, "run": none, "idle": "1", "hold": "2"}
    assert [r.get_attribute("data-batch") for r in driver.find_elements(By.CSS_SELECTOR, "#batch-results tbody tr")] \
        == ["bob-analysis"]  # bob's only
    row.find_element(By.TAG_NAME, "a").click()
    WebDriverWait(driver, TIMEOUT).until(lambda d: rows(d, "#jobs-table") == ["18.0", "18.1", "21.0"])


def test_held_jobs_are_grouped_by_reason(driver: Any, base_url: str) -> None:
    show(driver, base_url, "held", "#view table")
    reasons = [th.text for th in driver.find_elements(By.CSS_SELECTOR, "#view tbody th")]
    assert "Disk quota exceeded on scratch area (by user condoruser)" in reasons
    assert sum(int(a.text) for a in driver.find_elements(By.CSS_SELECTOR, "#view tbody td.n a")) == 8


def test_machines_say_what_partitionable_slots_have_left(driver: Any, base_url: str) -> None:
    show(driver, base_url, "machines", "#machines-table")
    row = driver.find_element(By.CSS_SELECTOR, '#machines-table tr[data-machine="vm"]').text
    assert "6 / 8" in row and "2 cores, 7040 MB, 0 GPUs" in row
    assert "Unclaimed 1" not in driver.find_element(By.ID, "view").text.replace("Claimed 6, Unclaimed 1", "")


def test_machines_filter_and_sort(driver: Any, base_url: str) -> None:
    show(driver, base_url, "machines", "#machines-table")
    Select(driver.find_element(By.ID, "machine-sort")).select_by_value("free")
    box = driver.find_element(By.ID, "machine-filter")
    box.send_keys("nomatch")
    WebDriverWait(driver, TIMEOUT).until(lambda d: d.find_element(By.CSS_SELECTOR, "#machines-table caption").text
                                         == "0 of 1 machines")
    assert "filter=nomatch" in driver.current_url and "sort=free" in driver.current_url
    assert driver.switch_to.active_element.get_attribute("id") == "machine-filter"  # typing goes on


def test_a_crowded_schedd_shows_its_top_owners_first(driver: Any, crowded_server: tuple[str, Recorder]) -> None:
    base_url, _ = crowded_server
    show(driver, base_url, "", "#counts")
    owners = [r.get_attribute("data-owner") for r in driver.find_elements(By.CSS_SELECTOR, 'tr.owner[data-schedd="vm"]')]
    assert len(owners) == 10 and owners[:2] == ["user11@localhost", "user10@localhost"]  # most jobs first
    more = driver.find_element(By.CSS_SELECTOR, 'tbody[data-schedd="vm"] button.more')
    assert more.text == "Show the other 5 owners of vm" and more.get_attribute("aria-expanded") == "false"
    more.click()
    WebDriverWait(driver, TIMEOUT).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, 'tr.owner[data-schedd="vm"]')) == 15)
    assert driver.switch_to.active_element.get_attribute("aria-expanded") == "true"


def test_completions_show_exit_codes_and_poll_with_since(driver: Any, server: tuple[str, Recorder]) -> None:
    base_url, recorder = server
    show(driver, base_url, "history?schedd=schedd2@vm", "#history-results table")
    assert rows(driver, "#history-results")[:3] == ["3.2", "3.1", "3.0"]
    assert driver.find_element(By.CSS_SELECTOR, '#history-results tr[data-jobid="3.2"] td.n').text == "4"
    driver.find_element(By.ID, "refresh-now").click()
    WebDriverWait(driver, TIMEOUT).until(lambda d: any("since=3.2" in q for _, q, _, _ in
                                                       recorder.calls("/v1/history/schedd2@vm")))


def test_a_job_shows_every_attribute(driver: Any, base_url: str) -> None:
    show(driver, base_url, "job/vm/17.2", "#view td.value")
    names = [th.text for th in driver.find_elements(By.CSS_SELECTOR, "#view tbody th")]
    assert {"holdreason", "owner", "jobstatus", "cmd"} <= set(names) and len(names) > 50
    # a job that left the queue is found in the history
    show(driver, base_url, "job/schedd2@vm/2.4", "#view td.value")
    assert "history" in driver.find_element(By.CSS_SELECTOR, "#view p").text


# -------------------------------------------------------------------- filters, sort, pages

def test_filters_narrow_the_job_list(driver: Any, base_url: str) -> None:
    show(driver, base_url, "jobs", "#jobs-table")
    Select(driver.find_element(By.ID, "schedd")).select_by_value("vm")
    Select(driver.find_element(By.ID, "status")).select_by_value("held")
    driver.find_element(By.CSS_SELECTOR, "#job-filters button[type=submit]").click()
    WebDriverWait(driver, TIMEOUT).until(lambda d: len(rows(d, "#jobs-table")) == 4)
    owner = driver.find_element(By.ID, "owner")
    owner.send_keys("bob")
    driver.find_element(By.CSS_SELECTOR, "#job-filters button[type=submit]").click()
    WebDriverWait(driver, TIMEOUT).until(lambda d: rows(d, "#jobs-table") == ["18.0", "18.1"])
    assert "owner=bob" in driver.current_url and "status=held" in driver.current_url


def test_a_bad_constraint_shows_the_api_message(driver: Any, base_url: str) -> None:
    show(driver, base_url, "jobs?schedd=vm", "#jobs-table")
    box = driver.find_element(By.ID, "constraint")
    box.send_keys("Owner ==")
    box.submit()
    message = text(driver, "#constraint-error")
    expected = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('/v1/jobs/vm?constraint=' + encodeURIComponent('(Owner ==)')).then(r => r.json())"
        ".then(b => done(b.message));")
    assert message == expected and "constraint" in message
    assert driver.find_element(By.ID, "constraint").get_attribute("aria-invalid") == "true"
    assert driver.switch_to.active_element.get_attribute("id") == "constraint"  # the form stays as it was
    severe(driver)  # the 400 is logged by the browser as a failed load: expected here


def test_sorting_orders_the_page(driver: Any, base_url: str) -> None:
    show(driver, base_url, "jobs?schedd=vm", "#jobs-table")
    assert rows(driver, "#jobs-table")[:2] == ["2.0", "2.1"]
    header = driver.find_element(By.XPATH, "//table[@id='jobs-table']//th[.//button[text()='owner']]")
    header.find_element(By.TAG_NAME, "button").click()
    WebDriverWait(driver, TIMEOUT).until(lambda d: d.find_element(
        By.XPATH, "//table[@id='jobs-table']//th[.//button[text()='owner']]").get_attribute("aria-sort") == "ascending")
    owners = [td.text for td in driver.find_elements(By.CSS_SELECTOR, "#jobs-table tbody td:nth-of-type(1)")]
    assert owners == sorted(owners) and owners[0] == "alice"


def test_pages_follow_the_link_header(driver: Any, server: tuple[str, Recorder]) -> None:
    base_url, recorder = server
    show(driver, base_url, "jobs?schedd=vm&limit=5", "#jobs-table")
    seen = [rows(driver, "#jobs-table")]
    assert len(seen[0]) == 5 and driver.find_element(By.ID, "previous-page").get_attribute("disabled")
    for _ in range(2):
        driver.find_element(By.ID, "next-page").click()
        WebDriverWait(driver, TIMEOUT).until(lambda d: rows(d, "#jobs-table") not in seen)
        seen.append(rows(driver, "#jobs-table"))
    assert [len(page) for page in seen] == [5, 5, 4]
    every = [job for page in seen for job in page]
    assert sorted(every, key=lambda j: tuple(map(int, j.split(".")))) == every and len(set(every)) == 14
    assert driver.find_element(By.ID, "next-page").get_attribute("disabled")
    pages = [q for _, q, _, _ in recorder.calls("/v1/jobs/vm") if "limit=5" in q]
    assert len([q for q in pages if "cursor=" in q]) >= 2 and all("projection=" in q for q in pages)
    driver.find_element(By.ID, "previous-page").click()
    WebDriverWait(driver, TIMEOUT).until(lambda d: rows(d, "#jobs-table") == seen[1])


# ------------------------------------------------------------------------ live without load

def set_interval(chrome: Any, seconds: int) -> None:
    chrome.execute_script(
        "const s = document.getElementById('interval'); s.add(new Option(arguments[0] + ' s', arguments[0]));"
        "s.value = String(arguments[0]); s.dispatchEvent(new Event('change'));", seconds)


def test_polling_brings_304s_and_leaves_the_page_unchanged(driver: Any, server: tuple[str, Recorder]) -> None:
    base_url, recorder = server
    show(driver, base_url, "", "#counts")
    driver.execute_script("document.getElementById('counts').dataset.mark = 'before';")
    before = len(recorder.calls("/v1/summary"))
    set_interval(driver, 1)
    WebDriverWait(driver, TIMEOUT).until(lambda d: len(recorder.calls("/v1/summary")) >= before + 3)
    polls = recorder.calls("/v1/summary")[before:]
    assert all(status == 304 and etag for _, _, status, etag in polls), polls
    assert driver.execute_script("return document.getElementById('counts').dataset.mark") == "before"
    assert "every 1 s" in text(driver, "#refresh-status")


def test_pause_and_a_hidden_tab_stop_polling(driver: Any, server: tuple[str, Recorder]) -> None:
    base_url, recorder = server
    show(driver, base_url, "", "#counts")
    set_interval(driver, 1)
    driver.find_element(By.ID, "pause").click()
    assert driver.find_element(By.ID, "pause").get_attribute("aria-pressed") == "true"
    count = len(recorder.calls("/v1/summary"))
    time.sleep(2.5)
    assert len(recorder.calls("/v1/summary")) == count
    assert "paused" in text(driver, "#refresh-status")
    driver.find_element(By.ID, "pause").click()
    WebDriverWait(driver, TIMEOUT).until(lambda d: len(recorder.calls("/v1/summary")) > count)
    driver.execute_script("Object.defineProperty(document, 'hidden', {value: true, configurable: true});"
                          "document.dispatchEvent(new Event('visibilitychange'));")
    time.sleep(0.5)
    count = len(recorder.calls("/v1/summary"))
    time.sleep(2.5)
    assert len(recorder.calls("/v1/summary")) == count
    assert "hidden" in text(driver, "#refresh-status")
    driver.execute_script("Object.defineProperty(document, 'hidden', {value: false, configurable: true});"
                          "document.dispatchEvent(new Event('visibilitychange'));")
    WebDriverWait(driver, TIMEOUT).until(lambda d: len(recorder.calls("/v1/summary")) > count)


# ------------------------------------------------------------------------ for everyone

def test_the_page_asks_only_its_own_origin(driver: Any, base_url: str) -> None:
    for view, ready in VIEWS:
        show(driver, base_url, view, ready)
        names = driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
            ".concat(performance.getEntriesByType('navigation').map(e => e.name))")
        assert names and all(n.startswith(base_url + "/") for n in names), names


def test_nothing_is_wider_than_a_phone(driver: Any, base_url: str) -> None:
    driver.set_window_size(390, 844)
    try:
        for view, ready in VIEWS:
            show(driver, base_url, view, ready)
            width, screen = driver.execute_script(
                "return [document.documentElement.scrollWidth, window.innerWidth]")
            assert width <= screen, (view, width, screen)
    finally:
        driver.set_window_size(1280, 1024)


def test_keyboard_reaches_the_views_and_every_control_is_labelled(driver: Any, base_url: str) -> None:
    show(driver, base_url, "jobs", "#jobs-table")
    for control in driver.find_elements(By.CSS_SELECTOR, "select, input"):
        ident = control.get_attribute("id")
        assert ident and driver.find_elements(By.CSS_SELECTOR, f'label[for="{ident}"]'), ident
    assert all(th.get_attribute("scope") in ("col", "row") for th in driver.find_elements(By.TAG_NAME, "th"))
    # a keyboard user tabs from the skip link to the navigation and opens a view with Enter
    body = driver.find_element(By.TAG_NAME, "body")
    body.send_keys("\ue004")  # Tab
    assert driver.switch_to.active_element.text == "Skip to the content"
    link = driver.find_element(By.CSS_SELECTOR, '#views a[href="#/machines"]')
    link.send_keys("\ue007")  # Enter
    wait(driver, "#machines-table")
    assert driver.switch_to.active_element.tag_name == "h2"  # focus moved to the new view


# -------------------------------------------------------------------------------- tokens

def test_token_mode_asks_for_a_token_and_shows_a_user_their_jobs(driver: Any,
                                                                   token_server: tuple[str, Recorder]) -> None:
    base_url, recorder = token_server
    driver.get("about:blank")
    driver.get(base_url + "/")
    field = wait(driver, "#token")
    assert driver.find_element(By.CSS_SELECTOR, 'label[for="token"]').is_displayed()
    assert not recorder.calls("/v1/summary")  # nothing asked before there is a token
    field.send_keys(bearer("bob")["Authorization"].split()[1])
    field.submit()
    wait(driver, "#counts")
    assert text(driver, "#counts caption") == "Your jobs by schedd"
    owners = {r.get_attribute("data-owner") for r in driver.find_elements(By.CSS_SELECTOR, "#counts tr.owner")}
    assert owners == {"bob@localhost"}
    assert driver.execute_script("return sessionStorage.getItem('condor_restd.token')")
    assert driver.execute_script("return localStorage.length") == 0
    assert all(status == 200 for _, _, status, _ in recorder.calls("/v1/summary"))
    # the job list is the user's own too, sent with the same token
    driver.find_element(By.CSS_SELECTOR, '#views a[href="#/jobs"]').click()
    wait(driver, "#jobs-table")
    assert {td.text for td in driver.find_elements(By.CSS_SELECTOR, "#jobs-table tbody td:nth-of-type(1)")} \
        == {"bob"}
    # a token that stops working brings the prompt back, with the daemon's reason
    driver.execute_script("sessionStorage.setItem('condor_restd.token', 'not.a.jwt')")
    driver.find_element(By.ID, "refresh-now").click()
    assert "The daemon said:" in text(driver, "#token-message")
    driver.find_element(By.ID, "token").send_keys(bearer("alice")["Authorization"].split()[1])
    driver.find_element(By.ID, "token").submit()
    WebDriverWait(driver, TIMEOUT).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#jobs-table tbody tr"))
    severe(driver)  # the refused requests are logged as failed loads: expected here
