"""Content negotiation: JSON by default, YAML on request, 406 otherwise, errors in the negotiated format."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from condor_restd import render
from condor_restd.errors import NotAcceptable

from .conftest import Client

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
DATA_URLS = ["/v1/jobs/DEFAULT", "/v1/jobs/DEFAULT/2", "/v1/jobs/DEFAULT/2/0", "/v1/jobs/DEFAULT/2/0/Cmd",
             "/v1/history/DEFAULT", "/v1/grouped_jobs/DEFAULT/Owner", "/v1/grouped_history/DEFAULT/Owner/13",
             "/v1/status", "/v1/status/slot1@vm", "/v1/grouped_status/MyType", "/v1/config",
             "/v1/config/NUM_CPUS", "/v1", "/", "/healthz", "/readyz", "/v1/openapi.json"]


def is_json(r: Any) -> bool:
    return bool(r.headers["content-type"].startswith("application/json"))


def is_yaml(r: Any) -> bool:
    return bool(r.headers["content-type"].startswith("application/yaml"))


# -------------------------------------------------------------------------- JSON default

@pytest.mark.parametrize("accept", [None, "", "*/*", "application/json", "application/*",
                                    "application/json; charset=utf-8", BROWSER])
def test_json_by_default(client: Client, accept: str | None) -> None:
    headers = {"Accept": accept} if accept is not None else {}
    r = client.get("/v1/jobs/DEFAULT", headers=headers)
    assert r.status == 200 and is_json(r)
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    assert len(r.json()) == 14


def test_a_browser_following_a_data_link_gets_json(client: Client) -> None:
    r = client.get("/v1/status", {"query": "startd"}, headers={"Accept": BROWSER})
    assert r.status == 200 and is_json(r)


# -------------------------------------------------------------------------------- YAML

@pytest.mark.parametrize("url", DATA_URLS)
def test_yaml_round_trips_to_the_json_answer(client: Client, url: str) -> None:
    expected = client.get(url).json()
    by_accept = client.get(url, headers={"Accept": "application/yaml"})
    by_format = client.get(url, {"format": "yaml"})
    for r in (by_accept, by_format):
        assert r.status == 200 and is_yaml(r), (url, r)
        assert r.body.endswith(b"\n")
        assert yaml.safe_load(r.text) == expected
    assert by_accept.body == by_format.body


@pytest.mark.parametrize("accept", ["application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml",
                                    "Application/YAML", "application/json;q=0.5, application/yaml",
                                    "text/csv, application/yaml;q=0.1"])
def test_yaml_media_types_and_qualities(client: Client, accept: str) -> None:
    r = client.get("/v1/config/NUM_CPUS", headers={"Accept": accept})
    assert r.status == 200 and is_yaml(r), accept
    assert yaml.safe_load(r.text) == 8


def test_yaml_is_written_by_the_safe_dumper(client: Client) -> None:
    text = client.get("/v1/jobs/DEFAULT", {"format": "yaml"}).text
    assert "!!python" not in text and "!!" not in text
    jobs = yaml.safe_load(text)
    assert [j["jobid"] for j in jobs][:3] == ["2.0", "2.1", "2.2"]
    # a list is one flow line per record, keys in their order, text not escaped to ASCII
    assert text.startswith('- {"jobid": "2.0", "classad": {')
    assert text.count("\n- {") == len(jobs) - 1


def test_format_wins_over_accept(client: Client) -> None:
    r = client.get("/v1/status", {"format": "yaml"}, headers={"Accept": "application/json"})
    assert is_yaml(r)
    r = client.get("/v1/status", {"format": "json"}, headers={"Accept": "application/yaml"})
    assert is_json(r)
    r = client.get("/v1/status", {"format": "json"}, headers={"Accept": "text/csv"})
    assert r.status == 200 and is_json(r)


def test_earlier_of_equal_quality_wins(client: Client) -> None:
    assert is_yaml(client.get("/v1", headers={"Accept": "application/yaml, application/json"}))
    assert is_json(client.get("/v1", headers={"Accept": "application/json, application/yaml"}))
    assert is_json(client.get("/v1", headers={"Accept": "application/yaml;q=0, */*"}))


def test_format_is_not_passed_on_as_a_query_parameter(client: Client) -> None:
    # the handlers refuse unknown parameters; format is taken out before they see it
    assert client.get("/v1/jobs/DEFAULT/2/0/Cmd", {"format": "json"}).json() == "/bin/sleep"
    assert client.get("/healthz", {"format": "yaml"}).text == "status: ok\n"


# --------------------------------------------------------------------------------- 406

@pytest.mark.parametrize("accept", ["text/csv", "application/xml", "text/html", "image/png",
                                    "application/json;q=0", "application/json;q=0, application/yaml;q=0"])
def test_unsatisfiable_accept_is_406(client: Client, accept: str) -> None:
    r = client.get("/v1/jobs/DEFAULT", headers={"Accept": accept})
    assert r.status == 406, accept
    assert is_json(r)
    body = r.json()
    assert body["status"] == 406 and accept.split(";")[0] in body["message"]
    assert body["available"] == ["application/json", "application/yaml", "application/x-ndjson"]


@pytest.mark.parametrize("fmt", ["xml", "html", "", "csv", "json5"])
def test_unknown_format_is_406(client: Client, fmt: str) -> None:
    r = client.get("/v1/status", {"format": fmt})
    assert r.status == 406 and is_json(r)
    assert r.json()["status"] == 406 and "format" in r.json()["message"]


def test_format_given_twice_is_406(client: Client) -> None:
    r = client.get("/v1/status", query="format=json&format=yaml")
    assert r.status == 406 and r.json()["status"] == 406


def test_406_is_json_even_when_yaml_was_asked_for(client: Client) -> None:
    r = client.get("/v1/openapi.yaml", {"format": "json"}, headers={"Accept": "application/yaml"})
    assert r.status == 406 and is_json(r)


def test_html_is_offered_only_where_a_page_exists(client: Client) -> None:
    assert client.get("/", headers={"Accept": "text/html"}).headers["content-type"].startswith("text/html")
    assert client.get("/v1/docs", headers={"Accept": "text/html"}).status == 200
    assert client.get("/v1/docs", headers={"Accept": "application/json"}).status == 406
    assert client.get("/v1", headers={"Accept": "text/html"}).status == 406
    assert client.get("/metrics", headers={"Accept": "application/json"}).status == 406


# ---------------------------------------------------------------- errors, negotiated

@pytest.mark.parametrize("url,params,status", [
    ("/v1/jobs/nosuch", {}, 404), ("/v1/jobs/DEFAULT", {"constraint": "Owner =="}, 400),
    ("/v1/jobs/DEFAULT/x", {}, 400), ("/v1/status", {"query": "bogus"}, 400),
    ("/v1/config/NO_SUCH_KNOB", {}, 404), ("/v1/nope", {}, 404), ("/healthz/extra", {}, 404)])
def test_errors_are_rendered_in_the_negotiated_format(client: Client, url: str, params: dict[str, str],
                                                      status: int) -> None:
    as_json = client.get(url, params)
    assert as_json.status == status and is_json(as_json)
    assert set(as_json.json()) >= {"message", "status"} and as_json.json()["status"] == status
    for r in (client.get(url, params, headers={"Accept": "application/yaml"}),
              client.get(url, {**params, "format": "yaml"})):
        assert r.status == status and is_yaml(r), url
        assert yaml.safe_load(r.text) == as_json.json()


def test_method_errors_are_negotiated_too(client: Client) -> None:
    r = client.request("DELETE", "/v1/jobs/DEFAULT", headers={"Accept": "application/yaml"})
    assert r.status == 405 and is_yaml(r)
    assert yaml.safe_load(r.text)["status"] == 405


def test_errors_of_html_pages_are_json(client: Client) -> None:
    r = client.get("/v1/docs", query="_=1&format=html&format=html")
    assert r.status == 406 and is_json(r) and r.json()["status"] == 406


def test_options_answers_204_without_a_body(client: Client) -> None:
    r = client.request("OPTIONS", "/v1/status")
    assert r.status == 204 and r.body == b""
    assert r.headers["allow"] == "GET, HEAD, OPTIONS"


def test_head_of_yaml_has_the_length_of_the_yaml(client: Client) -> None:
    get = client.get("/v1/status", {"format": "yaml"})
    head = client.request("HEAD", "/v1/status", {"format": "yaml"})
    assert head.status == 200 and head.body == b"" and is_yaml(head)
    assert head.headers["content-length"] == get.headers["content-length"]


# ----------------------------------------------------------------- the negotiator itself

@pytest.mark.parametrize("accept,fmt,offered,expected", [
    (None, None, render.DATA_TYPES, render.JSON),
    ("*/*", None, render.DATA_TYPES, render.JSON),
    ("text/*", None, (render.YAML,), render.YAML),
    ("application/yaml", None, render.DATA_TYPES, render.YAML),
    ("application/json", "yaml", render.DATA_TYPES, render.YAML),
    ("text/html;q=0.9, application/json;q=0.8", None, (render.JSON, render.YAML, render.HTML), render.HTML),
    (BROWSER, None, (render.JSON, render.YAML, render.HTML), render.HTML),
    ("application/json;q=oops, application/yaml", None, render.DATA_TYPES, render.YAML),
    ("  ", None, render.DATA_TYPES, render.JSON),
    (None, "YAML", render.DATA_TYPES, render.YAML),
    ("application/openmetrics-text", None, (render.TEXT,), render.TEXT),
])
def test_negotiate(accept: str | None, fmt: str | None, offered: tuple[str, ...], expected: str) -> None:
    assert render.negotiate(accept, fmt, offered) == expected


@pytest.mark.parametrize("accept,fmt,offered", [
    ("text/csv", None, render.DATA_TYPES), (None, "html", render.DATA_TYPES),
    ("application/json", None, (render.HTML,)), ("application/*;q=0", None, render.DATA_TYPES)])
def test_negotiate_refuses(accept: str | None, fmt: str | None, offered: tuple[str, ...]) -> None:
    with pytest.raises(NotAcceptable) as caught:
        render.negotiate(accept, fmt, offered)
    assert caught.value.status == 406 and caught.value.extra["available"] == list(offered)


def test_a_stream_hands_the_server_bytes_even_for_a_block_of_records() -> None:
    """WSGI servers (cheroot) refuse anything but bytes; a block is sent as its slice, copied."""
    block = render.RecordBlock(b'[\n{"a": 1},\n{"b": 2}\n]\n', [10, 20])
    for media in (render.JSON, render.NDJSON):
        chunks = list(render._stream([block, b'{"c": 3}'], media))
        assert all(type(chunk) is bytes for chunk in chunks)
    assert b"".join(render._stream([block, b'{"c": 3}'], render.JSON)) == \
        b'[\n{"a": 1},\n{"b": 2},\n{"c": 3}\n]\n'
