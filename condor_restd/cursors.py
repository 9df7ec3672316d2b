"""Page cursors: what the daemon gives out to resume a list, and the checks a returned one passes."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from .errors import BadRequest
from .historyfile import CURSOR_REFUSED

JOB_ID = re.compile(r"[0-9]{1,10}(\.[0-9]{1,10})?")
MAX_CURSOR_LENGTH = 256


def next_page(position: dict[str, Any], source: str, size: int) -> dict[str, str]:
    data = json.dumps({"v": 1, "s": source, **position}, separators=(",", ":")).encode()
    return {"cursor": base64.urlsafe_b64encode(data).decode().rstrip("="), "limit": str(size)}


def decode_cursor(cursor: str, source: str) -> dict[str, Any]:
    """A cursor this daemon gave out for `source`, or BadRequest: every field checked, so that
    nothing later can fail on a forged one."""
    bad = BadRequest(CURSOR_REFUSED)
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise bad
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise bad from None
    if not isinstance(data, dict) or data.get("v") != 1 or data.get("s") != source:
        raise bad
    if source == "jobs":
        fields, ints = {"v", "s", "after"}, data.get("after") or []
        if not isinstance(ints, list):
            raise bad
    elif "f" in data:  # a byte offset in a history file
        fields, ints = {"v", "s", "f", "o"}, [data.get("o")]
        if not isinstance(data["f"], str) or not re.fullmatch(r"[A-Za-z0-9_.\-]{1,200}", data["f"]):
            raise bad
    else:
        fields, ints = {"v", "s", "a", "n"}, [data.get("n")]
        if not isinstance(data.get("a"), str) or not JOB_ID.fullmatch(data["a"]):
            raise bad
    if set(data) != fields or len(ints) != (2 if source == "jobs" else 1) or not all(
            isinstance(i, int) and not isinstance(i, bool) and 0 <= i < 2**40 for i in ints):
        raise bad
    return data
