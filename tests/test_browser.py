"""Headless Chromium loads the front page from a real cheroot server over the demo pool."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cheroot import wsgi

from condor_restd.demo import DemoPool
from condor_restd.settings import Settings
from condor_restd.web import make_app

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
    pytest.skip("chromium and chromedriver are not installed (tests/ci-browser-deps.sh installs them)",
                allow_module_level=True)

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

TIMEOUT = 30
ARGUMENTS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", "--disable-extensions", "--window-size=1280,1024")


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    """A real HTTP server on a free port, serving the demo pool, stopped at the end."""
    app = make_app(Settings(), DemoPool())
    server = wsgi.Server(("127.0.0.1", 0), app, numthreads=4, timeout=TIMEOUT)
    server.prepare()
    thread = threading.Thread(target=server.serve, name="test-cheroot", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.bind_addr[1]}"
    finally:
        server.stop()
        thread.join(timeout=TIMEOUT)
        app.queries.close()
        assert not thread.is_alive(), "the test server did not stop"


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


def cell(chrome: Any, selector: str) -> str:
    return str(chrome.find_element(By.CSS_SELECTOR, selector).text.strip())


def load_front_page(chrome: Any, base_url: str) -> None:
    chrome.get(base_url + "/")
    WebDriverWait(chrome, TIMEOUT).until(expected_conditions.presence_of_element_located(
        (By.ID, "summary")))


def test_front_page_loads_without_console_errors(driver: Any, base_url: str) -> None:
    severe(driver)  # start from an empty log
    load_front_page(driver, base_url)
    assert driver.title == "condor_restd"
    assert driver.find_element(By.TAG_NAME, "h1").text.startswith("condor_restd")
    assert severe(driver) == []


def test_summary_shows_the_demo_pool(driver: Any, base_url: str) -> None:
    load_front_page(driver, base_url)
    schedds = [li.get_attribute("data-schedd")
               for li in driver.find_elements(By.CSS_SELECTOR, "#schedds li")]
    assert sorted(schedds) == ["schedd2@vm", "vm"]
    assert cell(driver, "#schedd-count") == "2"
    assert cell(driver, '#slots td[data-state="Unclaimed"]') == "1"
    assert cell(driver, '#slots td[data-state="Claimed"]') == "6"
    expected = {"vm": {"running": "4", "idle": "6", "held": "4"},
                "schedd2@vm": {"running": "2", "idle": "6", "held": "4"}}
    for schedd, counts in expected.items():
        for status, count in counts.items():
            assert cell(driver, f'#jobs tr[data-schedd="{schedd}"] td[data-status="{status}"]') == count
    assert severe(driver) == []


def test_a_followed_link_returns_data(driver: Any, base_url: str) -> None:
    load_front_page(driver, base_url)
    driver.find_element(By.CSS_SELECTOR, 'a[href="/v1/jobs/DEFAULT"]').click()
    WebDriverWait(driver, TIMEOUT).until(expected_conditions.url_to_be(base_url + "/v1/jobs/DEFAULT"))
    WebDriverWait(driver, TIMEOUT).until(expected_conditions.presence_of_element_located(
        (By.TAG_NAME, "pre")))
    jobs = json.loads(driver.find_element(By.TAG_NAME, "pre").text)
    assert len(jobs) == 14 and jobs[0]["jobid"] == "2.0"
    # the same data through the page's own origin, as a script on it would fetch it
    fetched = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('/v1/status?query=startd').then(r => r.json().then(b => done([r.status, b])))"
        ".catch(e => done(String(e)));")
    status, body = fetched
    assert status == 200 and len(body) == 7
    assert severe(driver) == []


def test_api_docs_load_and_link_back(driver: Any, base_url: str) -> None:
    load_front_page(driver, base_url)
    driver.find_element(By.CSS_SELECTOR, 'a[href="/v1/docs"]').click()
    WebDriverWait(driver, TIMEOUT).until(expected_conditions.presence_of_element_located(
        (By.ID, "schemas")))
    assert "API" in driver.title
    assert driver.find_element(By.ID, "listJobs").is_displayed()
    assert severe(driver) == []
