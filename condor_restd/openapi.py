"""The OpenAPI 3.1 document describing every path, parameter, response and error of the API."""

from __future__ import annotations

import copy
import functools
from typing import Any

from . import openapi_writes
from .condor import AD_TYPES, DAEMON_TYPES

Schema = dict[str, Any]

JSON = "application/json"
YAML = "application/yaml"
NDJSON = "application/x-ndjson"
HTML = "text/html"
TEXT = "text/plain"
FAVICON = "image/svg+xml"

ATTRIBUTE_PATTERN = "^[A-Za-z_][A-Za-z0-9_]*$"
CONFIG_PATTERN = "^[A-Za-z_][A-Za-z0-9_.]*$"
# The daemon refuses control characters: in a path segment all of them, in a query value all
# but tab, newline and carriage return (a constraint may be written on several lines).
PATH_TEXT = "^[^\\x00-\\x1f\\x7f]*$"
QUERY_TEXT = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f]*$"
MAX_SEGMENT = 1024  # a longer path segment gets a 414
MAX_ID = 9999999999  # ids and limit: at most ten digits
JOB_ID_PATTERN = "^[0-9]{1,10}(\\.[0-9]{1,10})?$"
CURSOR_PATTERN = "^[A-Za-z0-9_-]+$"  # what the daemon gives out: unpadded base64url

DESCRIPTION = """\
A read-only REST API over an HTCondor pool: the job queues and histories of its schedds,
the ads in its collector, and its configuration.

Every endpoint answers GET and HEAD; OPTIONS answers CORS preflight requests with 204 and no
body. Any other method is answered 405, with an `Allow` header.

Results are JSON by default. Send `Accept: application/yaml`, or add `?format=yaml`, for YAML
(`format` wins over `Accept`). The job and history URLs and `/v1/status` also answer in NDJSON,
one JSON value a line (each job or ad of a list on its own line), for
`Accept: application/x-ndjson` (or `application/ndjson`, `application/jsonl`) or
`?format=ndjson`. An `Accept` header or a `format` the endpoint cannot answer in gets 406, and
the 406 body lists the `available` types.

ClassAd attribute names are lowercased in every output key; attribute names in paths,
`projection` and `groupby` are case-insensitive. Values use HTCondor's JSON encoding of
ClassAds: an unevaluated expression is the string `"/Expr(<expression>)/"`.

Pages: the list URLs of jobs and history take `limit`, a page size, and `cursor`. Queue pages
are in job-id order, history pages newest first. While more records follow, the answer carries
`Link: <url>; rel="next"`: request that URL as it is, and stop at the first answer without a
`Link`. Without `limit` and `cursor`, a list is the whole result up to RESTD_MAX_JOBS jobs; an
answer that limit cut short says so with `X-Restd-Truncated: true` (the grouped URLs too).

Caching: every 200 in JSON, YAML or NDJSON has an `ETag`, a `Cache-Control` header
(`max-age=` the daemon's RESTD_CACHE_TTL, or `no-cache` when that is 0; preceded by `private,`
when tokens are on) and `Vary`. A request whose `If-None-Match` names the current ETag gets 304
Not Modified, with no body.

Authentication: by default every URL is open to whoever can connect. A site that sets
RESTD_AUTHENTICATION = TOKEN makes every pool endpoint require a bearer JWT from one of its
trusted issuers (`Authorization: Bearer <token>`, the `bearerAuth` scheme); hence the security
of those operations reads "none, or bearerAuth". With tokens on, a missing or unacceptable token
gets 401 with a `WWW-Authenticate: Bearer ...` challenge, a user who may not see the answer
gets 403 (the configuration is for RESTD_ADMIN_USERS only), and a token whose issuer does not
hand out its signing keys gets 503. The probes, `/metrics`, `/`, `/favicon.ico`, `/v1` and this
document never need a token. A token in the URL (`access_token=`) is refused with 400.

Every error has the same body, in the negotiated format (JSON when that is not JSON or YAML):
`{"message": "<a sentence>", "status": <code>}`, sometimes with more keys. A query parameter
given twice is a 400. A query parameter the URL does not take is ignored, as v1 ignored it,
and named in a `Warning: 299 - "..."` header (RFC 7234) with what the URL takes, so that a
typo shows. A parameter named `_` is ignored everywhere without a warning: the cache-busters
browsers and JavaScript libraries append.
"""

# ------------------------------------------------------------------------------ schemas


def _ref(kind: str, name: str) -> Schema:
    return {"$ref": f"#/components/{kind}/{name}"}


def _object(properties: dict[str, Schema], description: str, extra: bool | Schema = False) -> Schema:
    return {"type": "object", "description": description, "required": list(properties),
            "properties": properties, "additionalProperties": extra}


def _schemas() -> dict[str, Schema]:
    classad = {"type": "object", "additionalProperties": True,
               "description": "A ClassAd in HTCondor's JSON encoding; every key is the attribute "
                              "name in lower case. With `projection`, only those attributes."}
    job = _object({"jobid": {"type": "string", "pattern": "^[0-9]+\\.[0-9]+$",
                             "description": "ClusterId.ProcId", "examples": ["2.0"]},
                   "classad": _ref("schemas", "ClassAd")},
                  "One job: its id and its job ad.")
    status_ad = _object({"name": {"type": ["string", "null"], "description": "The ad's Name."},
                         "type": {"type": ["string", "null"],
                                  "description": "The ad's MyType (Machine, Scheduler, ...)."},
                         "classad": _ref("schemas", "ClassAd")},
                        "One collector ad: its name, its type and the ad itself.")
    checks = {"type": "object", "required": ["collector", "schedd"],
              "properties": {"collector": {"type": "string"}, "schedd": {"type": "string"}},
              "additionalProperties": {"type": "string"},
              "description": "Each dependency: \"ok\", or why it is not reachable."}
    error = {"type": "object", "required": ["message", "status"],
             "properties": {"message": {"type": "string", "description": "What went wrong."},
                            "status": {"type": "integer", "minimum": 400, "maximum": 599,
                                       "description": "The HTTP status code, repeated."}},
             "additionalProperties": True,
             "description": "Every error: a sentence and the status, sometimes more keys."}
    links = {"type": "string", "description": "A path on this daemon."}
    return {
        "Error": error,
        "NotReady": {"allOf": [_ref("schemas", "Error"),
                               {"type": "object", "required": ["checks"],
                                "properties": {"checks": _ref("schemas", "Checks")}}],
                     "description": "A 503 from /readyz: the error, and which check failed."},
        "ClassAd": classad,
        "Job": job,
        "JobList": {"type": "array", "items": _ref("schemas", "Job")},
        "JobGroups": {"type": "object", "additionalProperties": _ref("schemas", "JobList"),
                      "description": "Jobs by their value of the groupby attribute (as text); "
                                     "jobs lacking the attribute are left out."},
        "StatusAd": status_ad,
        "StatusList": {"type": "array", "items": _ref("schemas", "StatusAd")},
        "StatusGroups": {"type": "object", "additionalProperties": _ref("schemas", "StatusList"),
                         "description": "Ads by their value of the groupby attribute (as text); "
                                        "ads lacking the attribute are left out."},
        "AttributeValue": {"not": {"type": "null"},
                           "description": "One attribute's value: any JSON value but null "
                                          "(an undefined attribute is a 404)."},
        "ConfigValue": {"type": ["string", "number", "boolean"],
                        "description": "A configuration value. The local configuration is typed; "
                                       "a daemon's (with `daemon`) is its text."},
        "Config": {"type": "object", "additionalProperties": _ref("schemas", "ConfigValue"),
                   "description": "Every defined configuration knob and its value."},
        "Checks": checks,
        "Health": _object({"status": {"const": "ok"}}, "The process is serving."),
        "Ready": _object({"status": {"const": "ready"}, "checks": _ref("schemas", "Checks")},
                         "The collector and the default schedd answer."),
        "Service": _object({"name": {"const": "condor_restd"}, "version": {"type": "string"},
                            "api": links, "openapi": links, "health": links, "ready": links,
                            "metrics": links},
                           "Where things are on this daemon."),
        "ApiIndex": _object({"version": {"type": "string"},
                             "endpoints": {"type": "object", "additionalProperties": {"type": "string"},
                                           "description": "Each endpoint family and its URI "
                                                          "template (RFC 6570)."},
                             "openapi": links, "docs": links},
                            "The v1 endpoints."),
        "OpenAPI": {"type": "object", "required": ["openapi", "info", "paths"],
                    "description": "This document."},
        **_summary_schemas(),
    }


def _summary_schemas() -> dict[str, Schema]:
    count = {"type": ["integer", "null"], "minimum": 0}
    counts = {k: {**count, "description": d} for k, d in (
        ("idle", "Idle jobs."), ("running", "Running jobs."), ("held", "Held jobs."),
        ("removed", "Removed jobs still in the queue (the Scheduler ad's TotalRemovedJobs)."),
        ("total", "Every job ad in the queue (TotalJobAds), whatever its status."))}
    number = {"type": "number", "minimum": 0}
    resource = _object({"used": number, "total": number, "partitionable_free": number},
                       "In use by claimed slots, the total, and what partitionable slots have left.")
    resources = _object({"cpus": resource, "memory": resource, "gpus": resource},
                        "Cores, memory in MB and GPUs.")
    tally = {"type": "object", "additionalProperties": {"type": "number"}}
    owner = _object({"owner": {"type": "string", "description": "The Submitter ad's Name: user@domain, "
                                                                "or group.user@domain."},
                     **{k: {"type": "integer", "minimum": 0} for k in ("idle", "running", "held")},
                     "constraint": {"type": "string", "description": "A job constraint for this "
                                                                     "owner's jobs."}},
                    "One submitter's jobs in one schedd, from its Submitter ad.")
    schedd = _object({"name": {"type": "string"},
                      "updated": {"type": ["integer", "null"],
                                  "description": "When the collector last heard from the schedd "
                                                 "(LastHeardFrom, Unix time)."},
                      **counts, "owners": {"type": "array", "items": _ref("schemas", "OwnerCounts")}},
                     "condor_q -totals for one schedd (null where the ads do not say).")
    machine = _object({"machine": {"type": "string"}, "slots": {"type": "integer"},
                       "states": tally, "partitionable": {"type": "integer"},
                       "cpus": resource, "memory": resource, "gpus": resource},
                      "One machine's slots and resources.")
    summary = _object({
        "pool": _object({"name": {"type": ["string", "null"]}, "version": {"type": ["string", "null"]}},
                        "The collector's Name, and its HTCondor version."),
        "scope": {"enum": ["all", "own"], "description": "`own`: only the requester's jobs are "
                                                         "counted (RESTD_USER_JOB_SCOPE = OWN)."},
        "source": {"const": "collector", "description": "Where the counts come from."},
        "job_statuses": {"type": "array", "description": "JobStatus codes and their names.",
                         "items": _object({"code": {"type": "integer"}, "name": {"type": "string"}},
                                          "One JobStatus code.")},
        "jobs": _object({"totals": _object(counts, "The sums over the schedds."),
                         "schedds": {"type": "array", "items": _ref("schemas", "ScheddCounts")}},
                        "Jobs by schedd and owner."),
        "slots": _object({"total": {"type": "integer"}, "by_state": tally, "by_type": tally,
                          "partitionable": {"type": "integer"}},
                         "Slots by state (as condor_status -total) and by type."),
        "cores_by_state": tally, "resources": resources,
        "machines": {"type": "array", "items": _ref("schemas", "MachineSummary")}},
        "The pool in counts, from the collector's Scheduler, Submitter and Machine ads.")
    return {"Summary": summary, "ScheddCounts": schedd, "OwnerCounts": owner, "MachineSummary": machine}


# ---------------------------------------------------------------------------- parameters


def _param(name: str, where: str, schema: Schema, description: str,
           example: Any = None) -> Schema:
    param: Schema = {"name": name, "in": where, "required": where == "path",
                     "description": description, "schema": schema}
    if example is not None:
        param["example"] = example
    return param


QUERY_TYPES = list(AD_TYPES)
DAEMONS = list(DAEMON_TYPES)

PARAMETERS: dict[str, Schema] = {
    "schedd": _param("schedd", "path", {"type": "string", "minLength": 1, "maxLength": MAX_SEGMENT,
                                        "pattern": PATH_TEXT},
                     "A schedd's Name as the collector knows it, or DEFAULT for the local "
                     "schedd. An unknown schedd is a 404.", "DEFAULT"),
    "clusterid": _param("clusterid", "path", {"type": "integer", "minimum": 0, "maximum": MAX_ID},
                        "A cluster id (digits only).", 2),
    "history_clusterid": _param("clusterid", "path", {"type": "integer", "minimum": 0,
                                                      "maximum": MAX_ID},
                                "A cluster id (digits only).", 13),
    "procid": _param("procid", "path", {"type": "integer", "minimum": 0, "maximum": MAX_ID},
                     "A proc id within the cluster (digits only).", 0),
    "attribute": _param("attribute", "path", {"type": "string", "pattern": ATTRIBUTE_PATTERN},
                        "A job attribute name, case-insensitive.", "Cmd"),
    "groupby": _param("groupby", "path", {"type": "string", "pattern": ATTRIBUTE_PATTERN},
                      "The attribute to group by, case-insensitive.", "Owner"),
    "status_groupby": _param("groupby", "path", {"type": "string", "pattern": ATTRIBUTE_PATTERN},
                             "The attribute to group by, case-insensitive.", "MyType"),
    "name": _param("name", "path", {"type": "string", "minLength": 1, "maxLength": MAX_SEGMENT,
                                    "pattern": PATH_TEXT},
                   "The Name of the ads to return (an exact match).", "slot1@vm"),
    "config_attribute": _param("attribute", "path", {"type": "string", "pattern": CONFIG_PATTERN},
                               "A configuration knob name, case-insensitive.", "NUM_CPUS"),
    "projection": _param("projection", "query", {"type": "string", "pattern": QUERY_TEXT},
                         "Comma-separated attribute names (whitespace around names ignored): only "
                         "these appear in each classad. Empty means every attribute.", "Owner,Cmd"),
    "constraint": _param("constraint", "query", {"type": "string", "pattern": QUERY_TEXT},
                         "A ClassAd expression the ads must match. It is parsed before any query "
                         "reaches the pool; a malformed one is a 400.", 'Owner == "alice"'),
    "query": _param("query", "query", {"type": "string", "enum": QUERY_TYPES, "default": "any"},
                    "The collector ad type to query.", "startd"),
    "daemon": _param("daemon", "query", {"type": "string", "enum": DAEMONS},
                     "Ask this running daemon for its configuration, instead of reading the "
                     "local configuration.", "master"),
    "limit": _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                    "Answer in pages of at most this many jobs; a `Link` header leads to the next "
                    "page while there is one. RESTD_MAX_JOBS caps the page size (100000 when it "
                    "is 0). Without `limit` and `cursor`, the whole list comes in one answer, up "
                    "to RESTD_MAX_JOBS jobs.", 100),
    "cursor": _param("cursor", "query", {"type": "string", "pattern": CURSOR_PATTERN},
                     "Where a page starts. Opaque: take it, with the rest of the URL, from the "
                     "previous page's `Link: <url>; rel=\"next\"` header. One this daemon did not "
                     "give out for this kind of list (queue or history) is a 400.",
                     "eyJ2IjoxLCJzIjoiam9icyIsImFmdGVyIjpbMiwxXX0"),
    "since": _param("since", "query", {"type": "string", "pattern": JOB_ID_PATTERN},
                    "Only the records newer than this job, a job id `cluster` or `cluster.proc`: "
                    "history is read newest first and stops at that job, which is left out. "
                    "Anything else is a 400.", "13.1"),
    "if_none_match": _param("If-None-Match", "header", {"type": "string"},
                            "ETags of answers the client holds (or `*`): when the current answer "
                            "has one of them, it is a 304 with no body.",
                            '"5a1f0c3e9b7d24e6a8c1f0b3d2e4a6c8"'),
    "format": _param("format", "query", {"type": "string", "enum": ["json", "yaml"]},
                     "The response format; overrides the Accept header.", "yaml"),
    "format_list": _param("format", "query", {"type": "string", "enum": ["json", "yaml", "ndjson"]},
                          "The response format; overrides the Accept header. `ndjson` writes one "
                          "JSON value a line.", "ndjson"),
    "format_root": _param("format", "query", {"type": "string", "enum": ["json", "yaml", "html"]},
                          "The response format; overrides the Accept header.", "json"),
    "format_yaml": _param("format", "query", {"type": "string", "enum": ["yaml"]},
                          "The response format; this document is YAML only.", "yaml"),
    "format_html": _param("format", "query", {"type": "string", "enum": ["html"]},
                          "The response format; this page is HTML only.", "html"),
    "cachebuster": _param("_", "query", {"type": "string", "pattern": QUERY_TEXT},
                          "Ignored: the cache-buster browsers and JavaScript libraries append.",
                          "1700000000000"),
}

# ----------------------------------------------------------------------------- responses


def _content(schema: Schema, *media: str) -> dict[str, Schema]:
    return {m: {"schema": schema} for m in media}


def _error(description: str, *, headers: dict[str, Schema] | None = None,
           schema: str = "Error", media: tuple[str, ...] = (JSON, YAML)) -> Schema:
    response: Schema = {"description": description,
                        "content": _content(_ref("schemas", schema), *media),
                        "headers": {**(headers or {}), "Warning": _ref("headers", "Warning")}}
    return response


def _header(description: str, schema: Schema, example: str | None = None,
            required: bool = True) -> Schema:
    header: Schema = {"description": description, "required": required, "schema": schema}
    if example is not None:
        header["example"] = example
    return header


RETRY_AFTER = {"description": "Seconds to wait before trying again.", "required": True,
               "schema": {"type": "integer", "minimum": 0}}
ALLOW = {"description": "The methods this API answers.", "required": True,
         "schema": {"type": "string"}, "example": "GET, HEAD, OPTIONS"}

ETAG_PATTERN = '^("[0-9a-f]+-[0-9a-f]{8}"|W/"[0-9a-f]{32}")$'
HEADERS: dict[str, Schema] = {
    "ETag": _header("A validator of this answer's body (in its format); send it back in "
                    "`If-None-Match` to get a 304 while the answer is unchanged. Strong "
                    "(the body's length and CRC-32, in hex), or weak (`W/`) on a streamed "
                    "history, where it stands for the ids of the records sent in this format.",
                    {"type": "string", "pattern": ETAG_PATTERN}, '"1f3a-5a1f0c3e"'),
    "HtmlETag": _header("As for JSON and YAML; the HTML page has none.",
                        {"type": "string", "pattern": ETAG_PATTERN}, required=False),
    "CacheControl": _header("`max-age=` RESTD_CACHE_TTL seconds, as long as the daemon itself "
                            "reuses the answer, or `no-cache` when that is 0. With tokens on, "
                            "`private, ` comes first: shared caches must not keep it. The health "
                            "probes /healthz and /readyz say `no-store`.",
                            {"type": "string",
                             "pattern": "^(private, )?(max-age=[0-9]+|no-cache|no-store)$"},
                            "max-age=2"),
    "HtmlCacheControl": _header("As for JSON and YAML; the HTML page has none.",
                                {"type": "string",
                                 "pattern": "^(private, )?(max-age=[0-9]+|no-cache)$"},
                                required=False),
    "IconCacheControl": _header("The icon may be kept for a day.", {"type": "string"},
                                "public, max-age=86400"),
    "AssetCacheControl": _header("The file may be kept for five minutes.", {"type": "string"},
                                 "public, max-age=300"),
    "Vary": _header("The request headers the answer depends on (and `Origin` when "
                    "RESTD_CORS_ORIGINS lists origins).", {"type": "string"},
                    "Accept, Authorization"),
    "HtmlVary": _header("As for JSON and YAML; the HTML page says `Accept` (this URL answers "
                        "JSON too), and `Origin` when RESTD_CORS_ORIGINS lists origins.",
                        {"type": "string"}, required=False),
    "Link": _header("Only while more records follow: the URL of the next page, this URL with "
                    "`cursor` and `limit` set (RFC 8288).",
                    {"type": "string", "pattern": '^<[^>]+>; rel="next"$'},
                    '</v1/jobs/DEFAULT?cursor=eyJ2IjoxLCJzIjoiam9icyIsImFmdGVyIjpbMiwxXX0&limit=2>; '
                    'rel="next"', required=False),
    "Truncated": _header("Only when RESTD_MAX_JOBS cut the answer short, and no next page can "
                         "be offered: `true`. Narrow the constraint, or ask for pages.",
                         {"type": "string", "enum": ["true"]}, "true", required=False),
    "WWWAuthenticate": _header("The bearer challenge (RFC 6750): `Bearer realm=\"condor_restd\"`, "
                               "with `error=\"invalid_token\"` and an `error_description` when "
                               "a token was sent but cannot be accepted.",
                               {"type": "string", "pattern": '^Bearer realm="[^"]*"'},
                               'Bearer realm="condor_restd", error="invalid_token", '
                               'error_description="the token has expired"'),
    "RetryAfter": RETRY_AFTER,
    "Allow": ALLOW,
    "Warning": _header("Only when the request had query parameters this URL does not take: they "
                       "were ignored, and are named here, with what the URL takes (RFC 7234).",
                       {"type": "string", "pattern": '^299 - "'},
                       '299 - "ignored unknown query parameter \'constriant\' (this URL takes: '
                       'projection, constraint, limit, cursor)"', required=False),
}
CACHED_HEADERS = {"ETag": "ETag", "Cache-Control": "CacheControl", "Vary": "Vary"}
HTML_CACHED_HEADERS = {"ETag": "HtmlETag", "Cache-Control": "HtmlCacheControl", "Vary": "HtmlVary"}
LIST_HEADERS = {"Link": "Link", "X-Restd-Truncated": "Truncated"}
GROUP_HEADERS = {"X-Restd-Truncated": "Truncated"}


def _headers(names: dict[str, str]) -> dict[str, Schema]:
    """Response headers: {header name: name in components/headers} -> references."""
    return {name: _ref("headers", ref) for name, ref in names.items()}


def _not_modified(headers: dict[str, str]) -> Schema:
    """A 304 has no body, but the headers its 200 would have had."""
    return {"description": "The answer has not changed since the ETag the client sent in "
                           "`If-None-Match`: no body, the headers of the 200.",
            "headers": _headers({**headers, "Warning": "Warning"})}


RESPONSES: dict[str, Schema] = {
    "BadRequest": _error("A malformed constraint, a bad attribute name, query or daemon, a "
                         "non-integer id, a bad `limit`, `cursor` or `since`, an unknown or "
                         "repeated query parameter, a URL with control characters or invalid "
                         "UTF-8, or (when tokens are on) a token in the URL (`access_token`)."),
    "NotFound": _error("No such schedd, job, attribute, configuration knob or URL."),
    "MethodNotAllowed": _error("A method other than GET, HEAD or OPTIONS; the API is read-only "
                               "(but for POST and PATCH on /v1/jobs with RESTD_ACTIONS).",
                               headers={"Allow": _ref("headers", "Allow")}),
    "NotAcceptable": _error("Neither the Accept header nor `format` names a type this endpoint "
                            "can answer in. The body is always JSON and lists the `available` "
                            "types.", media=(JSON,)),
    "URITooLong": _error("The URL, or one of its path segments, is too long."),
    "Unavailable": _error("The collector or a schedd cannot be reached or failed, or every "
                          "query worker is busy; or, when tokens are on, the token's issuer does "
                          "not hand out its signing keys, so the token cannot be checked now.",
                          headers={"Retry-After": _ref("headers", "RetryAfter")}),
    "Timeout": _error("A pool query took longer than the daemon's timeout (RESTD_QUERY_TIMEOUT)."),
    "NotReady": _error("The collector or the default schedd is not reachable; `checks` says which.",
                       headers={"Retry-After": _ref("headers", "RetryAfter")}, schema="NotReady"),
    "Unauthorized": _error("Only when the site turned tokens on (RESTD_AUTHENTICATION = "
                           "TOKEN): no bearer token, another scheme than Bearer, or a token "
                           "that cannot be accepted (malformed, forged, expired, not valid yet, "
                           "for another audience, from an issuer not trusted here). "
                           "`WWW-Authenticate` says which.",
                           headers={"WWW-Authenticate": _ref("headers", "WWWAuthenticate")}),
    "Forbidden": _error("Only when the site turned tokens on: the token is valid, but its user "
                        "maps to no HTCondor user, or may not see this answer (the "
                        "configuration is for RESTD_ADMIN_USERS only)."),
    "Conflict": _error("The jobs are not in a state for the action; a constraint matching more "
                       "than RESTD_ACTION_CONFIRM_ABOVE jobs waits for `confirm` (the body has "
                       "`matched`); or a request with this Idempotency-Key is still running."),
    "TooLarge": _error("The body is larger than 1 MiB."),
    "UnsupportedMediaType": _error("The body is not sent as application/json."),
    "Unprocessable": _error("This Idempotency-Key was used with another request."),
    "NotModified": _not_modified(CACHED_HEADERS),
    "NotModifiedPage": _not_modified({**CACHED_HEADERS, **LIST_HEADERS}),
    "NotModifiedGroups": _not_modified({**CACHED_HEADERS, **GROUP_HEADERS}),
    "Preflight": {"description": "A CORS preflight answer: no body.",
                  "headers": {"Allow": _ref("headers", "Allow"),
                              "Access-Control-Allow-Methods": {"schema": {"type": "string"}},
                              "Access-Control-Allow-Headers": {"schema": {"type": "string"}},
                              "Access-Control-Max-Age": {"schema": {"type": "integer"}}}},
}

CLIENT_ERRORS = {"400": "BadRequest", "406": "NotAcceptable", "414": "URITooLong"}
POOL_ERRORS = {**CLIENT_ERRORS, "404": "NotFound", "503": "Unavailable", "504": "Timeout"}
AUTH_ERRORS = {"401": "Unauthorized", "403": "Forbidden"}
# A bearer token is optional (the default is open) or required (RESTD_AUTHENTICATION = TOKEN):
# the pool endpoints declare both. The open paths, and every preflight, declare none.
OPTIONAL_BEARER: list[Schema] = [{}, {"bearerAuth": []}]
SECURITY_SCHEMES = {
    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                   "description": "A signed JWT from one of the issuers in RESTD_TOKEN_ISSUERS, "
                                  "as `Authorization: Bearer <token>`. Needed only where the site "
                                  "sets RESTD_AUTHENTICATION = TOKEN; otherwise ignored. See the "
                                  "security guide (docs/security.md) for the checks and who sees "
                                  "what."},
}

# ---------------------------------------------------------------------------- operations


def _params(*names: str) -> list[Schema]:
    return [_ref("parameters", n) for n in (*names, "cachebuster")]


def _operation(operation_id: str, tag: str, summary: str, description: str, params: list[Schema],
               ok: Schema, errors: dict[str, str], *, protected: bool = True,
               cached: dict[str, str] | None = CACHED_HEADERS,
               headers: dict[str, str] | None = None, not_modified: str = "NotModified") -> Schema:
    """One GET. `protected`: a pool endpoint, behind a bearer token when tokens are on.
    `cached`: the 200 carries these validator and caching headers (`headers` too), and
    If-None-Match gets the 304 `not_modified`, which carries the same headers."""
    named = {**(cached or {}), **(headers or {}), "Warning": "Warning"}
    ok = {**ok, "headers": _headers(named)}
    responses: Schema = {"200": ok}
    if cached:
        params = [*params, _ref("parameters", "if_none_match")]
        responses["304"] = _ref("responses", not_modified)
    codes = {**errors, **(AUTH_ERRORS if protected else {})}
    for code, name in sorted(codes.items()):
        responses[code] = _ref("responses", name)
    return {"operationId": operation_id, "tags": [tag], "summary": summary,
            "description": description, "parameters": params, "responses": responses,
            "security": copy.deepcopy(OPTIONAL_BEARER) if protected else []}


def _data(description: str, schema: str, *media: str) -> Schema:
    return {"description": description,
            "content": _content(_ref("schemas", schema), *(media or (JSON, YAML)))}


def _listed(description: str, schema: str, lines: str) -> Schema:
    """A 200 in JSON, YAML or NDJSON (one JSON text a line)."""
    ok = _data(description, schema)
    ok["content"][NDJSON] = {"schema": {"type": "string", "description": f"NDJSON: {lines}."}}
    return ok


def _preflight(path: str, params: list[Schema]) -> Schema:
    """OPTIONS: answered before the handler runs, so path segments are not checked, and no
    token is asked for (browsers send none with a preflight)."""
    loose = [{"name": p["name"], "in": "path", "required": True,
              "schema": {"type": "string", "minLength": 1, "maxLength": MAX_SEGMENT,
                         "pattern": PATH_TEXT}}
             for p in params if p.get("in") == "path"]
    words = [w for w in path.replace("{", "").replace("}", "").replace(".", "_").split("/") if w]
    operation_id = "preflight" + ("".join(w.title().replace("_", "") for w in words) or "Root")
    return {"operationId": operation_id, "tags": ["cors"], "summary": "CORS preflight",
            "parameters": loose,
            "responses": {"204": _ref("responses", "Preflight"),
                          "400": _ref("responses", "BadRequest"),
                          "406": _ref("responses", "NotAcceptable"),
                          "414": _ref("responses", "URITooLong")},
            "security": []}


def _job_paths(source: str) -> dict[str, Schema]:
    history = source == "history"
    what = "jobs that left the queue, newest first" if history else "in-queue jobs"
    title, job = source.title(), ("HistoryJob" if history else "Job")
    base = f"/v1/{source}/{{schedd}}"
    cluster = PARAMETERS["history_clusterid" if history else "clusterid"]
    listing = ("projection", "constraint", "limit", "cursor", *(("since",) if history else ()),
               "format_list")
    everything = ("The jobs that left one schedd's queue, newest first." if history else
                  "The jobs in one schedd's queue, in job-id order.")
    pages = (" With `limit` or `cursor`, one page of them, with a `Link` header to the next "
             "page while there is one. Without, all of them up to RESTD_MAX_JOBS "
             "(`X-Restd-Truncated` says when there were more).")
    pages += " `since` keeps only the records newer than a given job." if history else ""
    one_job = "the job on one line"
    jobs = "the jobs, one a line"
    return {
        base: _operation(
            f"list{title}", source, f"List {what}",
            everything + pages,
            [PARAMETERS["schedd"], *_params(*listing)],
            _listed("A list of jobs.", "JobList", jobs), POOL_ERRORS,
            headers=LIST_HEADERS, not_modified="NotModifiedPage"),
        f"{base}/{{clusterid}}": _operation(
            f"list{title}InCluster", source, f"List {what} of one cluster",
            "The jobs of one cluster; an empty list when there are none." + pages,
            [PARAMETERS["schedd"], cluster, *_params(*listing)],
            _listed("A list of jobs.", "JobList", jobs), POOL_ERRORS,
            headers=LIST_HEADERS, not_modified="NotModifiedPage"),
        f"{base}/{{clusterid}}/{{procid}}": _operation(
            f"get{job}", source, "One job",
            "One job; a 404 when there is no such job.",
            [PARAMETERS["schedd"], cluster, PARAMETERS["procid"],
             *_params("projection", "format_list")],
            _listed("The job.", "Job", one_job), POOL_ERRORS),
        f"{base}/{{clusterid}}/{{procid}}/{{attribute}}": _operation(
            f"get{job}Attribute", source,
            "One attribute of one job",
            "The value of one job attribute; a 404 when there is no such job or the attribute "
            "is undefined. A hidden attribute (RESTD_HIDE_JOB_ATTRS) is \"<REDACTED>\".",
            [PARAMETERS["schedd"], cluster, PARAMETERS["procid"],
             PARAMETERS["attribute"], *_params("format_list")],
            _listed("The attribute's value.", "AttributeValue", "the value on one line"),
            POOL_ERRORS),
    }


def _grouped_job_paths(source: str) -> dict[str, Schema]:
    what = "in-queue jobs" if source == "jobs" else "jobs that left the queue"
    title = source.title()
    base = f"/v1/grouped_{source}/{{schedd}}/{{groupby}}"
    cluster = PARAMETERS["history_clusterid" if source == "history" else "clusterid"]
    both = ("projection", "constraint", "format")
    return {
        base: _operation(
            f"group{title}", source, f"Group {what} by an attribute",
            f"The {what} of one schedd, grouped by their value of `groupby`. With `projection`, "
            "the groupby attribute is kept in each classad. At most RESTD_MAX_JOBS jobs are "
            "grouped (`X-Restd-Truncated` says when there were more).",
            [PARAMETERS["schedd"], PARAMETERS["groupby"], *_params(*both)],
            _data("Jobs by group.", "JobGroups"), POOL_ERRORS,
            headers=GROUP_HEADERS, not_modified="NotModifiedGroups"),
        f"{base}/{{clusterid}}": _operation(
            f"group{title}InCluster", source, f"Group {what} of one cluster by an attribute",
            "As without the cluster id, for the jobs of one cluster.",
            [PARAMETERS["schedd"], PARAMETERS["groupby"], cluster, *_params(*both)],
            _data("Jobs by group.", "JobGroups"), POOL_ERRORS,
            headers=GROUP_HEADERS, not_modified="NotModifiedGroups"),
    }


def _status_paths() -> dict[str, Schema]:
    listing = ("projection", "constraint", "query", "format_list")
    grouped = ("projection", "constraint", "query", "format")
    return {
        "/v1/status": _operation(
            "listStatus", "status", "List collector ads",
            "The collector's ads of one type (`query`; every type by default), sorted by type "
            "and name.", _params(*listing), _listed("A list of ads.", "StatusList", "the ads, one a line"),
            POOL_ERRORS),
        "/v1/status/{name}": _operation(
            "listStatusByName", "status", "List the collector ads with one name",
            "The ads whose Name is `name`; an empty list when there are none.",
            [PARAMETERS["name"], *_params(*listing)],
            _listed("A list of ads.", "StatusList", "the ads, one a line"), POOL_ERRORS),
        "/v1/grouped_status/{groupby}": _operation(
            "groupStatus", "status", "Group collector ads by an attribute",
            "The collector's ads grouped by their value of `groupby`.",
            [PARAMETERS["status_groupby"], *_params(*grouped)], _data("Ads by group.", "StatusGroups"),
            POOL_ERRORS),
        "/v1/grouped_status/{groupby}/{name}": _operation(
            "groupStatusByName", "status", "Group the collector ads with one name",
            "As without the name, for the ads whose Name is `name`.",
            [PARAMETERS["status_groupby"], PARAMETERS["name"], *_params(*grouped)],
            _data("Ads by group.", "StatusGroups"), POOL_ERRORS),
    }


def _config_paths() -> dict[str, Schema]:
    admins = (" When tokens are on, only RESTD_ADMIN_USERS may read it; anyone else gets a 403.")
    return {
        "/v1/config": _operation(
            "getConfig", "config", "Every configuration value",
            "The local configuration, or with `daemon` that of a running daemon." + admins,
            _params("daemon", "format"), _data("Every defined knob.", "Config"), POOL_ERRORS),
        "/v1/config/{attribute}": _operation(
            "getConfigValue", "config", "One configuration value",
            "One knob's value; a 404 when it is not defined." + admins,
            [PARAMETERS["config_attribute"], *_params("daemon", "format")],
            _data("The value.", "ConfigValue"), POOL_ERRORS),
    }


def _summary_paths() -> dict[str, Schema]:
    return {
        "/v1/summary": _operation(
            "getSummary", "summary", "The pool in counts",
            "condor_q -totals and condor_status -total in one small answer, for dashboards: jobs "
            "idle, running and held by schedd and owner, slots by state, and the cores, memory "
            "and GPUs in use against the total, with what partitionable slots have left, per "
            "machine too. Counted from the collector's Scheduler, Submitter and Machine ads (four "
            "queries, no job list), so the counts are as old as those ads: schedds and startds "
            "send them every few minutes; the daemon reuses a summary for 10 s (or "
            "RESTD_CACHE_TTL if longer, none if 0). With RESTD_USER_JOB_SCOPE = OWN, a user who "
            "is not an admin gets the counts of their own jobs only (`scope` is `own`).",
            _params("format"), _data("The counts.", "Summary"), POOL_ERRORS),
    }


def _asset_paths() -> dict[str, Schema]:
    """The dashboard's script and style: files of the package, open like the page."""
    out = {}
    for name, media, what in (("dashboard.js", "text/javascript", "The dashboard's script"),
                              ("views.js", "text/javascript", "The dashboard's views"),
                              ("jobs.js", "text/javascript", "The dashboard's job views"),
                              ("dashboard.css", "text/css", "The dashboard's style")):
        words = name.replace(".", "_").split("_")
        out[f"/{name}"] = _operation(
            "get" + "".join(w.title() for w in words), "service", what,
            f"{what}, which the page at `/` loads. Plain code of this package, no libraries.",
            _params(), {"description": what + ".", "content": {media: {"schema": {"type": "string"}}}},
            CLIENT_ERRORS, protected=False, cached=None, headers={"Cache-Control": "AssetCacheControl"})
    return out


def _service_paths() -> dict[str, Schema]:
    """The open paths (web.OPEN_PATHS): no token is ever needed."""
    html = {"description": "The page.", "content": {HTML: {"schema": {"type": "string"}}}}
    return {
        "/": _operation(
            "getService", "service", "Where things are",
            "JSON (or YAML) naming the API, health and metrics URLs. A browser (Accept preferring "
            "text/html) gets the pool dashboard instead: the summary rendered on the server, and "
            "live views of jobs, held jobs, machines and completions drawn by its script from "
            "this API (with tokens on, the script asks for a token first).",
            _params("format_root"),
            {"description": "The service index, or the front page.",
             "content": {**_content(_ref("schemas", "Service"), JSON, YAML),
                         HTML: {"schema": {"type": "string"}}}},
            CLIENT_ERRORS, protected=False, cached=HTML_CACHED_HEADERS),
        "/healthz": _operation(
            "getHealth", "service", "Liveness probe",
            "Whether the process is serving requests; the pool is never contacted.",
            _params("format"), _data("Serving.", "Health"), CLIENT_ERRORS, protected=False),
        "/readyz": _operation(
            "getReady", "service", "Readiness probe",
            "Whether the collector and the default schedd answer. The answer is cached for a few "
            "seconds, so that probes cannot hammer the pool.",
            _params("format"), _data("Ready.", "Ready"), {**CLIENT_ERRORS, "503": "NotReady"},
            protected=False),
        "/metrics": _operation(
            "getMetrics", "service", "Prometheus metrics",
            "Requests by route and status, latency histograms, pool query latency and errors by "
            "daemon type, requests in flight and cache hits; and the pool's figures: jobs by "
            "schedd, owner and status, slots and cores by state, and whether the collector and "
            "each schedd answer (from the collector's ads, reused for 15 s). In the Prometheus "
            "text format.",
            _params(),
            {"description": "The metrics.", "content": {TEXT: {"schema": {"type": "string"}}}},
            CLIENT_ERRORS, protected=False, cached=None),
        "/favicon.ico": _operation(
            "getFavicon", "service", "The icon browsers show",
            "A small SVG icon; browsers ask for it on every page, JSON ones included.",
            _params(),
            {"description": "The icon.", "content": {FAVICON: {"schema": {"type": "string"}}}},
            CLIENT_ERRORS, protected=False, cached=None,
            headers={"Cache-Control": "IconCacheControl"}),
        "/v1": _operation(
            "getApiIndex", "service", "The v1 endpoints",
            "Each endpoint family with its URI template, and where this document is.",
            _params("format"), _data("The endpoints.", "ApiIndex"), CLIENT_ERRORS, protected=False),
        "/v1/openapi.json": _operation(
            "getOpenApiJson", "service", "This document, as JSON",
            "The OpenAPI 3.1 description of this API.",
            _params("format"), _data("The document.", "OpenAPI"), CLIENT_ERRORS, protected=False),
        "/v1/openapi.yaml": _operation(
            "getOpenApiYaml", "service", "This document, as YAML",
            "The OpenAPI 3.1 description of this API.",
            _params("format_yaml"), _data("The document.", "OpenAPI", YAML), CLIENT_ERRORS,
            protected=False),
        "/v1/docs": _operation(
            "getApiDocs", "service", "API documentation",
            "This document rendered as an HTML page.", _params("format_html"), html, CLIENT_ERRORS,
            protected=False, cached=None),
    }


@functools.lru_cache(maxsize=8)
def _build(version: str, writes: bool) -> dict[str, Any]:
    paths: dict[str, Schema] = {}
    for group in (_service_paths(), _asset_paths(), _summary_paths(), _job_paths("jobs"),
                  _job_paths("history"),
                  _grouped_job_paths("jobs"), _grouped_job_paths("history"), _status_paths(),
                  _config_paths()):
        for path, operation in group.items():
            paths[path] = {"get": operation, "options": _preflight(path, operation["parameters"])}
    for path, operations in (openapi_writes.paths(PARAMETERS) if writes else {}).items():
        item = paths.setdefault(path, {})
        item.update(operations)
        item.setdefault("options", _preflight(path, next(iter(operations.values()))["parameters"]))
    tags = [{"name": "service", "description": "The daemon itself: probes, metrics, this document."},
            {"name": "jobs", "description": "Jobs in the schedds' queues."},
            {"name": "history", "description": "Jobs that have left the queues."},
            {"name": "status", "description": "Ads in the collector: slots, daemons, submitters."},
            {"name": "config", "description": "HTCondor configuration."},
            {"name": "summary", "description": "The pool in counts, for dashboards."},
            {"name": "actions", "description": "Acting on jobs as the token's user (RESTD_ACTIONS)."},
            {"name": "cors", "description": "CORS preflight."}]
    return {
        "openapi": "3.1.0",
        "info": {"title": "condor_restd", "version": version, "summary": "HTCondor pool, read-only",
                 "description": DESCRIPTION,
                 "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"}},
        "tags": tags,
        "paths": paths,
        "components": {"schemas": {**_schemas(), **openapi_writes.schemas()},
                       "parameters": PARAMETERS, "headers": HEADERS,
                       "responses": RESPONSES, "securitySchemes": SECURITY_SCHEMES},
    }


def document(version: str, writes: bool = True) -> dict[str, Any]:
    """The OpenAPI 3.1 document for this version of the daemon (a fresh copy, safe to change);
    `writes`: with the operations that act on jobs (a daemon serves them when RESTD_ACTIONS is on)."""
    return copy.deepcopy(_build(version, writes))
