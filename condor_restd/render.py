"""Content negotiation and encoding: one CherryPy tool turns every result and every error into a response."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import tempfile
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Callable
from urllib.parse import quote, urlencode

import cherrypy
import yaml

from . import yamlflow
from .errors import MethodNotAllowed, NotAcceptable, RestdError

log = logging.getLogger("condor_restd.http")

JSON = "application/json"
YAML = "application/yaml"
HTML = "text/html"
TEXT = "text/plain"
NDJSON = "application/x-ndjson"
MEDIA_TYPES = {JSON: JSON, YAML: YAML, "application/x-yaml": YAML, "text/yaml": YAML,
               "text/x-yaml": YAML, HTML: HTML, "application/xhtml+xml": HTML, TEXT: TEXT,
               "application/openmetrics-text": TEXT, NDJSON: NDJSON, "application/ndjson": NDJSON,
               "application/jsonl": NDJSON}
WILDCARDS = ("*/*", "application/*", "text/*")
FORMATS = {"json": JSON, "yaml": YAML, "html": HTML, "ndjson": NDJSON}
DATA_TYPES = (JSON, YAML)
LIST_TYPES = (JSON, YAML, NDJSON)  # what list endpoints offer
ALLOWED_METHODS = ("GET", "HEAD", "OPTIONS")


class RawJSON(str):
    """A fragment that is already JSON text; the encoder writes it as it is. (A `bytes` value
    in a result is such a fragment too, already in UTF-8: job records come that way.)"""


class RecordBlock:
    """A list's whole JSON array, written once (by the compiled helper); its records, JSON in
    UTF-8, are slices of it. Answering in JSON then copies nothing, and the ETag is kept."""

    def __init__(self, body: bytes, ends: Sequence[int]) -> None:
        self.body = body  # b"[\n" record ",\n" record ... "\n]\n"
        self.ends = ends  # where each record ends in body
        self.etag: str | None = None

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, index: int) -> bytes:
        if not -len(self.ends) <= index < len(self.ends):
            raise IndexError(index)
        index %= len(self.ends)
        start = self.ends[index - 1] + 2 if index else 2
        return self.body[start:self.ends[index]]

    def __iter__(self) -> Iterator[bytes]:
        start = 2
        for end in self.ends:
            yield self.body[start:end]
            start = end + 2


class Listing:
    """A list result: its records, whether RESTD_MAX_JOBS cut it short, and the next page's
    query parameters (announced in a Link header) if there is one."""

    def __init__(self, records: Any, truncated: bool = False,
                 next_page: Mapping[str, str] | None = None, stream_tag: str | None = None,
                 spool: bool = False) -> None:
        self.records = records
        self.truncated = truncated
        self.next_page = next_page
        # A streamed listing: `records` is an iterator, produced while the body is sent; its
        # ETag comes from the daemon (it cannot hash a body it has not produced yet).
        self.stream_tag = stream_tag
        # A spooled listing: `records` is an iterator whose body is encoded into a temporary
        # file (memory for the first SPOOL_MEMORY bytes) before the answer starts, then sent.
        self.spool = spool


class Page:
    """A finished body in a media type of its own (an HTML page, Prometheus text)."""

    def __init__(self, body: str | bytes, content_type: str) -> None:
        self.body = body.encode("utf-8") if isinstance(body, str) else body
        self.content_type = content_type


def offers(*media: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare the media types a handler can answer in (default: JSON and YAML)."""
    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.restd_offers = media  # type: ignore[attr-defined]
        return fn
    return mark


def negotiated() -> str:
    """The media type negotiated for the current request."""
    return str(getattr(cherrypy.serving.request, "restd_media", JSON))


def identity() -> Any:
    """Who the current request comes from, as the authentication hook found (None: nobody known)."""
    return getattr(cherrypy.serving.request, "restd_identity", None)


def to_json(value: Any) -> str:
    """Encode a result, splicing RawJSON fragments in without re-encoding them."""
    if isinstance(value, RawJSON):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, dict):
        if not any(isinstance(v, (RawJSON, bytes, dict, list)) for v in value.values()):
            return json.dumps(value, ensure_ascii=False)
        items = [f"{json.dumps(str(k), ensure_ascii=False)}: {to_json(v)}" for k, v in value.items()]
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list):
        if not value:
            return "[]"
        return "[\n" + ",\n".join(to_json(v) for v in value) + "\n]"
    return json.dumps(value, ensure_ascii=False)


def to_python(value: Any) -> Any:
    """The plain Python form of a result (RawJSON decoded), for encoders other than JSON."""
    if isinstance(value, Listing):
        return to_python(value.records)
    if isinstance(value, RecordBlock):
        return json.loads(value.body)
    if isinstance(value, (RawJSON, bytes)):
        return json.loads(value)
    if isinstance(value, dict):
        return {str(k): to_python(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_python(v) for v in value]
    return value


_LAYOUT = re.compile(r"\n *")


def _line(item: Any) -> str:
    """One compact JSON text. printJson breaks lines (and indents) only between tokens, since a
    JSON string never holds a raw line break: the layout can simply go."""
    return _LAYOUT.sub("", to_json(item)) + "\n"


def _ndjson(value: Any) -> str:
    items = value.records if isinstance(value, Listing) else value if isinstance(value, list) else [value]
    return "".join(map(_line, items))


PRETTY_YAML = 256 << 10  # JSON characters up to which an object is YAML in block style throughout


def _yaml(value: Any) -> str:
    """YAML of a result. A list (of any length) is a block sequence of one flow line per record,
    written from its JSON at about the cost of NDJSON; an object is PyYAML's block style, or,
    above PRETTY_YAML, a block mapping of one flow line per key (PyYAML's emitter, in Python,
    takes some 30 times as long as the JSON encoder, and ten times its memory)."""
    listing = isinstance(value, Listing)
    if listing:
        value = value.records  # a list, its records as they come, or groups (an object)
    if isinstance(value, list) or (listing and not isinstance(value, dict)):
        return b"".join(_chunks(value, YAML)).decode("utf-8")
    if isinstance(value, dict) and value and len(to_json(value)) > PRETTY_YAML:
        return "".join(yamlflow.entry(json.dumps(str(k), ensure_ascii=False), _line(v)[:-1])
                       for k, v in value.items())
    return yaml.safe_dump(to_python(value), default_flow_style=False, sort_keys=False,
                          allow_unicode=True)


def encode(value: Any, media: str) -> bytes:
    if isinstance(value, Listing) and media == JSON:
        value = value.records
        if isinstance(value, RecordBlock):
            return value.body
        if value and all(isinstance(v, bytes) for v in value):  # job records, spliced as they are
            return b"".join(_chunks(value, JSON))
    if media == NDJSON:
        return _ndjson(value).encode("utf-8")
    if media == YAML:
        text = _yaml(value)
    else:
        text = to_json(value)
    if not text.endswith("\n"):
        text += "\n"
    return text.encode("utf-8")


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


def _cors(origins: Iterable[str]) -> None:
    allowed = tuple(origins)
    if not allowed:
        return
    headers = cherrypy.serving.response.headers
    if "*" in allowed:
        headers["Access-Control-Allow-Origin"] = "*"
        return
    origin = cherrypy.serving.request.headers.get("Origin")
    if origin in allowed:
        headers["Access-Control-Allow-Origin"] = origin
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


def _next_link(next_page: Mapping[str, str]) -> str:
    request = cherrypy.serving.request
    params = {k: v for k, v in request.params.items() if k not in next_page and isinstance(v, str)}
    fmt = getattr(request, "restd_format", None)
    if fmt is not None:  # taken out of the parameters before the handler ran; the next page keeps it
        params["format"] = fmt
    params.update(next_page)
    path = quote(request.script_name + request.path_info, safe="/@:!$&'()*+,;=")
    url = path + "?" + urlencode(params, quote_via=quote)
    return f'<{url}>; rel="next"'


def _ok(result: Any, media: str, cache_control: str) -> bytes:
    """A 200 (or a 304 when the client already has it): ETag, Cache-Control, list headers."""
    vary = cherrypy.serving.response.headers.get("Vary")
    if isinstance(result, Page):  # a page of a URL that answers JSON too depends on Accept
        negotiated = getattr(cherrypy.serving.request, "restd_negotiated", False)
        page_headers = {"Vary": f"{vary}, Accept" if vary else "Accept"} if negotiated else {}
        return _respond(200, result.body, result.content_type, page_headers)
    # a handler may say otherwise (health probes must never be answered from a cache)
    cache_control = cherrypy.serving.response.headers.get("Cache-Control") or cache_control
    headers = {"Cache-Control": cache_control,
               "Vary": f"{vary}, Accept, Authorization" if vary else "Accept, Authorization"}
    if isinstance(result, Listing):
        if result.truncated:
            headers["X-Restd-Truncated"] = "true"
        if result.next_page:
            headers["Link"] = _next_link(result.next_page)
    if isinstance(result, Listing) and result.stream_tag is not None:
        headers["ETag"] = variant_tag(result.stream_tag, media)
        if _not_modified(headers["ETag"]):
            return _respond(304, b"", media, headers)
        _respond(200, b"", media, headers)
        cherrypy.serving.response.stream = True
        return _stream(result.records, media)  # type: ignore[return-value]
    if isinstance(result, Listing) and result.spool:
        return _spooled(result.records, media, headers)
    body = encode(result, media)
    block = result.records if isinstance(result, Listing) and media == JSON else None
    if isinstance(block, RecordBlock):  # hashed once, however often a cached answer is sent
        block.etag = block.etag or etag(body)
        headers["ETag"] = block.etag
    else:
        headers["ETag"] = etag(body)
    if _not_modified(headers["ETag"]):
        return _respond(304, b"", media, headers)
    return _respond(200, body, media, headers)


def _chunks(records: Iterable[Any], media: str) -> Iterator[bytes | memoryview]:
    """A list body, a record at a time, in the same bytes encode() gives for the whole list.
    A RecordBlock among the records stands for its records (in JSON: one chunk for them all)."""
    if media != JSON:
        records = _flat(records)
    first = True
    for record in records:
        if isinstance(record, RecordBlock):
            if len(record):
                yield b"[\n" if first else b",\n"
                yield memoryview(record.body)[2:-3]  # its records, without the brackets
                first = False
            continue
        if media == NDJSON:
            yield _line(record).encode("utf-8")
        elif media == YAML:
            yield yamlflow.item(_line(record)[:-1]).encode("utf-8")
        else:
            yield (b"[\n" if first else b",\n") + (
                record if isinstance(record, bytes) else to_json(record).encode("utf-8"))
        first = False
    if media == JSON:
        yield b"[]\n" if first else b"\n]\n"
    elif media == YAML and first:
        yield b"[]\n"


def _flat(records: Iterable[Any]) -> Iterator[Any]:
    for record in records:
        if isinstance(record, RecordBlock):
            yield from record
        else:
            yield record


def _stream(records: Iterable[Any], media: str) -> Iterable[bytes]:
    """A list body sent as its records arrive. A failure half-way can no longer change the
    status: the body stops short (invalid JSON), and the log says why."""
    try:
        for chunk in _chunks(records, media):
            yield chunk if isinstance(chunk, bytes) else bytes(chunk)  # a WSGI server takes bytes only
    except RestdError as error:
        log.error("a streamed answer stopped short: %s", error.message)
    except Exception:
        log.exception("a streamed answer stopped short")


SPOOL_MEMORY = 8 << 20  # bytes of a spooled answer kept in memory; the rest goes to a temporary file
SPOOL_READ = 1 << 20  # bytes sent at a time from a spooled answer


def _spooled(records: Iterable[Any], media: str, headers: dict[str, str]) -> bytes:
    """Encode a whole listing into a temporary file, hashing as it goes, then answer from it:
    memory holds what the records' producer holds (a batch), the ETag is the same one encode()
    would give, and a failure before the end still gets its own error status."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY, prefix="condor_restd-")
    try:
        size, crc = 0, 0
        for chunk in _chunks(records, media):
            spool.write(chunk)
            size += len(chunk)
            crc = zlib.crc32(chunk, crc)
        headers["ETag"] = _tag(size, crc)  # what etag() gives for the same bytes
        if _not_modified(headers["ETag"]):
            spool.close()
            return _respond(304, b"", media, headers)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    headers["Content-Length"] = str(size)
    _respond(200, b"", media, headers)
    cherrypy.serving.response.stream = True  # sent from the file as it is, Content-Length known

    def send() -> Iterator[bytes]:
        with spool:
            while True:
                chunk = spool.read(SPOOL_READ)
                if not chunk:
                    return
                yield chunk
    return send()  # type: ignore[return-value]


def _answer(inner: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
            auth: Callable[..., Any] | None = None, cache_control: str = "no-cache") -> bytes:
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
        request.restd_negotiated = len(offered) > 1  # the answer depends on Accept
        if request.method == "OPTIONS":
            headers = {"Allow": ", ".join(ALLOWED_METHODS),
                       "Access-Control-Allow-Methods": ", ".join(ALLOWED_METHODS),
                       "Access-Control-Allow-Headers": "Accept, Authorization, If-None-Match",
                       "Access-Control-Max-Age": "86400"}
            return _respond(204, b"", media, headers)
        if request.method not in ALLOWED_METHODS:
            error = MethodNotAllowed(f"{request.method} is not allowed; this API is read-only")
            error.headers["Allow"] = ", ".join(ALLOWED_METHODS)
            raise error
        if auth is not None:  # after OPTIONS: a CORS preflight carries no credentials
            who = auth(request.path_info, request.headers.get("Authorization"), request.params)
            request.restd_identity = who
            if who is not None:
                request.login = who.user  # the access log's user field
        return _ok(inner(*args, **kwargs), media, cache_control)
    except RestdError as error:
        return error_response(error, media)
    except Exception:
        log.exception("unexpected error serving %s", request.path_info)
        return error_response(RestdError("internal error; the daemon log has the details"), media)


def _wrap(inner: Callable[..., Any], cors_origins: Iterable[str], metrics: Any,
          auth: Callable[..., Any] | None = None, cache_control: str = "no-cache") -> Callable[..., bytes]:
    def handler(*args: Any, **kwargs: Any) -> bytes:
        request = cherrypy.serving.request
        _cors(cors_origins)
        if metrics is None:
            return _answer(inner, args, kwargs, auth, cache_control)
        started = time.perf_counter()
        metrics.request_started()
        try:
            return _answer(inner, args, kwargs, auth, cache_control)
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
                      auth: Callable[..., Any] | None = None, cache_control: str = "no-cache") -> None:
        """`auth(path, authorization, params)`, when given, runs before every handler but OPTIONS:
        it returns the identity handlers see through identity(), or raises the error to answer."""
        request = cherrypy.serving.request
        if request.handler is not None:
            request.handler = _wrap(request.handler, cors_origins, metrics, auth, cache_control)


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
