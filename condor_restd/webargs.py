"""Path segments and query strings made into typed arguments, the same way for every handler."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cherrypy

from .errors import BadRequest, NotFound

IGNORED_PARAMS = ("_",)  # cache-busters that browsers and JS libraries append
MAX_WARNED = 20  # unknown parameters named in the Warning header; the rest are counted


def query_params(given: dict[str, Any], allowed: Sequence[str]) -> dict[str, str]:
    """The query parameters this URL takes, each given at most once. Others are ignored, as v1
    ignored them (clients add their own), and named in a Warning header so that a typo shows."""
    out = {}
    ignored = []
    for name, value in given.items():
        if name in IGNORED_PARAMS:
            continue
        if name not in allowed:
            ignored.append(name)
            continue
        if not isinstance(value, str):
            raise BadRequest(f"query parameter {name!r} given more than once")
        out[name] = value
    if ignored:
        cherrypy.serving.response.headers["Warning"] = _warning(ignored, allowed)
    return out


def _warning(ignored: Sequence[str], allowed: Sequence[str]) -> str:
    """One RFC 7234 Warning value (299: a persistent miscellaneous warning) naming the ignored
    parameters, in ASCII whatever they are called, and what the URL takes."""
    shown = ", ".join(ascii(name) for name in ignored[:MAX_WARNED])
    if len(ignored) > MAX_WARNED:
        shown += f" and {len(ignored) - MAX_WARNED} more"
    noun = "parameter" if len(ignored) == 1 else "parameters"
    text = (f"ignored unknown query {noun} {shown} "
            f"(this URL takes: {', '.join(allowed) if allowed else 'none'})")
    return '299 - "%s"' % text.replace("\\", "\\\\").replace('"', '\\"')


def number(text: str, what: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        raise BadRequest(f"{what} must be a non-negative integer, not {text!r}")
    return int(text)


def path_of(segments: tuple[str, ...], most: int) -> tuple[str, ...]:
    if segments and segments[-1] == "":
        segments = segments[:-1]  # a trailing slash
    if len(segments) > most or any(s == "" for s in segments):
        raise NotFound("no such URL; see /v1 for the endpoints")
    return segments


def schedd_of(name: str) -> str | None:
    return None if name == "DEFAULT" else name
