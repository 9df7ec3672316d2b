"""Content negotiation and encoding: one CherryPy tool turns every result and every error into a response."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any, Callable

import cherrypy
import yaml

from .errors import MethodNotAllowed, NotAcceptable, RestdError

log = logging.getLogger("condor_restd.http")

JSON = "application/json"
YAML = "application/yaml"
MEDIA_TYPES = {JSON: JSON, YAML: YAML, "application/x-yaml": YAML, "text/yaml": YAML,
               "text/x-yaml": YAML, "application/*": JSON, "*/*": JSON}
FORMATS = {"json": JSON, "yaml": YAML}
ALLOWED_METHODS = ("GET", "HEAD", "OPTIONS")


class RawJSON(str):
    """A fragment that is already JSON text; the encoder writes it as it is."""


def to_json(value: Any) -> str:
    """Encode a result, splicing RawJSON fragments in without re-encoding them."""
    if isinstance(value, RawJSON):
        return value
    if isinstance(value, dict):
        if not any(isinstance(v, (RawJSON, dict, list)) for v in value.values()):
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
    if isinstance(value, RawJSON):
        return json.loads(value)
    if isinstance(value, dict):
        return {str(k): to_python(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_python(v) for v in value]
    return value


def encode(value: Any, media: str) -> bytes:
    if media == YAML:
        text = yaml.safe_dump(to_python(value), default_flow_style=False, sort_keys=False,
                              allow_unicode=True)
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


def negotiate(accept: str | None, fmt: str | None = None) -> str:
    """The media type to answer in: ?format= wins, then the Accept header, then JSON."""
    if fmt is not None:
        if fmt.lower() not in FORMATS:
            raise NotAcceptable(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}",
                                available=sorted(FORMATS))
        return FORMATS[fmt.lower()]
    if not accept or not accept.strip():
        return JSON
    for quality, _, media in _accepted(accept):
        if quality > 0 and media in MEDIA_TYPES:
            return MEDIA_TYPES[media]
    raise NotAcceptable(f"cannot answer in any type the Accept header lists ({accept}); "
                        "available are application/json and application/yaml",
                        available=[JSON, YAML])


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
    response.headers["Content-Type"] = f"{media}; charset=utf-8" if media == JSON else media
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return body


def error_response(error: RestdError, media: str = JSON) -> bytes:
    """The one shape of every error: {"message": ..., "status": ...} in the negotiated format."""
    if isinstance(error, NotAcceptable):
        media = JSON
    return _respond(error.status, encode(error.body(), media), media, error.headers)


def _wrap(inner: Callable[..., Any], cors_origins: Iterable[str]) -> Callable[..., bytes]:
    def handler(*args: Any, **kwargs: Any) -> bytes:
        request = cherrypy.serving.request
        _cors(cors_origins)
        media = JSON
        try:
            # CherryPy's PageHandler carries the query parameters itself
            fmt = getattr(inner, "kwargs", kwargs).pop("format", None)
            if fmt is not None and not isinstance(fmt, str):
                raise NotAcceptable("format given more than once")
            media = negotiate(request.headers.get("Accept"), fmt)
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
            return _respond(200, encode(inner(*args, **kwargs), media), media)
        except RestdError as error:
            return error_response(error, media)
        except Exception:
            log.exception("unexpected error serving %s", request.path_info)
            return error_response(RestdError("internal error; the daemon log has the details"),
                                  media)

    return handler


class RenderTool(cherrypy.Tool):
    """Negotiates the format, encodes the handler's result, and renders every error as JSON/YAML."""

    def __init__(self) -> None:
        super().__init__("before_handler", self._wrap_handler, priority=30)

    def _wrap_handler(self, cors_origins: Iterable[str] = ("*",)) -> None:
        request = cherrypy.serving.request
        if request.handler is not None:
            request.handler = _wrap(request.handler, cors_origins)


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
