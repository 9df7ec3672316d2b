"""What a submit request may hold: a description in HTCondor's submit language, a count, item data.

The schedd decides what the user may submit; these rules keep out what would reach past the
user before the schedd sees it. A description may not:
- say whose the jobs are (Owner, User, an accounting group user other than the user's own):
  the schedd sets them from who authenticated;
- read the submitting process's environment or configuration ($ENV(), getenv, $(SEC_...)):
  that process is the daemon's, started for this request;
- hold submit-language statements (include, queue, if, use, ...): the description is key =
  value pairs, and the jobs are counted by `count` and `itemdata`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import BadRequest

MAX_KEYS = 200
MAX_VALUE = 16384  # characters of one value
MAX_JOBS = 10000  # jobs one submit may make (count times item data rows)
MAX_ITEM_KEYS = 20
KEY = re.compile(r"(?:\+|MY\.)?[A-Za-z_][A-Za-z0-9_.]*", re.IGNORECASE)
ITEM_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
STATEMENTS = frozenset({"include", "queue", "if", "elif", "else", "endif", "use", "error",
                        "warning", "require_config", "template"})
# custom attributes (+Name, MY.Name) that say whose a job is: the schedd sets them
IDENTITY_ATTRIBUTES = frozenset(name.lower() for name in (
    "Owner", "User", "OsUser", "AcctGroupUser", "AccountingGroup", "AcctGroup", "AuthTokenSubject",
    "AuthTokenIssuer", "AuthTokenId", "AuthTokenScopes", "AuthTokenGroups", "SubmitterId",
    "ClusterId", "ProcId", "GlobalJobId", "QDate", "JobStatus"))
READS_THE_PROCESS = re.compile(r"\$ENV\s*\(|\$\(\s*ENV\s*\(|\$\(\s*SEC_|\$\(\s*\$", re.IGNORECASE)
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # a tab may stay; no newline, no control


@dataclass(frozen=True)
class Submission:
    """A checked submit request."""

    description: dict[str, str]
    count: int = 0
    itemdata: list[dict[str, str]] = field(default_factory=list)

    def jobs(self) -> int:
        return max(1, self.count) * max(1, len(self.itemdata))


def _text(value: Any, what: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if not isinstance(value, str):
        raise BadRequest(f"{what} must be a string, a number or a boolean")
    if len(value) > MAX_VALUE:
        raise BadRequest(f"{what} is longer than {MAX_VALUE} characters")
    if CONTROL.search(value):
        raise BadRequest(f"{what} holds a line break or a control character")
    return value


def _key(key: str) -> None:
    if not KEY.fullmatch(key):
        raise BadRequest(f"{key!r} is not a submit command or a +Attribute")
    bare = key.lower()
    custom = bare.startswith(("+", "my."))
    name = bare[1:] if bare.startswith("+") else bare[3:] if bare.startswith("my.") else bare
    if not custom and name in STATEMENTS:
        raise BadRequest(f"{key!r} is a submit-language statement; give jobs with count and itemdata")
    if custom and name in IDENTITY_ATTRIBUTES:
        raise BadRequest(f"{key!r} says whose or which a job is; the schedd sets it from who "
                         "authenticated")
    if name == "getenv":
        raise BadRequest("getenv would copy this daemon's environment into the job; "
                         "set environment instead")


def check(body: Mapping[str, Any], user: str) -> Submission:
    """The submit request in `body`, for `user` (user@domain); BadRequest says what is wrong."""
    unknown = sorted(set(body) - {"description", "count", "itemdata"})
    if unknown:
        raise BadRequest(f"a submit takes description, count and itemdata, not {', '.join(unknown)}")
    description = body.get("description")
    if not isinstance(description, dict) or not description:
        raise BadRequest("description must be an object of submit commands, like "
                         '{"executable": "/bin/sleep", "arguments": "60"}')
    if len(description) > MAX_KEYS:
        raise BadRequest(f"description has more than {MAX_KEYS} commands")
    checked: dict[str, str] = {}
    lowered: set[str] = set()
    for key, value in description.items():
        _key(key)
        if key.lower() in lowered:
            raise BadRequest(f"description gives {key!r} twice (submit commands ignore case)")
        lowered.add(key.lower())
        text = _text(value, f"description's {key!r}")
        if READS_THE_PROCESS.search(text):
            raise BadRequest(f"description's {key!r} reads the environment or configuration of "
                             "the submitting process, which is this daemon's")
        if key.lower() == "accounting_group_user" and text.strip() != user.split("@")[0]:
            raise BadRequest("accounting_group_user may only name you: the schedd charges the "
                             "jobs to that user")
        checked[key] = text
    count = body.get("count", 0)
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_JOBS:
        raise BadRequest(f"count must be a whole number from 0 to {MAX_JOBS}")
    items = body.get("itemdata", [])
    if not isinstance(items, list) or any(not isinstance(row, dict) or not row for row in items):
        raise BadRequest("itemdata must be a list of objects, like [{\"file\": \"a.dat\"}]")
    rows: list[dict[str, str]] = []
    for number, row in enumerate(items, 1):
        if len(row) > MAX_ITEM_KEYS:
            raise BadRequest(f"itemdata row {number} has more than {MAX_ITEM_KEYS} keys")
        clean: dict[str, str] = {}
        for key, value in row.items():
            if not ITEM_KEY.fullmatch(key):
                raise BadRequest(f"itemdata row {number}: {key!r} is not a variable name")
            text = _text(value, f"itemdata row {number}'s {key!r}")
            if "\x1f" in text or READS_THE_PROCESS.search(text):
                raise BadRequest(f"itemdata row {number}'s {key!r} cannot be used as item data")
            clean[key] = text
        if rows and set(clean) != set(rows[0]):
            raise BadRequest(f"itemdata row {number} has other keys than row 1")
        rows.append(clean)
    submission = Submission(checked, count, rows)
    if submission.jobs() > MAX_JOBS:
        raise BadRequest(f"one submit makes at most {MAX_JOBS} jobs (count times itemdata rows)")
    return submission
