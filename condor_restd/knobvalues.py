"""How a knob's value is read: numbers, seconds, sizes, lists, names, addresses and map files.

Each reader takes the raw value (text from HTCondor's config, or a Python value) and returns the
typed value, or raises ValueError saying what was expected."""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from typing import Any, Callable

ATTRIBUTE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DEBUG_FLAG = re.compile(r"^D_[A-Z_]+(:[0-9])?$")


def _int(low: int, high: int | None = None) -> Callable[[Any], int]:
    def parse(raw: Any) -> int:
        if isinstance(raw, bool):
            raise ValueError("expected a whole number")
        if isinstance(raw, int):
            value = raw
        else:
            text = str(raw).strip()
            if not re.fullmatch(r"[+-]?[0-9]+", text):
                raise ValueError("expected a whole number")
            value = int(text)
        if value < low or (high is not None and value > high):
            bound = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise ValueError(f"must be {bound}")
        return value

    return parse


def _seconds(zero: bool = False) -> Callable[[Any], float]:
    """A number of seconds: positive, or (with `zero`) 0 too."""
    def parse(raw: Any) -> float:
        if isinstance(raw, bool):
            raise ValueError("expected a number of seconds")
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ValueError("expected a number of seconds") from None
        if not (0 <= value if zero else 0 < value) or value == float("inf"):
            raise ValueError("must be 0 or a positive number of seconds" if zero
                             else "must be a positive number of seconds")
        return value

    return parse


def _text(raw: Any) -> str:
    return str(raw).strip()


def _log(raw: Any) -> str:
    """A file path, or STDERR (any case): standard error, held as ""."""
    text = _text(raw)
    return "" if text.upper() == STDERR else text


SIZE = re.compile(r"([0-9]+)\s*([KMGT]?)B?", re.IGNORECASE)
SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _size(raw: Any) -> int:
    """Bytes, written as HTCondor writes log sizes: 10485760, 10 Mb, 512Kb, 1 G."""
    if isinstance(raw, bool):
        raise ValueError("expected a size in bytes, like 10485760 or 10 Mb")
    if isinstance(raw, int):
        value = raw
    else:
        match = SIZE.fullmatch(str(raw).strip())
        if not match:
            raise ValueError("expected a size in bytes, like 10485760 or 10 Mb")
        value = int(match.group(1)) * SIZE_UNITS[match.group(2).upper()]
    if value < 0:
        raise ValueError("must be at least 0")
    return value


HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-]*|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.%A-Za-z]*")


def _address(raw: Any) -> str:
    text = str(raw).strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if not HOST.fullmatch(text):
        raise ValueError("expected an interface address or host name, like 127.0.0.1, 0.0.0.0 or ::")
    return text


def _words(raw: Any) -> tuple[str, ...]:
    return tuple(w for w in re.split(r"[\s,]+", str(raw)) if w)


def _attributes(raw: Any) -> frozenset[str]:
    names = _words(raw)
    for name in names:
        if not ATTRIBUTE_NAME.match(name):
            raise ValueError(f"{name!r} is not a ClassAd attribute name")
    return frozenset(n.lower() for n in names)


NO_ORIGINS = "NONE"  # origins: no CORS header (HTCondor reads an empty value as unset)
STDERR = "STDERR"  # a log path meaning standard error


def _origins(raw: Any) -> tuple[str, ...]:
    origins = _words(raw)
    if any(origin.upper() == NO_ORIGINS for origin in origins):
        if len(origins) > 1:
            raise ValueError(f"{NO_ORIGINS} (no CORS header) cannot be combined with origins")
        return ()
    for origin in origins:
        if origin != "*" and not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+", origin):
            raise ValueError(f"{origin!r} is not '*' or an origin like https://host:port")
    return origins


def _debug(raw: Any) -> tuple[str, ...]:
    flags = _words(raw.upper() if isinstance(raw, str) else raw)
    for flag in flags:
        if not DEBUG_FLAG.match(flag):
            raise ValueError(f"{flag!r} is not a debug flag like D_FULLDEBUG")
    return flags


TRUE_WORDS = ("TRUE", "YES", "T", "Y", "1")
FALSE_WORDS = ("FALSE", "NO", "F", "N", "0")


def _bool(raw: Any) -> bool:
    """A boolean as HTCondor's config writes one: true/false, yes/no, 1/0 (any case)."""
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().upper()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise ValueError("expected true or false")


# Attributes that say whose a job is, or which job it is: no edit may set them, whatever a list
# of editable attributes says (the schedd guards some of them too; this does not rely on it)
PROTECTED_ATTRIBUTES = frozenset(name.lower() for name in (
    "Owner", "User", "OsUser", "AcctGroup", "AcctGroupUser", "AccountingGroup", "ClusterId",
    "ProcId", "GlobalJobId", "JobStatus", "QDate", "MyType", "TargetType", "x509userproxysubject",
    "AuthTokenSubject", "AuthTokenIssuer", "AuthTokenId", "AuthTokenScopes", "AuthTokenGroups",
    "SubmitterId", "EnteredCurrentStatus", "LastJobStatus"))


def _editable(raw: Any) -> frozenset[str]:
    names = _attributes(raw)
    refused = sorted(names & PROTECTED_ATTRIBUTES)
    if refused:
        raise ValueError(f"{', '.join(refused)} say whose a job is or which it is, and cannot be "
                         "made editable")
    return names


def _choice(*choices: str) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        text = str(raw).strip().upper()
        if text not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return text

    return parse


def _issuers(raw: Any) -> tuple[str, ...]:
    issuers = _words(raw)
    for issuer in issuers:
        if not re.fullmatch(r"https://[A-Za-z0-9.\-\[\]:]+(/[!-~]*)?", issuer) or "\\" in issuer:
            raise ValueError(f"{issuer!r} is not an issuer URL like https://issuer.example.org")
    return issuers


def _audiences(raw: Any) -> tuple[str, ...]:
    audiences = _words(raw)
    for audience in audiences:
        if not audience.isprintable():
            raise ValueError(f"{audience!r} is not an audience")
    return audiences


def _claim(raw: Any) -> str:
    text = str(raw).strip()
    if not re.fullmatch(r"[A-Za-z0-9_.:\-]+", text):
        raise ValueError("expected a claim name, like sub or preferred_username")
    return text


USER_NAME = re.compile(r"[^\s@\x00-\x1f\x7f\"\\]+@[^\s@\x00-\x1f\x7f\"\\]+")


def _users(raw: Any) -> frozenset[str]:
    users = _words(raw)
    for user in users:
        if not USER_NAME.fullmatch(user):
            raise ValueError(f"{user!r} is not an HTCondor user name like alice@example.org")
    return frozenset(users)


def file_problem(path: str) -> str | None:
    """Why `path` is not a regular file this process can read, or None if it is one."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return "not a regular file"  # and a FIFO would block the open below
        with open(path, "rb"):
            pass
    except FileNotFoundError:
        return "no such file"
    except OSError as exc:
        return f"cannot be read by uid {os.geteuid()}: {exc.strerror or exc}"
    return None


def _readable_file(raw: Any) -> str:
    """A path that must name a readable file, or empty; the listener checks again as the daemon's user."""
    path = str(raw).strip()
    problem = file_problem(path) if path else None
    if problem:
        raise ValueError(problem)
    return path


@dataclass(frozen=True)
class UserMap:
    """A map file's rules: (principal, canonical) in file order; a principal is a compiled
    /regex/ or an exact string. str() is the path, as an admin wrote it."""

    path: str = ""
    rules: tuple[tuple[re.Pattern[str] | str, str], ...] = ()

    def __str__(self) -> str:
        return self.path


MAP_METHODS = ("*", "SCITOKENS")  # other methods' lines (CLAIMTOBE, SSL, ...) are skipped
MAP_LINE = re.compile(r"(?P<method>\S+)\s+"
                      r"(?:/(?P<regex>(?:\\.|[^\\/])*)/(?P<flags>i?)|\"(?P<quoted>[^\"]*)\"|(?P<word>\S+))"
                      r"\s+(?P<canonical>\S+)")


def parse_user_map(text: str, path: str = "") -> UserMap:
    """HTCondor's map file format, one `<method> <principal> <canonical>` a line.

    Raises ValueError naming the line for anything else."""
    rules: list[tuple[re.Pattern[str] | str, str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = MAP_LINE.fullmatch(line)
        if not match:
            raise ValueError(f"line {number}: expected <method> <principal> <canonical>")
        if match["method"].upper() not in MAP_METHODS:
            continue
        principal: re.Pattern[str] | str
        if match["regex"] is not None:
            try:
                principal = re.compile(match["regex"], re.IGNORECASE if match["flags"] else 0)
            except re.error as exc:
                raise ValueError(f"line {number}: bad regular expression: {exc}") from None
            groups = principal.groups
        else:
            principal = match["quoted"] if match["quoted"] is not None else match["word"]
            groups = 0
        canonical = match["canonical"]
        for ref in re.findall(r"\\(\d)", canonical):
            if int(ref) > groups:
                raise ValueError(f"line {number}: \\{ref} but the principal has {groups} group(s)")
        rules.append((principal, canonical))
    return UserMap(path, tuple(rules))


def _user_map(raw: Any) -> UserMap:
    path = _readable_file(raw)
    if not path:
        return UserMap()
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeError) as exc:
        raise ValueError(f"cannot be read: {exc}") from None
    return parse_user_map(text, path)
