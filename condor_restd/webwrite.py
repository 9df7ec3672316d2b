"""The HTTP side of acting on jobs: a write request's body, bearer token and Idempotency-Key.

A body is read whole, before dispatch, and only for POST and PATCH: at most MAX_BODY bytes, with
a Content-Length (a chunked body is refused), so that nothing of it is left on the connection to
be read as the next request. It must be one JSON object, sent as application/json: a browser
cannot send that to another origin without a CORS preflight, and no cookie ever authenticates.
"""

from __future__ import annotations

import json
import re
from typing import Any

import cherrypy

from . import render
from .actions import Actions
from .errors import BadRequest, MethodNotAllowed, NotFound, UnsupportedMediaType
from .responses import Reply
from .server import MAX_BODY
from .webargs import number, query_params, schedd_of

MAX_DEPTH = 32  # nesting of a body's JSON (a submit description is two levels deep)
IDEMPOTENCY_KEY = re.compile(r"[!-~]{1,255}")  # visible ASCII, as the IETF draft's examples
WRITES = ("POST", "PATCH")
READS = ("GET", "HEAD", "OPTIONS")  # these take no body; any other method's is read (and a
# method no handler takes then gets its 405, not a 400 for its body)


def read_body(request: Any) -> None:
    """Read the body of a POST or PATCH (or of a method nobody takes, which gets its 405) into
    request.restd_body, before dispatch; refuse one on GET, HEAD and OPTIONS."""
    environ = getattr(request, "wsgi_environ", None) or {}
    length = str(environ.get("CONTENT_LENGTH") or "0").strip()
    chunked = bool(environ.get("HTTP_TRANSFER_ENCODING"))
    if request.method in READS:
        if chunked or length not in ("", "0"):
            # the daemon's server refuses these before the app; a hosting server may not
            raise cherrypy.HTTPError(400, "this API takes no request body")
        return
    if chunked:
        raise cherrypy.HTTPError(411, "send the body with a Content-Length, not chunked")
    if not length.isdigit():
        raise cherrypy.HTTPError(400, "Content-Length is not a number")
    if int(length) > MAX_BODY:
        raise cherrypy.HTTPError(413, f"the body is larger than {MAX_BODY} bytes")
    body = request.rfile.read(int(length)) if int(length) else b""
    if len(body) != int(length):
        raise cherrypy.HTTPError(400, "the body ended before its Content-Length")
    request.restd_body = body


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise BadRequest(f"the body names {key!r} twice")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise BadRequest(f"the body holds {name}, which JSON does not have")


def _depth(value: Any, level: int = 1) -> None:
    if level > MAX_DEPTH:
        raise BadRequest(f"the body nests deeper than {MAX_DEPTH} levels")
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for child in children:
        _depth(child, level + 1)


def json_body() -> dict[str, Any]:
    """The request's body: one JSON object, sent as application/json in UTF-8."""
    request = cherrypy.serving.request
    body: bytes = getattr(request, "restd_body", b"")
    media = str(request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if not body:
        raise BadRequest("this request needs a JSON object as its body")
    if media != "application/json":
        raise UnsupportedMediaType("send the body as Content-Type: application/json",
                                   accepted=["application/json"])
    try:
        text = body.decode("utf-8")
    except UnicodeError:
        raise BadRequest("the body is not valid UTF-8") from None
    if text.count("[") + text.count("{") > MAX_BODY // 2:
        raise BadRequest("the body nests too much")
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except RecursionError:
        raise BadRequest(f"the body nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadRequest("the body must be a JSON object")
    _depth(value)
    return value


def bearer() -> str | None:
    """The bearer token of the request's Authorization header, if it has one."""
    scheme, _, token = str(cherrypy.serving.request.headers.get("Authorization") or "").strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def idempotency_key() -> str | None:
    key = cherrypy.serving.request.headers.get("Idempotency-Key")
    if key is None:
        return None
    key = str(key).strip().strip('"')
    if not IDEMPOTENCY_KEY.fullmatch(key):
        raise BadRequest("Idempotency-Key must be 1 to 255 visible ASCII characters")
    return key


def _not_allowed(message: str, allow: str) -> MethodNotAllowed:
    error = MethodNotAllowed(message)
    error.headers["Allow"] = allow
    return error


class Writes:
    """POST and PATCH on /v1/jobs: act on jobs, submit, and edit (Queue hands them over)."""

    def __init__(self, actions: Actions) -> None:
        self.actions = actions

    def __call__(self, path: tuple[str, ...], params: dict[str, Any]) -> Reply:
        query_params(params, ())  # a write says everything in its body
        if not path:
            raise NotFound("/v1/jobs needs a schedd name, or DEFAULT")
        schedd, rest = schedd_of(path[0]), path[1:]
        token = self.actions.require(bearer())  # 405 when actions are off, 401 with no token
        body, key = json_body(), idempotency_key()
        if cherrypy.serving.request.method == "PATCH":
            if rest and not rest[-1].isdigit() and len(rest) <= 3:  # an action's URL
                raise _not_allowed("an action is a POST; PATCH edits "
                                   "/v1/jobs/{schedd}[/{clusterid}[/{procid}]]", "OPTIONS, POST")
            if len(rest) > 2:
                raise NotFound("edit PATCHes /v1/jobs/{schedd}[/{clusterid}[/{procid}]]")
            cluster, proc = self._ids(rest)
            return self.actions.edit(token, schedd, cluster, proc, body, key)
        if not rest:
            reply = self.actions.submit(token, schedd, body, key)
            if "Location" in reply.headers:
                reply.headers["Location"] = render.base_path() + reply.headers["Location"]
            return reply
        action = rest[-1]
        if action.isdigit():
            raise _not_allowed("POST names an action after the jobs: "
                               "/v1/jobs/{schedd}[/{clusterid}[/{procid}]]/{action}",
                               "GET, HEAD, OPTIONS, PATCH")
        cluster, proc = self._ids(rest[:-1])
        return self.actions.act(token, schedd, action, cluster, proc, body, key)

    @staticmethod
    def _ids(segments: tuple[str, ...]) -> tuple[int | None, int | None]:
        cluster = number(segments[0], "clusterid") if segments else None
        proc = number(segments[1], "procid") if len(segments) > 1 else None
        return cluster, proc
