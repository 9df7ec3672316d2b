"""The pages for browsers: / as the pool dashboard (its summary rendered on the server), and /v1/docs."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import classad2
import pytest

from condor_restd import __version__, dashboard, openapi, pages, web
from condor_restd.demo import DemoPool
from condor_restd.errors import Unavailable

from .conftest import Client

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
CURL = "*/*"
EVIL = '<script>alert("x")</script>&"\''


class Page(HTMLParser):
    """Links, scripts, element ids, data-* cells and text of one page; fails on unbalanced tables."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.links: list[str] = []
        self.sources: list[str] = []
        self.ids: set[str] = set()
        self.cells: dict[tuple[str, str], str] = {}
        self.tags: list[str] = []
        self.text: list[str] = []
        self._row: dict[str, str] = {}
        self._cell: tuple[str, str] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append(tag)
        if tag == "a" and "href" in a:
            self.links.append(a["href"])
        if tag in ("script", "link", "img") and ("src" in a or "href" in a):
            self.sources.append(a.get("src") or a["href"])
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "tr":
            self._row = a
        row = "/".join(filter(None, (self._row.get("data-schedd"), self._row.get("data-owner"))))
        if tag == "td" and "data-status" in a:
            self._cell = (row, a["data-status"])
        elif tag == "td" and "data-state" in a:
            self._cell = ("slots", a["data-state"])
        elif tag == "td" and "data-kind" in a:
            self._cell = (self._row.get("data-resource", ""), a["data-kind"])

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None and data.strip():
            self.cells[self._cell] = data
            self._cell = None


def front(client: Client, accept: str = BROWSER) -> Any:
    return client.get("/", headers={"Accept": accept})


# --------------------------------------------------------------------- who gets HTML

def test_a_browser_gets_html(client: Client) -> None:
    r = front(client)
    assert r.status == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.text.startswith("<!DOCTYPE html>")
    assert "<title>Personal Condor at 127.0.0.1@vm · condor_restd</title>" in r.text


@pytest.mark.parametrize("accept", [None, CURL, "application/json", "application/json, text/html;q=0.5"])
def test_curl_and_api_clients_get_json(client: Client, accept: str | None) -> None:
    r = client.get("/", headers={"Accept": accept} if accept is not None else {})
    assert r.status == 200 and r.headers["content-type"].startswith("application/json")
    assert r.json() == {"name": "condor_restd", "version": __version__, "api": "/v1",
                        "openapi": "/v1/openapi.json", "health": "/healthz", "ready": "/readyz",
                        "metrics": "/metrics"}


def test_format_html_asks_for_the_page(client: Client) -> None:
    r = client.get("/", {"format": "html"})
    assert r.headers["content-type"].startswith("text/html")


def test_json_index_does_not_touch_the_pool(make_client: Callable[..., Client]) -> None:
    class Down(DemoPool):
        def status(self, *args: Any, **kwargs: Any) -> Any:
            raise AssertionError("the JSON index asked the pool")

    assert make_client(Down()).get("/").status == 200


# ------------------------------------------------------------------------ the summary

def test_summary_shows_the_demo_pool_without_javascript(client: Client) -> None:
    page = Page(front(client).text)
    assert {"summary", "endpoints", "counts", "slots", "resources", "machines"} <= page.ids
    assert page.cells[("slots", "Unclaimed")] == "1"
    assert page.cells[("slots", "Claimed")] == "6"
    assert page.cells[("vm", "running")] == "4"
    assert page.cells[("vm", "idle")] == "6"
    assert page.cells[("vm", "held")] == "4"
    assert page.cells[("vm", "total")] == "14"
    assert page.cells[("schedd2@vm", "running")] == "2"
    assert page.cells[("schedd2@vm", "idle")] == "6"
    assert page.cells[("schedd2@vm", "held")] == "4"
    assert page.cells[("vm/bob@localhost", "held")] == "2"
    assert page.cells[("schedd2@vm/alice@localhost", "idle")] == "3"
    assert page.cells[("cpus", "used")] == "6" and page.cells[("cpus", "total")] == "8"
    assert page.cells[("cpus", "partitionable_free")] == "2"
    text = "".join(page.text)
    assert "HTCondor 25.14.0" in text and "Personal Condor at 127.0.0.1@vm" in text
    assert "1 of these are partitionable slots" in text  # not a misleading "Unclaimed 1" alone


def test_the_demo_pool_wears_a_badge(make_client: Callable[..., Client], pool: DemoPool) -> None:
    class Real:
        """Not the demo: the same ads behind another class."""

        def __getattr__(self, name: str) -> Any:
            return getattr(pool, name)

    assert 'id="demo">DEMO<' in front(make_client()).text
    r = front(make_client(Real()))
    assert r.status == 200 and "DEMO" not in r.text and 'data-demo="false"' in r.text


def test_summary_when_the_pool_is_down(make_client: Callable[..., Client]) -> None:
    class Down(DemoPool):
        def status(self, *args: Any, **kwargs: Any) -> Any:
            raise Unavailable("cannot reach the collector at cm.example.org")

    r = front(make_client(Down()))
    assert r.status == 200
    assert "not available" in r.text and "cannot reach the collector at cm.example.org" in r.text
    assert "/v1/jobs/DEFAULT?" in r.text  # the endpoints are still listed


def test_summary_of_an_empty_pool(make_client: Callable[..., Client]) -> None:
    r = front(make_client(DemoPool(queues={}, histories={}, collector=[])))
    assert r.status == 200
    text = "".join(Page(r.text).text)
    assert "knows no schedd" in text and "knows no slot" in text


# --------------------------------------------------------------------------- escaping

class EvilPool(DemoPool):
    """A pool whose names try to inject markup."""

    def status(self, ad_type: str, constraint: str, projection: Any) -> Any:
        if ad_type == "schedd":
            return [classad2.ClassAd({"Name": EVIL, "MyType": "Scheduler", "TotalIdleJobs": 1})]
        if ad_type == "submitter":
            return [classad2.ClassAd({"Name": EVIL + "@x", "MyType": "Submitter", "ScheddName": EVIL,
                                      "IdleJobs": 1})]
        return [classad2.ClassAd({"Name": "slot1@vm", "MyType": "Machine", "State": EVIL,
                                  "Machine": EVIL})]


def test_everything_from_the_pool_is_escaped(make_client: Callable[..., Client]) -> None:
    r = front(make_client(EvilPool()))
    assert r.status == 200
    assert "<script>" not in r.text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&quot;&#x27;" in r.text
    Page(r.text)  # still well formed


def test_problem_text_and_endpoints_are_escaped() -> None:
    text = dashboard.front_page(EVIL, {EVIL: EVIL}, None, EVIL)
    assert "<script>" not in text and text.count("&lt;script&gt;") >= 4
    doc = openapi.document(EVIL)
    doc["info"]["description"] = EVIL
    assert "<script>" not in pages.api_docs(doc)


# ------------------------------------------------------------------------- live links

def test_every_link_on_the_front_page_answers(client: Client) -> None:
    page = Page(front(client).text)
    links = [link.replace("&amp;", "&") for link in page.links]
    for path in ("/v1/status?query=startd&projection=State,Cpus,Memory", "/v1/config", "/v1/docs",
                 "/v1/openapi.json", "/healthz", "/readyz", "/metrics", "/v1/summary"):
        assert path in links, path
    for link in links:
        if link.startswith("#"):
            assert link[1:] in page.ids, link
            continue
        path, _, query = link.partition("?")
        r = client.get(path, query=query, headers={"Accept": BROWSER})
        assert r.status == 200, (link, r)


def test_job_links_ask_for_a_projection_and_a_page(client: Client) -> None:
    """No link on the page fetches every attribute of every job (#15, item 6)."""
    page = Page(front(client).text)
    jobs = [link for link in page.links if link.startswith(("/v1/jobs/", "/v1/history/"))]
    assert len(jobs) > 30  # every count in the table, and the examples
    for link in jobs:
        params = parse_qs(urlsplit(link.replace("&amp;", "&")).query)
        assert params["projection"] and int(params["limit"][0]) <= 100, link


def test_count_links_lead_to_the_jobs_counted(client: Client) -> None:
    page = Page(front(client).text)
    held = [link.replace("&amp;", "&") for link in page.links
            if link.startswith("/v1/jobs/vm?") and "JobStatus%20%3D%3D%205" in link and "bob" in link]
    assert len(held) == 1
    path, _, query = held[0].partition("?")
    jobs = client.get(path, query=query).json()
    assert len(jobs) == 2 and {j["classad"]["owner"] for j in jobs} == {"bob"}


def test_every_endpoint_family_has_a_live_link(client: Client) -> None:
    links = Page(front(client).text).links
    for family in web.ENDPOINTS:
        assert any(link.startswith(f"/v1/{family}") for link in links), family


def test_no_external_resources(client: Client) -> None:
    for text in (front(client).text, client.get("/v1/docs").text):
        page = Page(text)
        assert not [link for link in page.links + page.sources if "//" in link], "links stay on this daemon"
        assert "http://" not in text and "https://" not in text
        assert 'rel="icon" href="/favicon.ico"' in text
    assert Page(front(client).text).sources == ["/favicon.ico", "/dashboard.css", "/dashboard.js", "/views.js",
                                                "/jobs.js"]
    for name in dashboard.ASSETS:
        body = client.get("/" + name).text
        assert "http://" not in body and "https://" not in body and "@import" not in body, name


@pytest.mark.parametrize("name, media", [("dashboard.js", "text/javascript"), ("views.js", "text/javascript"),
                                         ("jobs.js", "text/javascript"), ("dashboard.css", "text/css")])
def test_the_page_files_come_from_the_package_with_their_licence(client: Client, name: str,
                                                                  media: str) -> None:
    r = client.get("/" + name, headers={"Accept": "*/*"})
    assert r.status == 200 and r.headers["content-type"] == f"{media}; charset=utf-8"
    assert r.body == (Path(dashboard.__file__).parent / "static" / name).read_bytes()
    assert "Apache License, Version 2.0" in r.text[:600]
    assert r.headers["cache-control"] == "public, max-age=300"
    ignored = client.get("/" + name, {"x": "1"})  # an unknown parameter is ignored, and named
    assert ignored.status == 200 and "'x'" in ignored.headers["warning"]


def test_favicon_is_served_so_browsers_log_no_error(client: Client) -> None:
    r = client.get("/favicon.ico", headers={"Accept": "image/avif,image/webp,image/apng,image/svg+xml,"
                                                      "image/*,*/*;q=0.8"})
    assert r.status == 200 and r.headers["content-type"].startswith("image/svg+xml")
    assert r.body.startswith(b"<svg") and "max-age" in r.headers["cache-control"]
    assert client.get("/favicon.ico").status == 200


# ---------------------------------------------------------------------------- API docs

def test_docs_render_the_openapi_document(client: Client) -> None:
    r = client.get("/v1/docs", headers={"Accept": BROWSER})
    assert r.status == 200 and r.headers["content-type"] == "text/html; charset=utf-8"
    doc = openapi.document(__version__, writes=False)  # actions are off here
    page = Page(r.text)
    for path, item in doc["paths"].items():
        assert f"<code>{path}</code>" in r.text, path
        assert item["get"]["operationId"] in page.ids
    for name in doc["components"]["schemas"]:
        assert f"schema-{name}" in page.ids
    for param in ("projection", "constraint", "query", "daemon", "format"):
        assert f"<code>{param}</code>" in r.text
    for code in ("400", "404", "406", "503", "504"):
        assert f"<td>{code}</td>" in r.text
    assert "Retry-After" in r.text


def test_docs_show_the_writes_where_actions_are_on(make_client: Any) -> None:
    r = make_client(actions=True).get("/v1/docs", headers={"Accept": BROWSER})
    page = Page(r.text)
    for path, item in openapi.document(__version__)["paths"].items():
        for method in ("post", "patch"):
            if method in item:
                assert item[method]["operationId"] in page.ids, (path, method)
    assert "<code>/v1/jobs/{schedd}/{clusterid}/{procid}/hold</code>" in r.text
    assert "schema-SubmitRequest" in page.ids


def test_docs_links_answer(client: Client) -> None:
    page = Page(client.get("/v1/docs").text)
    for link in page.links:
        if link.startswith("#"):
            assert link[1:] in page.ids, link
            continue
        r = client.get(link)
        assert r.status in (200, 404), (link, r)
        if r.status == 404:  # an example job id that is not in that history
            assert "not found" in r.json()["message"], link


def test_docs_are_small(client: Client) -> None:
    assert len(client.get("/v1/docs").body) < 180_000  # grew with /v1/summary and the page files


def test_the_page_files_are_package_data() -> None:
    """setup.py ships condor_restd/static/* (so the RPM's and the Debian build's setup.py
    install it), and MANIFEST.in puts them in the sdist."""
    root = Path(dashboard.__file__).parent.parent
    assert '"static/*"' in (root / "setup.py").read_text(encoding="utf-8")
    assert "recursive-include condor_restd/static *" in (root / "MANIFEST.in").read_text(encoding="utf-8")
    shipped = {p.name for p in (root / "condor_restd" / "static").iterdir()}
    assert shipped == set(dashboard.ASSETS)


def test_a_big_pool_lists_its_first_machines_only(make_client: Callable[..., Client], pool: DemoPool) -> None:
    slots = [classad2.ClassAd({"MyType": "Machine", "Name": f"slot1@wn{i:04d}", "Machine": f"wn{i:04d}",
                               "State": "Unclaimed", "Cpus": 4, "Memory": 100}) for i in range(250)]
    big = DemoPool(collector=[*pool.collector, *slots])
    page = Page(front(make_client(big)).text)
    rows = [c for c in page.tags if c == "tr"]
    assert len(rows) < 250 and "The first 200 of 251 machines" in "".join(page.text)
