"""The OpenAPI document: valid, served as JSON and YAML, and in step with the routes in both directions."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, Callable

import jsonschema  # type: ignore[import-untyped]
import jwt
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import rsa
from openapi_spec_validator import validate

from condor_restd import __version__, condor, openapi, render, web
from condor_restd.auth import IssuerUnavailable

from .conftest import Client, Response

FULL = openapi.document(__version__)
WRITES = ("post", "patch")
# The reads: what every URL answers (GET, and OPTIONS); the writes (acting on jobs, off by
# default) have tests of their own at the end.
DOC = {**FULL, "paths": {path: {method: op for method, op in item.items() if method not in WRITES}
                         for path, item in FULL["paths"].items() if "get" in item}}
# Every URL the daemon routes outside the endpoint families.
EXTRA_ROUTES = {"/", "/healthz", "/readyz", "/metrics", "/favicon.ico", "/v1", "/v1/openapi.json",
                "/v1/openapi.yaml", "/v1/docs", "/dashboard.js", "/views.js", "/jobs.js",
                "/dashboard.css"}
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
    item = FULL["paths"][path]
    operation = item.get(method) or next(op for name, op in item.items() if name in WRITES)
    return [resolve(p) for p in operation["parameters"]]


def query_names(path: str) -> set[str]:
    return {p["name"] for p in parameters(path) if p["in"] == "query"}


def example_url(path: str) -> str:
    for param in parameters(path):
        if param["in"] == "path":
            path = path.replace("{%s}" % param["name"], str(param["example"]))
    return path


def documented_response(path: str, status: int, method: str = "get") -> dict[str, Any] | None:
    response = DOC["paths"][path][method]["responses"].get(str(status))
    return None if response is None else resolve(response)


def documented_headers(path: str, status: int) -> dict[str, dict[str, Any]]:
    """The headers the document gives a response, by lower-case name, resolved."""
    response = documented_response(path, status) or {}
    return {name.lower(): resolve(h) for name, h in response.get("headers", {}).items()}


def protected(path: str) -> bool:
    return path not in web.OPEN_PATHS


# The headers the daemon sets itself: wherever one is sent, the document must say so.
TRACKED_HEADERS = ("etag", "cache-control", "vary", "link", "x-restd-truncated", "www-authenticate",
                   "retry-after", "allow", "warning")


def header_problems(path: str, r: Response) -> list[str]:
    """What the document gets wrong about the headers of this response to `path`."""
    if documented_response(path, r.status) is None:
        return [f"{path}: status {r.status} is not documented"]
    documented = documented_headers(path, r.status)
    problems = []
    for name in TRACKED_HEADERS:
        value = r.headers.get(name)
        if value is None:
            continue
        if name == "vary" and value == "Origin":
            continue  # CORS: on every answer when RESTD_CORS_ORIGINS lists origins, as documented
        if name not in documented:
            problems.append(f"{path} {r.status}: {name}: {value!r} is sent but not documented")
            continue
        schema = documented[name]["schema"]
        coerced: Any = int(value) if schema.get("type") == "integer" and value.isdigit() else value
        for error in jsonschema.Draft202012Validator(schema).iter_errors(coerced):
            problems.append(f"{path} {r.status}: {name}: {value!r}: {error.message}")
    for name, header in documented.items():
        if header.get("required") and name not in r.headers:
            problems.append(f"{path} {r.status}: {name} is documented as required but not sent")
    return problems


ISSUER = "https://tokens.example.org"
AUDIENCE = "https://restd.example.org"
SIGNING_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


class IssuerKeys:
    """Stands in for auth.Issuers: the one signing key the issuer publishes, or an outage."""

    def __init__(self) -> None:
        self.down = False
        self.published = {**jwt.algorithms.RSAAlgorithm.to_jwk(SIGNING_KEY.public_key(), as_dict=True),
                          "kid": "k1", "use": "sig"}

    def jwk(self, issuer: str, kid: str) -> dict[str, Any]:
        if self.down:
            raise IssuerUnavailable("cannot check the token now: its issuer's signing keys cannot "
                                    "be fetched", retry_after=30)
        return self.published


def bearer(user: str = "bob", **changes: Any) -> dict[str, str]:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": user, "iat": now, "exp": now + 600, **changes}
    token = jwt.encode(claims, SIGNING_KEY, algorithm="RS256", headers={"kid": "k1"})
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def token_client(make_client: Callable[..., Client]) -> tuple[Client, IssuerKeys]:
    """The app with RESTD_AUTHENTICATION = TOKEN; alice is an admin, bob is not."""
    client = make_client(authentication="TOKEN", token_issuers=(ISSUER,), token_audience=(AUDIENCE,),
                         uid_domain="localhost", cors_origins=("https://dash.example.org",),
                         admin_users=frozenset({"alice@localhost"}))
    keys = IssuerKeys()
    app: Any = client.app
    app.auth.issuers = keys
    return client, keys


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
    assert FULL["openapi"].startswith("3.1")
    validate(FULL)


def test_document_is_a_function_of_the_version() -> None:
    assert openapi.document("9.9.9")["info"]["version"] == "9.9.9"
    fresh = openapi.document(__version__)
    fresh["paths"].clear()
    assert openapi.document(__version__)["paths"], "each call gets its own copy"


def test_operation_ids_are_unique() -> None:
    ids = [op["operationId"] for item in FULL["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


# ------------------------------------------------------------------------------ serving

def test_served_as_json(client: Client) -> None:
    r = client.get("/v1/openapi.json")
    assert r.status == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == openapi.document(__version__, writes=False) == DOC  # actions are off
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
        for path in paths:
            assert path in documented, f"{family}: {path} is routed but not documented"
            in_path = {p["name"] for p in parameters(path) if p["in"] == "path"}
            assert in_path == set(re.findall(r"\{(\w+)\}", path)), path
        expected |= set(paths)
        # the list URL of a family documents every parameter the template names (and may take
        # more: the templates do not name the page parameters)
        shortest = min(paths, key=len)
        assert paths[shortest] <= query_names(shortest), family
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


def test_examples_return_data_for_every_path(client: Client) -> None:
    missing = {p for p in DOC["paths"] if client.get(example_url(p)).status != 200}
    assert not missing, "the documented examples should name things the demo pool has"


# ------------------------------------------- what each URL takes, and what it answers in

UNKNOWN = "no_such_parameter"


@pytest.mark.parametrize("path", sorted(DOC["paths"]))
def test_each_url_documents_exactly_the_query_parameters_it_takes(client: Client, path: str) -> None:
    """The daemon names what a URL takes when it ignores an unknown parameter (webargs.query_params):
    that list, plus `format` (read by the render tool) and `_` (ignored), is the documented one."""
    r = client.get(example_url(path), {UNKNOWN: "1"})
    assert r.status == 200, (path, r)
    message = r.headers["warning"]
    match = re.search(r"\(this URL takes: (.*)\)\"$", message)
    assert match, message
    assert not header_problems(path, r)
    takes = set() if match.group(1) == "none" else set(match.group(1).split(", "))
    assert query_names(path) - ALWAYS_ALLOWED == takes, path
    assert "_" in query_names(path)
    assert not {p["name"] for p in parameters(path) if p["in"] == "header"} - {"If-None-Match"}


@pytest.mark.parametrize("path", sorted(DOC["paths"]))
def test_each_url_documents_the_formats_it_answers_in(client: Client, path: str) -> None:
    """A 406 lists the types a URL can answer in: exactly the documented 200 content, and the
    `format` values that map to them."""
    r = client.get(example_url(path), headers={"Accept": "application/x-unheard-of"})
    assert r.status == 406, (path, r)
    available = set(r.json()["available"])
    ok = documented_response(path, 200)
    assert ok is not None
    assert set(ok["content"]) == available, path
    fmt = [p for p in parameters(path) if p["name"] == "format"]
    expected = {name for name, media in render.FORMATS.items() if media in available}
    assert set(fmt[0]["schema"]["enum"] if fmt else []) == expected, path
    for name, media in render.FORMATS.items():
        answer = client.get(example_url(path), {"format": name})
        if name in expected:
            assert answer.status == 200 and answer.headers["content-type"].startswith(media), (path, name)
        else:
            assert answer.status == 406, (path, name)


def test_ndjson_is_offered_by_the_job_history_and_status_urls_only() -> None:
    ndjson = {path for path, item in DOC["paths"].items()
              if "application/x-ndjson" in item["get"]["responses"]["200"]["content"]}
    assert ndjson == {p for p in DOC["paths"] if p.startswith(("/v1/jobs/", "/v1/history/"))} \
        | {"/v1/status", "/v1/status/{name}"}


# ------------------------------------------------------- responses match their schemas

def _validator(ref: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({**ref, "components": DOC["components"]})


@pytest.mark.parametrize("path", sorted(DOC["paths"]))
def test_example_responses_match_the_documented_schema(client: Client, path: str) -> None:
    if path in ("/metrics", "/favicon.ico", "/dashboard.js", "/views.js", "/jobs.js", "/dashboard.css"):  # not JSON
        return
    r = client.get(example_url(path), headers={"Accept": "application/json"})
    responses = DOC["paths"][path]["get"]["responses"]
    assert str(r.status) in responses, (path, r.status)
    response = resolve(responses[str(r.status)])
    schema = response["content"]["application/json"]["schema"]
    errors = list(_validator(schema).iter_errors(r.json()))
    assert not errors, (path, errors[:3])


@pytest.mark.parametrize("path", sorted(p for p, item in DOC["paths"].items()
                                        if "application/x-ndjson" in item["get"]["responses"]["200"]["content"]))
def test_ndjson_lines_are_what_the_json_schema_describes(client: Client, path: str) -> None:
    """Each NDJSON line is one item of the JSON array, or the whole JSON value when that is no array."""
    r = client.get(example_url(path), {"format": "ndjson"})
    assert r.status == 200 and r.body.endswith(b"\n")
    lines = [json.loads(line) for line in r.text.splitlines()]
    as_json = client.get(example_url(path)).json()
    assert lines == (as_json if isinstance(as_json, list) else [as_json])
    schema = resolve(DOC["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"])
    item = schema.get("items", schema)
    for line in lines:
        assert not list(_validator(item).iter_errors(line)), path


def test_error_bodies_match_the_error_schema(client: Client) -> None:
    validator = _validator({"$ref": "#/components/schemas/Error"})
    for url, path, params in [
            ("/v1/jobs/nosuch", "/v1/jobs/{schedd}", {}),
            ("/v1/jobs/DEFAULT", "/v1/jobs/{schedd}", {"constraint": "("}),
            ("/v1/jobs/DEFAULT", "/v1/jobs/{schedd}", {"limit": "0"}),
            ("/v1/jobs/DEFAULT", "/v1/jobs/{schedd}", {"cursor": "bm90IG91cnM"}),
            ("/v1/history/DEFAULT", "/v1/history/{schedd}", {"since": "yesterday"}),
            ("/v1/status", "/v1/status", {"query": "bogus"}),
            ("/v1/config", "/v1/config", {"daemon": "x"}),
            ("/v1/jobs/DEFAULT", "/v1/jobs/{schedd}", {"format": "xml"}),
            ("/v1/grouped_jobs/DEFAULT/Owner", "/v1/grouped_jobs/{schedd}/{groupby}", {"format": "ndjson"}),
            ("/healthz", "/healthz", {"format": "csv"})]:
        r = client.get(url, params)
        assert r.status in (400, 404, 406), (url, params, r)
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
    assert params["format_list"]["schema"]["enum"] == ["json", "yaml", "ndjson"]
    assert params["cachebuster"]["name"] == "_"


def test_every_operation_documents_its_errors() -> None:
    for path, item in DOC["paths"].items():
        get = item["get"]
        codes = set(get["responses"])
        assert {"200", "400", "406", "414"} <= codes, path
        assert "_" in {p["name"] for p in parameters(path)}, path
        if path.startswith("/v1/") and path.split("/")[2] in web.ENDPOINTS:
            assert {"401", "403", "404", "503", "504"} <= codes, path
            assert "format" in {p["name"] for p in parameters(path)}, path
        else:
            assert not {"401", "403"} & codes, path
        # a 304 wherever the 200 has an ETag, and If-None-Match to ask for it
        has_etag = "etag" in documented_headers(path, 200)
        assert ("304" in codes) == has_etag, path
        assert ("If-None-Match" in {p["name"] for p in parameters(path) if p["in"] == "header"}) == has_etag
        if has_etag:  # a 304 has the headers of the 200 it stands for
            assert set(documented_headers(path, 304)) == set(documented_headers(path, 200)), path
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
                 "Unavailable", "Timeout", "Unauthorized", "Forbidden"):
        content = responses[name]["content"]
        assert content["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
        expected = {"application/json"} if name == "NotAcceptable" else {"application/json",
                                                                          "application/yaml"}
        assert set(content) == expected, name
    for name, header in (("Unavailable", "Retry-After"), ("NotReady", "Retry-After"),
                         ("MethodNotAllowed", "Allow"), ("Unauthorized", "WWW-Authenticate")):
        assert resolve(responses[name]["headers"][header])["required"] is True, name
    assert "content" not in responses["NotModified"]
    assert "405" in DOC["info"]["description"]


def test_data_endpoints_offer_json_and_yaml() -> None:
    for path, item in DOC["paths"].items():
        if path.startswith("/v1/") and path.split("/")[2] in web.ENDPOINTS:
            assert {"application/json", "application/yaml"} <= set(item["get"]["responses"]["200"]["content"])
    root = DOC["paths"]["/"]["get"]["responses"]["200"]["content"]
    assert set(root) == {"application/json", "application/yaml", "text/html"}


def test_page_parameters_are_documented_on_the_list_urls_only() -> None:
    lists = {"/v1/jobs/{schedd}", "/v1/jobs/{schedd}/{clusterid}", "/v1/history/{schedd}",
             "/v1/history/{schedd}/{clusterid}"}
    for path in DOC["paths"]:
        names = query_names(path)
        assert ({"limit", "cursor"} <= names) == (path in lists), path
        assert ("since" in names) == (path in lists and path.startswith("/v1/history/")), path
        assert ("link" in documented_headers(path, 200)) == (path in lists), path
    params = DOC["components"]["parameters"]
    assert params["limit"]["schema"]["minimum"] == 1
    assert re.fullmatch(params["since"]["schema"]["pattern"].strip("^$"), "13.1")


# ------------------------------------------------------------------------ headers, both ways

@pytest.mark.parametrize("path", sorted(DOC["paths"]))
def test_response_headers_are_documented_where_they_occur(client: Client, path: str) -> None:
    url = example_url(path)
    asks: list[tuple[dict[str, str], dict[str, str]]] = [({}, {}), ({}, {"Accept": "text/html"})]
    if "limit" in query_names(path):
        asks.append(({"limit": "1"}, {}))
    for params, headers in asks:
        r = client.get(url, params, headers=headers)
        if r.status == 406:  # no HTML here
            continue
        assert r.status == 200, (path, r)
        assert not header_problems(path, r)
        if "etag" in r.headers:  # the ETag, sent back, gets a 304 without a body
            again = client.get(url, params, headers={**headers, "If-None-Match": r.headers["etag"]})
            assert again.status == 304 and again.body == b"", path
            assert not header_problems(path, again)
        if params:
            assert "link" in r.headers, path
    first = client.get(url)
    assert ("etag" in first.headers) == ("etag" in documented_headers(path, 200)), path


def test_truncation_and_link_headers_are_documented_where_they_occur(
        make_client: Callable[..., Client]) -> None:
    client = make_client(max_jobs=1)
    truncated: set[str] = set()
    linked: set[str] = set()
    for path in DOC["paths"]:
        for params in ({}, {"limit": "1"} if "limit" in query_names(path) else None):
            if params is None:
                continue
            r = client.get(example_url(path), params)
            assert r.status == 200, (path, r)
            assert not header_problems(path, r)
            if "x-restd-truncated" in r.headers:
                truncated.add(path)
            if "link" in r.headers:
                linked.add(path)
    assert truncated == {p for p in DOC["paths"] if "x-restd-truncated" in documented_headers(p, 200)}
    assert linked == {p for p in DOC["paths"] if "link" in documented_headers(p, 200)}


# ----------------------------------------------------------------------------- tokens

def test_the_bearer_scheme_is_declared_and_optional() -> None:
    scheme = DOC["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    assert "RESTD_AUTHENTICATION" in scheme["description"]
    assert "security" not in DOC, "the default is open: no document-wide requirement"
    for path, item in DOC["paths"].items():
        expected: list[dict[str, list[str]]] = [{}, {"bearerAuth": []}] if protected(path) else []
        assert item["get"]["security"] == expected, path
        assert item["options"]["security"] == [], path  # browsers send no token with a preflight
        unauthorized = documented_response(path, 401)
        assert (unauthorized is not None) == protected(path), path
        assert unauthorized is None or "RESTD_AUTHENTICATION" in unauthorized["description"]
    assert {p for p in DOC["paths"] if not protected(p)} == set(web.OPEN_PATHS) == EXTRA_ROUTES


@pytest.mark.parametrize("path", sorted(DOC["paths"]))
def test_without_a_token_only_the_open_paths_answer(token_client: tuple[Client, IssuerKeys],
                                                     path: str) -> None:
    client, _ = token_client
    url = example_url(path)
    r = client.get(url)
    if protected(path):
        assert r.status == 401, (path, r)
        assert r.headers["www-authenticate"].startswith("Bearer ")
        r = client.get(url, headers={"Authorization": "Bearer not.a.jwt"})
        assert r.status == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]
    else:
        assert r.status == 200, (path, r)
        assert client.get(url, headers={"Authorization": "Bearer not.a.jwt"}).status == 200
    assert not header_problems(path, r)
    assert client.request("OPTIONS", url).status == 204  # no token for a preflight
    r = client.get(url, {"access_token": "x"})
    assert r.status == 400 and "400" in DOC["paths"][path]["get"]["responses"]


def test_token_answers_are_documented(token_client: tuple[Client, IssuerKeys]) -> None:
    client, keys = token_client
    r = client.get("/v1/jobs/DEFAULT", headers=bearer("bob"))
    assert r.status == 200 and r.headers["cache-control"].startswith("private, ")
    assert not header_problems("/v1/jobs/{schedd}", r)
    for path in ("/v1/config", "/v1/config/{attribute}"):
        r = client.get(example_url(path), headers=bearer("bob"))
        assert r.status == 403 and not header_problems(path, r)
        assert client.get(example_url(path), headers=bearer("alice")).status == 200
    r = client.get("/v1/status", headers=bearer("bob", exp=int(time.time()) - 3600))
    assert r.status == 401 and not header_problems("/v1/status", r)
    keys.down = True
    r = client.get("/v1/status", headers=bearer("bob"))
    assert r.status == 503 and "retry-after" in r.headers and not header_problems("/v1/status", r)
    assert client.get("/healthz", headers=bearer("bob")).status == 200  # never asks the issuer


def test_head_and_other_methods_follow_the_description(client: Client) -> None:
    assert client.request("HEAD", "/v1/openapi.json").status == 200
    r = client.request("POST", "/v1/openapi.json")
    assert r.status == 405 and "GET" in r.headers["allow"]
    assert not header_problems("/v1/openapi.json", client.get("/v1/openapi.json"))


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
    names = {p["name"] for path in DOC["paths"] for p in parameters(path) if p["in"] == "query"}
    for name in names:
        assert f"| `{name}` |" in text, name
    headers = {name for response in DOC["components"]["responses"].values()
               for name in response.get("headers", {})}
    headers |= {name for item in DOC["paths"].values() for name in item["get"]["responses"]["200"].get("headers", {})}
    headers |= {p["name"] for path in DOC["paths"] for p in parameters(path) if p["in"] == "header"}
    for name in headers:
        assert f"`{name}" in text, name
    for section in ("## Pages", "## Caching and ETags", "## NDJSON", "## Authentication"):
        assert section in text, section
    assert "(security.md" in text and "application/x-ndjson" in text and 'rel="next"' in text


# ----------------------------------------------------------------------- acting on jobs

def write_operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, item in FULL["paths"].items()
            for method, op in item.items() if method in WRITES]


def test_the_writes_are_described_where_actions_are_on(make_client: Any) -> None:
    assert make_client(actions=True).get("/v1/openapi.json").json() == FULL
    validate(openapi.document(__version__, writes=False))


def test_every_write_is_documented_and_routed(make_client: Any) -> None:
    """Each documented write answers as documented on the demo pool (no token: 401), and each
    path's preflight names the write methods."""
    from condor_restd import web as web_module
    client = make_client(actions=True)
    operations = write_operations()
    assert {op["operationId"] for _, _, op in operations} >= {
        "holdJob", "releaseCluster", "removeConstraint", "vacateJob", "editJob", "submitJobs"}
    for path, method, op in operations:
        url = example_url(path).replace("/v1/jobs/DEFAULT/2/0", "/v1/jobs/DEFAULT/17/0")
        body = {"constraint": "true"} if "{clusterid}" not in path else {}
        r = client.request(method.upper(), url, headers={"Content-Type": "application/json"},
                           body=json.dumps(body).encode())
        assert r.status == 401 and "401" in op["responses"], (path, method, r)
        assert op["tags"] == ["actions"] and op["security"] == [{"bearerAuth": []}]
        assert "requestBody" in op and op["requestBody"]["content"]["application/json"]
        preflight = client.request("OPTIONS", url)
        assert method.upper() in preflight.headers["allow"], path
    assert web_module.webwrite.WRITES == ("POST", "PATCH")


def test_write_answers_match_their_schemas(make_client: Any) -> None:
    from condor_restd import demoacts
    from condor_restd.demo import DemoPool
    client = make_client(DemoPool(), actions=True, edit_attributes=frozenset({"jobprio"}))
    alice = {"Authorization": f"Bearer {demoacts.token('alice')}",
             "Content-Type": "application/json"}
    cases = [("POST", "/v1/jobs/{schedd}/{clusterid}/{procid}/hold", "/v1/jobs/DEFAULT/17/0/hold", {}),
             ("PATCH", "/v1/jobs/{schedd}/{clusterid}", "/v1/jobs/DEFAULT/17", {"attributes": {"JobPrio": 3}}),
             ("POST", "/v1/jobs/{schedd}", "/v1/jobs/DEFAULT", {"description": {"executable": "/bin/true"}})]
    for method, path, url, body in cases:
        r = client.request(method, url, headers=alice, body=json.dumps(body).encode())
        op = FULL["paths"][path][method.lower()]
        assert str(r.status) in op["responses"], (path, r)
        schema = resolve(op["responses"][str(r.status)]["content"]["application/json"]["schema"])
        jsonschema.validate(r.json(), {**schema, "components": FULL["components"]})
        request_schema = resolve(op["requestBody"]["content"]["application/json"]["schema"])
        jsonschema.validate(body, {**request_schema, "components": FULL["components"]})
