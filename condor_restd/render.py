"""Content negotiation and encoding: one CherryPy tool turns every result and every error into a response."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import zlib
from collections.abc import Iterable, Mapping
from typing import Any, Callable
from urllib.parse import quote, urlencode

import cherrypy

from . import cache
from .bodies import JSON as JSON
from .bodies import NDJSON as NDJSON
from .bodies import YAML as YAML
from .bodies import _chunks as _chunks
from .bodies import _gzipped
from .bodies import encode as encode
from .bodies import to_json as to_json
from .bodies import to_python as to_python
from .compress import ABOVE, Segment
from .errors import MethodNotAllowed, NotAcceptable, RestdError
from .responses import GZIP
from .responses import Listing as Listing
from .responses import Page as Page
from .responses import RawJSON as RawJSON
from .responses import RecordBlock as RecordBlock
from .responses import Reply as Reply

log = logging.getLogger("condor_restd.http")

HTML = "text/html"
TEXT = "text/plain"

MEDIA_TYPES = {JSON: JSON, YAML: YAML, "application/x-yaml": YAML, "text/yaml": YAML,
               "text/x-yaml": YAML, HTML: HTML, "application/xhtml+xml": HTML, TEXT: TEXT,
               "application/openmetrics-text": TEXT, NDJSON: NDJSON, "application/ndjson": NDJSON,
               "application/jsonl": NDJSON}
WILDCARDS = ("*/*", "application/*", "text/*")
FORMATS = {"json": JSON, "yaml": YAML, "html": HTML, "ndjson": NDJSON}
DATA_TYPES = (JSON, YAML)
LIST_TYPES = (JSON, YAML, NDJSON)  # what list endpoints offer
ALLOWED_METHODS = ("GET", "HEAD", "OPTIONS")
WRITE_METHODS = ("POST", "PATCH")  # handlers marked with writes() take them (acting on jobs)


def offers(*media: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare the media types a handler can answer in (default: JSON and YAML)."""
    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.restd_offers = media  # type: ignore[attr-defined]
        return fn
    return mark


def writes(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a handler that also takes POST and PATCH (it refuses them itself when it must)."""
    fn.restd_writes = True  # type: ignore[attr-defined]
    return fn


def negotiated() -> str:
    """The media type negotiated for the current request."""
    return str(getattr(cherrypy.serving.request, "restd_media", JSON))


def identity() -> Any:
    """Who the current request comes from, as the authentication hook found (None: nobody known)."""
    return getattr(cherrypy.serving.request, "restd_identity", None)


def _accepted(header: str) -> list[tuple[float, int, str]]:
    ranges = []
    for position, part in enumerate(header.split(",")):
        fields = [f.strip() for f in part.split(";")]
        media = fields[0].lower()
        if not media:
            continue
        quality = 1.0
        for param in fields[1:]:
            name, _, val = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(val)
                except ValueError:
                    quality = 0.0
        ranges.append((quality, -position, media))
    return sorted(ranges, reverse=True)


def accepts_gzip(header: str | None) -> bool:
    """Whether an Accept-Encoding header takes gzip (gzip, x-gzip or *, with a q above 0)."""
    return any(quality > 0 and coding in ("gzip", "x-gzip", "*")
               for quality, _, coding in _accepted(header or ""))


def negotiate(accept: str | None, fmt: str | None = None,
              offered: tuple[str, ...] = DATA_TYPES) -> str:
    """The media type to answer in: ?format= wins, then the Accept header, then JSON."""
    names = ", ".join(offered)
    if fmt is not None:
        media = FORMATS.get(fmt.lower())
        if media not in offered:
            choices = ", ".join(k for k, v in FORMATS.items() if v in offered)
            raise NotAcceptable(f"format must be one of {choices}, not {fmt!r}", available=list(offered))
        return media
    if not accept or not accept.strip():
        return offered[0]
    for quality, _, media in _accepted(accept):
        if quality <= 0:
            continue
        if media in WILDCARDS:
            return JSON if JSON in offered else offered[0]
        if MEDIA_TYPES.get(media) in offered:
            return MEDIA_TYPES[media]
    raise NotAcceptable(f"cannot answer in any type the Accept header lists ({accept}); "
                        f"available here: {names}", available=list(offered))


# The response headers, beyond the CORS-safelisted ones, that a page on another origin may read:
# without them a dashboard could not follow pages, revalidate, or see why it should wait.
EXPOSED_HEADERS = ("ETag", "Link", "X-Restd-Truncated", "Warning", "Retry-After", "WWW-Authenticate",
                   "Allow", "Location", "Idempotent-Replayed")


def _cors(origins: Iterable[str]) -> None:
    allowed = tuple(origins)
    if not allowed:
        return
    headers = cherrypy.serving.response.headers
    if "*" in allowed:
        headers["Access-Control-Allow-Origin"] = "*"
        headers["Access-Control-Expose-Headers"] = ", ".join(EXPOSED_HEADERS)
        return
    origin = cherrypy.serving.request.headers.get("Origin")
    if origin in allowed:
        headers["Access-Control-Allow-Origin"] = origin
        headers["Access-Control-Expose-Headers"] = ", ".join(EXPOSED_HEADERS)
    headers["Vary"] = "Origin"


def _respond(status: int, body: bytes, media: str, headers: dict[str, str] | None = None) -> bytes:
    response = cherrypy.serving.response
    response.status = status
    response.headers["Content-Type"] = media if media == YAML or ";" in media else f"{media}; charset=utf-8"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return body


def error_response(error: RestdError, media: str = JSON) -> bytes:
    """The one shape of every error: {"message": ..., "status": ...} in the negotiated format."""
    if isinstance(error, NotAcceptable) or media not in DATA_TYPES:
        media = JSON
    return _respond(error.status, encode(error.body(), media), media, error.headers)


def etag(body: bytes) -> str:
    """A validator for a body: its length and CRC-32. Two answers to the same URL that differ
    yet share both are a 1 in 2**32 chance at worst; a cryptographic hash costs the biggest
    answers several times as much (SHA-256: 0.019 s against 0.008 s for 34 MB here)."""
    return _tag(len(body), zlib.crc32(body))


def _tag(size: int, crc: int) -> str:
    return '"%x-%08x"' % (size, crc)


def variant_tag(tag: str, media: str) -> str:
    """The weak ETag of a streamed answer in `media`: the daemon's tag stands for the records,
    and each representation of them needs its own (a 304 for YAML to a client holding JSON
    would leave it with the wrong body). JSON keeps the daemon's tag as it is."""
    if media == JSON:
        return tag
    digest = hashlib.blake2b(f"{tag} {media}".encode(), digest_size=16).hexdigest()
    return f'W/"{digest}"'


def _not_modified(tag: str) -> bool:
    wanted = cherrypy.serving.request.headers.get("If-None-Match")
    if not wanted:
        return False
    tags = {t.strip().removeprefix("W/") for t in wanted.split(",")}  # weak comparison
    return "*" in tags or tag.removeprefix("W/") in tags


# What a reverse proxy may say the API is mounted under: a plain path, nothing a browser or a
# client would resolve elsewhere (no "//", no "." or ".." segment, no query, no scheme).
PREFIX = re.compile(r"(/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)*/?")
MAX_PREFIX = 256


def base_path() -> str:
    """The path this API is served under, without a trailing slash ("" at the root): the
    proxy's X-Forwarded-Prefix, when it is a sane path, then the WSGI mount point (SCRIPT_NAME).
    A prefix that is not a sane path is ignored."""
    request = cherrypy.serving.request
    forwarded = str(request.headers.get("X-Forwarded-Prefix") or "").strip()
    if len(forwarded) > MAX_PREFIX or not PREFIX.fullmatch(forwarded):
        if forwarded:
            log.debug("ignoring X-Forwarded-Prefix %r: not a plain path", forwarded[:MAX_PREFIX])
        forwarded = ""
    return forwarded.rstrip("/") + str(request.script_name).rstrip("/")


def _next_link(next_page: Mapping[str, str]) -> str:
    request = cherrypy.serving.request
    params = {k: v for k, v in request.params.items() if k not in next_page and isinstance(v, str)}
    fmt = getattr(request, "restd_format", None)
    if fmt is not None:  # taken out of the parameters before the handler ran; the next page keeps it
        params["format"] = fmt
    params.update(next_page)
    path = quote(base_path() + request.path_info, safe="/@:!$&'()*+,;=")
    url = path + "?" + urlencode(params, quote_via=quote)
    return f'<{url}>; rel="next"'


def _ok(result: Any, media: str, cache_control: str) -> bytes:
    """A 200 (or a 304 when the client already has it): ETag, Cache-Control, list headers."""
    vary = cherrypy.serving.response.headers.get("Vary")
    if isinstance(result, Reply):  # one JSON line, like an error
        body = (json.dumps(result.body, ensure_ascii=False).encode("utf-8") + b"\n"
                if media == JSON else encode(result.body, media))
        return _respond(result.status, body, media, {"Cache-Control": "no-store", **result.headers})
    if isinstance(result, Page):  # a page of a URL that answers JSON too depends on Accept
        negotiated = getattr(cherrypy.serving.request, "restd_negotiated", False)
        page_headers = {"Vary": f"{vary}, Accept" if vary else "Accept"} if negotiated else {}
        return _respond(200, result.body, result.content_type, page_headers)
    # a handler may say otherwise (health probes must never be answered from a cache)
    cache_control = cherrypy.serving.response.headers.get("Cache-Control") or cache_control
    varies = "Accept, Accept-Encoding, Authorization"
    headers = {"Cache-Control": cache_control, "Vary": f"{vary}, {varies}" if vary else varies}
    if isinstance(result, Listing):
        if result.truncated:
            headers["X-Restd-Truncated"] = "true"
        if result.next_page:
            headers["Link"] = _next_link(result.next_page)
    wants_gzip = media == JSON and GZIP.get() and isinstance(result, Listing)
    if isinstance(result, Listing) and result.stream:
        if wants_gzip:
            headers["Content-Encoding"] = "gzip"
        if result.stream_tag is not None:
            # each representation its own tag: other formats, and gzipped bytes, are not these
            tag = variant_tag(result.stream_tag, media)
            headers["ETag"] = tag[:-1] + '-gzip"' if wants_gzip else tag
            if _not_modified(headers["ETag"]):
                return _respond(304, b"", media, headers)
        _respond(200, b"", media, headers)
        cherrypy.serving.response.stream = True
        return _stream(result.records, media, bool(wants_gzip))  # type: ignore[return-value]
    block = result.records if isinstance(result, Listing) and media == JSON else None
    if isinstance(block, RecordBlock) and block.packed is not None:  # deflated by a worker
        body = b"".join(_gzipped(_chunks([block], media)))
        headers["Content-Encoding"] = "gzip"
    else:
        body = encode(result, media)
        if wants_gzip and len(body) > ABOVE:  # a list put together here (pages of history, groups)
            body = b"".join(_gzipped([body]))
            headers["Content-Encoding"] = "gzip"
    if isinstance(block, RecordBlock):  # hashed once, however often a cached answer is sent
        block.etag = block.etag or etag(body)
        headers["ETag"] = block.etag
    else:
        headers["ETag"] = etag(body)
    if _not_modified(headers["ETag"]):
        return _respond(304, b"", media, headers)
    return _respond(200, body, media, headers)


def _stream(records: Iterable[Any], media: str, gzipped: bool = False) -> Iterable[bytes]:
    """A list body sent as its records arrive. A failure half-way can no longer change the
    status: the body stops short (invalid JSON, or a gzip stream with no end), and the log
    says why."""
    try:
        chunks = _gzipped(_chunks(records, media)) if gzipped else _chunks(records, media)
        for chunk in chunks:
            if isinstance(chunk, Segment):  # never without gzip: the workers deflate only then
                raise RestdError("a deflated piece in a plain answer")
            yield chunk if isinstance(chunk, bytes) else bytes(chunk)  # a WSGI server takes bytes only
    except RestdError as error:
        log.error("a streamed answer stopped short: %s", error.message)
    except Exception:
        log.exception("a streamed answer stopped short")


def _answer(inner: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
            auth: Callable[..., Any] | None = None, cache_control: str = "no-cache",
            writable: bool = False) -> bytes:
    request = cherrypy.serving.request
    media = JSON
    try:
        # CherryPy's (late-param) page handler reads the parameters from request.params
        fmt = request.params.pop("format", None)
        kwargs.pop("format", None)
        if fmt is not None and not isinstance(fmt, str):
            raise NotAcceptable("format given more than once")
        request.restd_format = fmt
        offered = getattr(getattr(inner, "callable", inner), "restd_offers", DATA_TYPES)
        media = negotiate(request.headers.get("Accept"), fmt, offered)
        request.restd_media = media
        # JSON lists go out gzipped when the client takes gzip: the workers deflate the records
        GZIP.set(media == JSON and accepts_gzip(request.headers.get("Accept-Encoding")))
        request.restd_negotiated = len(offered) > 1  # the answer depends on Accept
        methods: tuple[str, ...] = ALLOWED_METHODS
        marked = getattr(getattr(inner, "callable", inner), "restd_writes", False)
        if marked and writable:
            methods = ALLOWED_METHODS + WRITE_METHODS
        if request.method == "OPTIONS":
            headers = {"Allow": ", ".join(methods),
                       "Access-Control-Allow-Methods": ", ".join(methods),
                       "Access-Control-Allow-Headers": "Accept, Authorization, If-None-Match"
                       + (", Content-Type, Idempotency-Key" if methods != ALLOWED_METHODS else ""),
                       "Access-Control-Max-Age": "86400"}
            return _respond(204, b"", media, headers)
        if request.method not in methods:
            if not writable:
                why = "this API is read-only" + (" (RESTD_ACTIONS is off)" if marked else "")
            else:
                why = f"this URL takes {', '.join(methods)}"
            error = MethodNotAllowed(f"{request.method} is not allowed; {why}")
            error.headers["Allow"] = ", ".join(methods)
            raise error
        if auth is not None:  # after OPTIONS: a CORS preflight carries no credentials
            who = auth(request.path_info, request.headers.get("Authorization"), request.params,
                       method=request.method)
            request.restd_identity = who
            if who is not None:
                request.login = who.user  # the access log's user field
        fresh = cache.FRESH.set(wants_fresh(request.headers))
        try:
            result = inner(*args, **kwargs)
        finally:
            cache.FRESH.reset(fresh)
        return _ok(result, media, cache_control)
    except RestdError as error:
        return error_response(error, media)
    except cherrypy.HTTPError as exc:  # CherryPy's own: a path with segments its handler lacks
        theirs = RestdError(str(exc._message or "no such URL; see /v1 for the endpoints"))
        theirs.status = int(exc.code)
        return error_response(theirs, media)
    except Exception:
        log.exception("unexpected error serving %s", request.path_info)
        return error_response(RestdError("internal error; the daemon log has the details"), media)


def wants_fresh(headers: Mapping[str, str]) -> bool:
    """Whether the client asked for an answer fresh from the pool (RFC 9111 no-cache, or the
    HTTP/1.0 Pragma: no-cache): a client that just submitted a job and wants to see it."""
    directives = re.split(r"\s*,\s*", str(headers.get("Cache-Control") or "").strip().lower())
    if "no-cache" in directives:
        return True
    return "no-cache" in re.split(r"\s*,\s*", str(headers.get("Pragma") or "").strip().lower())


def _wrap(inner: Callable[..., Any], cors_origins: Iterable[str], metrics: Any,
          auth: Callable[..., Any] | None = None, cache_control: str = "no-cache",
          writable: bool = False) -> Callable[..., bytes]:
    def handler(*args: Any, **kwargs: Any) -> bytes:
        request = cherrypy.serving.request
        _cors(cors_origins)
        if metrics is None:
            return _answer(inner, args, kwargs, auth, cache_control, writable)
        started = time.perf_counter()
        metrics.request_started()
        try:
            return _answer(inner, args, kwargs, auth, cache_control, writable)
        finally:
            status = int(str(cherrypy.serving.response.status or 200).split()[0])
            metrics.request_finished(request.path_info, request.method, status,
                                     time.perf_counter() - started)

    return handler


class RenderTool(cherrypy.Tool):
    """Negotiates the format, encodes the handler's result, and renders every error as JSON/YAML."""

    def __init__(self) -> None:
        super().__init__("before_handler", self._wrap_handler, priority=30)

    def _wrap_handler(self, cors_origins: Iterable[str] = ("*",), metrics: Any = None,
                      auth: Callable[..., Any] | None = None, cache_control: str = "no-cache",
                      writable: bool = False) -> None:
        """`auth(path, authorization, params)`, when given, runs before every handler but OPTIONS:
        it returns the identity handlers see through identity(), or raises the error to answer."""
        request = cherrypy.serving.request
        if request.handler is not None:
            request.handler = _wrap(request.handler, cors_origins, metrics, auth, cache_control,
                                    writable)


def cherrypy_error_page(status: str, message: str, traceback: str, version: str) -> bytes:
    """CherryPy's own errors (no route, bad request line) in our error shape, never HTML."""
    code = int(str(status).split()[0])
    response = cherrypy.serving.response
    response.headers["Content-Type"] = "application/json; charset=utf-8"
    text = message if code != 500 else "internal error; the daemon log has the details"
    return encode({"message": text, "status": code}, JSON)


def unexpected_error() -> None:
    """Last resort for an exception outside a handler: log it, answer a JSON 500."""
    log.error("unexpected error", exc_info=True)
    response = cherrypy.serving.response
    response.status = 500
    response.headers["Content-Type"] = "application/json; charset=utf-8"
    response.body = [encode({"message": "internal error; the daemon log has the details",
                             "status": 500}, JSON)]
