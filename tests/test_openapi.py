"""The OpenAPI document: valid, served as JSON and YAML, and in step with the routes in both directions."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml
from openapi_spec_validator import validate

from condor_restd import __version__, condor, openapi, web

from .conftest import Client

DOC = openapi.document(__version__)
# Every URL the daemon routes outside the endpoint families.
EXTRA_ROUTES = {"/", "/healthz", "/readyz", "/metrics", "/favicon.ico", "/v1", "/v1/openapi.json",
                "/v1/openapi.yaml", "/v1/docs"}
ALWAYS_ALLOWED = {"format", "_"}


def resolve(item: dict[str, Any]) -> dict[str, Any]:
    ref = item.get("$ref")
    if ref is None:
        return item
    node: Any = DOC
    for part in ref[2:].split("/"):
        node = node[part]
    return resolve(node)


def parameters(path: str, method: str = "get") -> list[dict[str, Any]]:
    return [resolve(p) for p in DOC["paths"][path][method]["parameters"]]


def example_url(path: str) -> str:
    for param in parameters(path):
        if param["in"] == "path":
            path = path.replace("{%s}" % param["name"], str(param["example"]))
    return path


def expand(template: str) -> dict[str, set[str]]:
    """An RFC 6570 template as ENDPOINTS writes it -> {OpenAPI path: query parameter names}."""
    query = re.search(r"\{\?([^}]*)\}", template)
    names = set(query.group(1).split(",")) if query else set()
    template = re.sub(r"\{\?[^}]*\}", "", template)
    first = template.find("{/")
    base, optional = (template, "") if first < 0 else (template[:first], template[first:])
    paths = [base]
    for name in re.findall(r"\{/([^}]+)\}", optional):
        paths.append(paths[-1] + "/{%s}" % name)
    return {p: names for p in paths}


# ---------------------------------------------------------------------------- validity

def test_document_validates_as_openapi_3_1() -> None:
    assert DOC["openapi"].startswith("3.1")
    validate(DOC)


def test_document_is_a_function_of_the_version() -> None:
    assert openapi.document("9.9.9")["info"]["version"] == "9.9.9"
    fresh = openapi.document(__version__)
    fresh["paths"].clear()
    assert openapi.document(__version__)["paths"], "each call gets its own copy"


def test_operation_ids_are_unique() -> None:
    ids = [op["operationId"] for item in DOC["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


# ------------------------------------------------------------------------------ serving

def test_served_as_json(client: Client) -> None:
    r = client.get("/v1/openapi.json")
    assert r.status == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == DOC
    validate(r.json())


def test_served_as_yaml(client: Client) -> None:
    r = client.get("/v1/openapi.yaml")
    assert r.status == 200
    assert r.headers["content-type"].startswith("application/yaml")
    assert yaml.safe_load(r.text) == DOC
    assert client.get("/v1/openapi.json", {"format": "yaml"}).text == r.text


def test_yaml_document_refuses_json(client: Client) -> None:
    assert client.get("/v1/openapi.yaml", headers={"Accept": "application/json"}).status == 406
    assert client.get("/v1/openapi.yaml", headers={"Accept": "*/*"}).status == 200


def test_v1_index_points_at_the_document(client: Client) -> None:
    body = client.get("/v1").json()
    assert body["openapi"] == "/v1/openapi.json" and body["docs"] == "/v1/docs"
    assert body["endpoints"] == web.ENDPOINTS
    assert client.get("/").json()["openapi"] == "/v1/openapi.json"


# ------------------------------------------------------------- the routes, both ways

def test_every_endpoint_family_is_documented_with_its_parameters() -> None:
    documented = set(DOC["paths"])
    expected: set[str] = set(EXTRA_ROUTES)
    for family, template in web.ENDPOINTS.items():
        paths = expand(template)
        assert paths, family
        for path, names in paths.items():
            assert path in documented, f"{family}: {path} is routed but not documented"
            query = {p["name"] for p in parameters(path) if p["in"] == "query"}
            assert query - ALWAYS_ALLOWED <= names, path
            in_path = {p["name"] for p in parameters(path) if p["in"] == "path"}
            assert in_path == set(re.findall(r"\{(\w+)\}", path)), path
        expected |= set(paths)
        # the list URL of a family takes every parameter the template names
        assert {p["name"] for p in parameters(min(paths, key=len)) if p["in"] == "query"} \
            - ALWAYS_ALLOWED == paths[min(paths, key=len)], family
    assert documented == expected, "documented paths that are not routed: %s" % (documented - expected)


def _routed(node: Any, prefix: str) -> set[str]:
    """What the CherryPy tree exposes: exact URLs, and 'prefix/*' for a catch-all handler."""
    out: set[str] = set()
    for name in dir(node):
        if name.startswith("_"):
            continue
        attr = getattr(node, name)
        if callable(attr) and getattr(attr, "exposed", False):
            if name == "index":
                out.add(prefix or "/")
            elif name == "default":
                out.add(f"{prefix}/*")
            else:
                out.add(f"{prefix}/{name}")
        elif not callable(attr) and hasattr(attr, "default") and getattr(attr.default, "exposed", False):
            out |= _routed(attr, f"{prefix}/{name}")
    return out


def test_every_route_in_the_cherrypy_tree_is_documented(client: Client) -> None:
    app: Any = client.app
    root = app.root
    routed = _routed(root, "")
    # CherryPy maps "." in a URL to "_" in a name: compare in that form.
    documented = {p.replace(".", "_") for p in DOC["paths"]}
    catch_all_404 = {"/*", "/v1/*"}  # Root.default and V1.default answer 404 for the rest
    assert catch_all_404 <= routed
    for route in routed - catch_all_404:
        if route.endswith("/*"):
            prefix = route[:-1]
            assert any(p.startswith(prefix) for p in documented), route
        else:
            assert route in documented, route
    for path in documented:
        literal = path.split("/{")[0]
        assert literal in routed or f"{literal}/*" in routed, path
    for probe in ("/nope", "/v1/nope", "/v1/jobs", "/v1/grouped_status"):
        assert client.get(probe).status == 404


@pytest.mark.parametrize("path", sorted(DOC["paths"]))
def test_every_documented_path_is_routed(client: Client, path: str) -> None:
    r = client.get(example_url(path))
    if r.status == 404:  # a job the example ids do not name; never "no such URL"
        message = r.json()["message"]
        assert "no such URL" not in message and "needs" not in message, (path, message)
    else:
        assert r.status == 200, (path, r)
    assert client.request("OPTIONS", example_url(path)).status == 204


def test_examples_return_data_for_almost_every_path(client: Client) -> None:
    ok = [p for p in DOC["paths"] if client.get(example_url(p)).status == 200]
    missing = set(DOC["paths"]) - set(ok)
    # history has no job 2.0 (it is still in the queue): the example ids are shared with jobs
    assert missing <= {"/v1/history/{schedd}/{clusterid}/{procid}",
                       "/v1/history/{schedd}/{clusterid}/{procid}/{attribute}"}, missing


# ------------------------------------------------------- responses match their schemas

def _validator(ref: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({**ref, "components": DOC["components"]})


@pytest.mark.parametrize("path", sorted(DOC["paths"]))
def test_example_responses_match_the_documented_schema(client: Client, path: str) -> None:
    if path in ("/metrics", "/favicon.ico"):  # not JSON
        return
    r = client.get(example_url(path), headers={"Accept": "application/json"})
    responses = DOC["paths"][path]["get"]["responses"]
    assert str(r.status) in responses, (path, r.status)
    response = resolve(responses[str(r.status)])
    schema = response["content"]["application/json"]["schema"]
    errors = list(_validator(schema).iter_errors(r.json()))
    assert not errors, (path, errors[:3])


def test_error_bodies_match_the_error_schema(client: Client) -> None:
    validator = _validator({"$ref": "#/components/schemas/Error"})
    for url, path, params in [
            ("/v1/jobs/nosuch", "/v1/jobs/{schedd}", {}),
            ("/v1/jobs/DEFAULT", "/v1/jobs/{schedd}", {"constraint": "("}),
            ("/v1/status", "/v1/status", {"query": "bogus"}),
            ("/v1/config", "/v1/config", {"daemon": "x"}),
            ("/v1/jobs/DEFAULT", "/v1/jobs/{schedd}", {"format": "xml"}),
            ("/healthz", "/healthz", {"x": "1"})]:
        r = client.get(url, params)
        assert r.status in (400, 404, 406)
        validator.validate(r.json())
        assert str(r.status) in DOC["paths"][path]["get"]["responses"]


# ------------------------------------------------------------------- what it documents

def test_parameter_enums_match_the_daemon() -> None:
    params = DOC["components"]["parameters"]
    assert params["query"]["schema"]["enum"] == list(condor.AD_TYPES) == [
        "any", "startd", "schedd", "master", "collector", "negotiator", "submitter", "accounting",
        "credd", "defrag", "generic", "grid", "had", "license"]
    assert params["daemon"]["schema"]["enum"] == ["master", "collector", "negotiator", "schedd", "startd"]
    assert params["format"]["schema"]["enum"] == ["json", "yaml"]
    assert params["cachebuster"]["name"] == "_"


def test_every_operation_documents_its_errors() -> None:
    for path, item in DOC["paths"].items():
        get = item["get"]
        codes = set(get["responses"])
        assert {"200", "400", "406", "414"} <= codes, path
        assert "_" in {p["name"] for p in parameters(path)}, path
        if path.startswith("/v1/") and path.split("/")[2] in web.ENDPOINTS:
            assert {"404", "503", "504"} <= codes, path
            assert "format" in {p["name"] for p in parameters(path)}, path
        assert item["options"]["responses"]["204"] == {"$ref": "#/components/responses/Preflight"}
    assert "503" in DOC["paths"]["/readyz"]["get"]["responses"]


def test_error_responses_carry_the_error_shape_and_headers() -> None:
    responses = DOC["components"]["responses"]
    error = DOC["components"]["schemas"]["Error"]
    assert error["required"] == ["message", "status"]
    assert error["properties"]["message"]["type"] == "string"
    assert error["properties"]["status"]["type"] == "integer"
    assert error["additionalProperties"] is True
    for name in ("BadRequest", "NotFound", "MethodNotAllowed", "NotAcceptable", "URITooLong",
                 "Unavailable", "Timeout"):
        content = responses[name]["content"]
        assert content["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
        expected = {"application/json"} if name == "NotAcceptable" else {"application/json",
                                                                          "application/yaml"}
        assert set(content) == expected, name
    assert responses["Unavailable"]["headers"]["Retry-After"]["required"] is True
    assert responses["NotReady"]["headers"]["Retry-After"]["required"] is True
    assert "Allow" in responses["MethodNotAllowed"]["headers"]
    assert "405" in DOC["info"]["description"]


def test_data_endpoints_offer_json_and_yaml() -> None:
    for path, item in DOC["paths"].items():
        if path.startswith("/v1/") and path.split("/")[2] in web.ENDPOINTS:
            assert set(item["get"]["responses"]["200"]["content"]) == {"application/json",
                                                                       "application/yaml"}
    root = DOC["paths"]["/"]["get"]["responses"]["200"]["content"]
    assert set(root) == {"application/json", "application/yaml", "text/html"}


def test_pagination_is_not_documented_yet() -> None:
    names = {p["name"] for path in DOC["paths"] for p in parameters(path)}
    assert not names & {"limit", "cursor", "since"}


def test_head_and_other_methods_follow_the_description(client: Client) -> None:
    assert client.request("HEAD", "/v1/openapi.json").status == 200
    r = client.request("POST", "/v1/openapi.json")
    assert r.status == 405 and "GET" in r.headers["allow"]


def test_the_api_reference_covers_the_document() -> None:
    text = (Path(__file__).parent.parent / "docs" / "api.md").read_text(encoding="utf-8")
    for path in DOC["paths"]:
        literal = path.split("/{")[0] if path.count("/") > 2 else path
        assert f"`{literal}" in text, path
    for family in web.ENDPOINTS:
        assert f"/v1/{family}/" in text or f"/v1/{family}`" in text, family
    codes = {code for item in DOC["paths"].values() for op in item.values() for code in op["responses"]}
    for code in codes | {"405"}:
        assert f"| {code} |" in text, code
    for name in ("projection", "constraint", "query", "daemon", "format"):
        assert f"| `{name}` |" in text, name
