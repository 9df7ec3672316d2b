"""An in-process WSGI client (no sockets, no test framework): the bench and the tests call the app with it."""

from __future__ import annotations

import io
import json
import sys
from typing import Any, Callable
from urllib.parse import quote, urlencode


class Response:
    def __init__(self, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status_line = status
        self.status = int(status.split()[0])
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<Response {self.status_line} {self.body[:200]!r}>"


class Client:
    """Calls a WSGI application directly, as a server would."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

    def request(self, method: str, path: str | bytes, params: dict[str, Any] | None = None,
                headers: dict[str, str] | None = None, query: str | None = None,
                body: bytes = b"", environ: dict[str, str] | None = None) -> Response:
        if query is None:
            query = urlencode(params or {}, doseq=True, quote_via=quote)
        # PEP 3333: PATH_INFO carries the raw (percent-decoded) bytes as latin-1 text
        raw = path if isinstance(path, bytes) else path.encode("utf-8")
        env = {
            "REQUEST_METHOD": method, "PATH_INFO": raw.decode("latin-1"), "QUERY_STRING": query,
            "SERVER_NAME": "localhost", "SERVER_PORT": "9680", "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "localhost:9680", "REMOTE_ADDR": "127.0.0.1", "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr, "wsgi.url_scheme": "http",
            "wsgi.version": (1, 0), "wsgi.multithread": True, "wsgi.multiprocess": False,
            "wsgi.run_once": False, **(environ or {}),  # e.g. SCRIPT_NAME, as a WSGI server sets it
        }
        for name, value in (headers or {}).items():
            key = name.upper().replace("-", "_")
            env[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"] = value
        captured: dict[str, Any] = {}

        def start_response(status: str, response_headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Callable[[bytes], None]:
            captured["status"], captured["headers"] = status, response_headers
            return lambda data: None

        result = self.app(env, start_response)
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close:
                close()
        return Response(captured["status"], captured["headers"], body)

    def get(self, path: str | bytes, params: dict[str, Any] | None = None, **kwargs: Any) -> Response:
        return self.request("GET", path, params, **kwargs)


def lowered(value: Any) -> Any:
    """Decoded JSON with every object key lowercased, at any depth."""
    if isinstance(value, dict):
        return {k.lower(): lowered(v) for k, v in value.items()}
    if isinstance(value, list):
        return [lowered(v) for v in value]
    return value
