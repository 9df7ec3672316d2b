"""The one seam to HTCondor: the Condor protocol, the real adapter over the bindings, and ClassAd helpers."""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Optional, Protocol

from .errors import BadRequest, NotFound, RestdError, Unavailable

try:  # htcondor2/classad2 first; sites on older bindings fall back to the version 1 modules
    import classad2 as classad
    import htcondor2 as htcondor

    BINDINGS = "htcondor2"
except ImportError:  # pragma: no cover - exercised only where the old bindings are installed
    import classad  # type: ignore[no-redef,unused-ignore]
    import htcondor  # type: ignore[no-redef,unused-ignore]

    BINDINGS = "htcondor"

_speedups: Any
try:  # the compiled helper (condor_restd/_speedups.c); the same work is done in Python without it
    from . import _speedups
except ImportError:  # pragma: no cover - exercised where the package was installed without a compiler
    _speedups = None

Ad = Any  # a classad2.ClassAd (or classad.ClassAd): opaque outside this module

HTCONDOR_ERRORS: tuple[type[BaseException], ...] = tuple(
    e for e in (getattr(htcondor, "HTCondorException", None),) if isinstance(e, type))
CLASSAD_ERRORS: tuple[type[BaseException], ...] = tuple(
    e for e in (getattr(classad, "ClassAdException", None),
                getattr(classad, "ClassAdParseError", None)) if isinstance(e, type))

VALUE_TYPES: tuple[type, ...] = tuple(
    v for v in (getattr(classad, "Value", None),) if isinstance(v, type))
PARSE_ERRORS: tuple[type[BaseException], ...] = (*CLASSAD_ERRORS, ValueError, SyntaxError)

AD_TYPES = {
    "any": "Any", "startd": "Startd", "schedd": "Schedd", "master": "Master",
    "collector": "Collector", "negotiator": "Negotiator", "submitter": "Submitter",
    "accounting": "Accounting", "credd": "Credd", "defrag": "Defrag", "generic": "Generic",
    "grid": "Grid", "had": "HAD", "license": "License",
}
DAEMON_TYPES = {
    "master": "Master", "collector": "Collector", "negotiator": "Negotiator",
    "schedd": "Schedd", "startd": "Startd",
}
NOT_DEFINED = "Not defined"  # what RemoteParam answers for a knob the daemon does not define
REDACTED = '"<REDACTED>"'


class Condor(Protocol):
    """What condor_restd needs from a pool. `schedd` is a schedd's Name, or None for the default one.

    Every method raises errors.RestdError subclasses only: NotFound for an unknown schedd or
    daemon, BadRequest for a constraint the daemon rejects, Unavailable when a daemon cannot be
    reached. Callers must not modify returned ads.
    """

    def jobs(self, schedd: str | None, constraint: str, projection: Sequence[str],
             limit: int) -> Sequence[Ad]: ...

    def history(self, schedd: str | None, constraint: str, projection: Sequence[str],
                limit: int, since: str | None = None) -> Sequence[Ad]: ...

    def status(self, ad_type: str, constraint: str, projection: Sequence[str]) -> Sequence[Ad]: ...

    def config(self, daemon: str | None) -> Mapping[str, Any]:
        """Every defined knob: the local config files' view, or a running daemon's."""

    def config_value(self, daemon: str | None, name: str) -> Any:
        """One knob (case-insensitive), or NotFound."""

    # Optional: history_file(schedd) -> HistoryFile | None, the schedd's history file when this
    # host may read it; queries then pages through it by byte offset.


# ---------------------------------------------------------------- ClassAd helpers (real classad2)

def quote(text: str) -> str:
    """`text` as a ClassAd string literal."""
    try:
        return str(classad.quote(text))
    except PARSE_ERRORS as exc:
        raise BadRequest(f"{text!r} cannot be used as a ClassAd string: {exc}") from None


def unparse(text: str) -> str:
    """An expression as the ClassAd library writes it back (normalized spacing and case)."""
    return str(check_expression(text))


def check_expression(text: str) -> Any:
    """Parse `text` as a ClassAd expression, or raise BadRequest."""
    try:
        return classad.ExprTree(text)
    except PARSE_ERRORS as exc:
        shown = text if len(text) <= 200 else text[:200] + "..."
        raise BadRequest(f"constraint is not a valid ClassAd expression: {shown!r}",
                         detail=str(exc)) from None


def referenced_attributes(text: str) -> list[str]:
    """The attribute names an expression refers to (MY./TARGET. kept), as the ClassAd library sees them."""
    expr = check_expression(text)
    return [str(name) for name in classad.ClassAd().externalRefs(expr)]


def parse_ads(text: str) -> list[Ad]:
    """Ads in HTCondor's long (old ClassAd) format, separated by blank lines. The library's time
    grows with the square of its input's length, so a long text goes to it a piece at a time,
    each cut at a blank line."""
    ads: list[Ad] = []
    start = 0
    while start < len(text):
        cut = text.find("\n\n", start + PARSE_PIECE)
        end = len(text) if cut < 0 else cut + 2
        ads.extend(ad for ad in classad.parseAds(text[start:end]) if len(ad))
        start = end
    return ads


PARSE_PIECE = 1 << 20  # characters of ad text handed to the ClassAd parser at a time


def matches(constraint: Any, ad: Ad) -> bool:
    """Whether `ad` satisfies a parsed constraint, as a schedd or collector decides it."""
    value = constraint.eval(ad)
    if isinstance(value, VALUE_TYPES):  # Undefined and Error are IntEnum members: never a match
        return False
    if isinstance(value, bool):
        return value
    return isinstance(value, (int, float)) and value != 0


def project(ad: Ad, names: Sequence[str]) -> Ad:
    """A new ad holding only `names` (case-insensitively) of `ad`."""
    out = classad.ClassAd()
    for name in names:
        if name in ad:
            out[name] = ad.lookup(name)
    return out


def value_of(ad: Ad, name: str) -> Any:
    """The literal value of an attribute; None when it is missing or undefined."""
    value = ad.get(name)
    if value is None or isinstance(value, VALUE_TYPES):
        return None
    return value


def group_key(ad: Ad, name: str) -> str | None:
    """The text an ad is grouped under by attribute `name`; None leaves the ad out."""
    value = value_of(ad, name)
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, classad.ExprTree):
        return f"/Expr({value})/"
    return str(value)


# ------------------------------------------------------------------------------ JSON encoding
# printJson() writes one attribute a line; a top-level name is the only thing that starts a line
# with exactly two spaces and a quote, and JSON strings never hold a raw newline. So names can be
# lowercased, dropped or redacted on the text, without decoding and re-encoding every value.
_TOP_NAME = re.compile(r'(\n  "[^"\\\n]*")')
# A name at any depth: a line's first token, a JSON string, followed by ": " (a list element
# string is followed by "," or a line break instead).
_ANY_NAME = re.compile(r'(\n *"[^"\\\n]*(?:\\.[^"\\\n]*)*": )')


def ad_json(ad: Ad, keep: frozenset[str] | None = None,
            hide: frozenset[str] = frozenset()) -> str:
    """The ad as HTCondor's JSON encoding writes it, with attribute names lowercased.

    `keep` (lowercase names) drops every other attribute; attributes in `hide` (lowercase)
    are written as "<REDACTED>". Names inside nested ads are lowercased too.
    """
    text = ad.printJson()
    if keep is None and not hide:  # the hot path: one pass over the text
        return lower_names(text)
    parts = _TOP_NAME.split(text)
    if len(parts) == 1:
        return "{}"
    parts[1::2] = map(str.lower, parts[1::2])
    if text.find("{\n", 1) >= 0:  # a nested ad (e.g. NumHoldsByReason = [ UserRequest = 1 ])
        for i in range(2, len(parts), 2):
            if "{\n" in parts[i]:
                nested = _ANY_NAME.split(parts[i])
                nested[1::2] = map(str.lower, nested[1::2])
                parts[i] = "".join(nested)
    return _select(parts, keep, hide)


def lower_names(text: str) -> str:
    """printJson() text with every member name lowercased ("{}" for an empty ad)."""
    if _speedups is not None:
        done: str | None = _speedups.lower_names(text)
        if done is not None:
            return done
    return _lower_names(text)


def _lower_names(text: str) -> str:
    parts = _ANY_NAME.split(text)
    if len(parts) == 1:
        return "{}"
    parts[1::2] = map(str.lower, parts[1::2])
    return "".join(parts)


def job_record(ad: Ad, keep: frozenset[str] | None = None,
               hide: frozenset[str] = frozenset()) -> tuple[tuple[int, int], bytes]:
    """A job ad's sort key (cluster, proc) and its API record in UTF-8,
    {"jobid": "<cluster>.<proc>", "classad": ad_json(ad, keep, hide)}."""
    key, jobid = job_id(ad)
    return key, (_JOB_RECORD % (jobid, ad_json(ad, keep, hide))).encode("utf-8")


def job_records(ads: Sequence[Ad], keep: frozenset[str] | None = None,
                hide: frozenset[str] = frozenset()) -> list[tuple[tuple[int, int], bytes]]:
    """job_record() for each ad. Whole ads go through the compiled helper, which reads the ids
    and lowercases the names in one pass over printJson(); it hands back what it cannot do."""
    if keep is not None or hide or _speedups is None:
        return [job_record(ad, keep, hide) for ad in ads]
    done: list[Any] = _speedups.job_records(ads)
    if None in done:
        done = [job_record(ad) if record is None else record for ad, record in zip(ads, done)]
    return done


def job_listing(ads: Sequence[Ad], sort: bool, cap: int) -> tuple[bytes, list[int]] | None:
    """The JSON array of the job records of `ads` (sorted by id with `sort`, the first `cap`
    when cap > 0) written once by the compiled helper, with where each record ends in it; None
    when the helper is not built or an ad needs the Python path."""
    if _speedups is None:
        return None
    done = _speedups.job_listing(ads, sort, cap)
    if done is None:
        return None
    body, ends, count = done
    return body, memoryview(ends).cast("q")[:count].tolist()


_JOB_RECORD = '{"jobid": "%s", "classad": %s}'


def job_keys(ads: Sequence[Ad]) -> list[tuple[int, int]]:
    """job_id(ad)[0] for each ad; the compiled helper reads them from printJson() in one go,
    which is quicker for small (id-only) ads and slower for whole ones."""
    if _speedups is None:
        return [job_id(ad)[0] for ad in ads]
    keys: list[Any] = _speedups.job_ids(ads)
    if None in keys:
        keys = [job_id(ad)[0] if key is None else key for ad, key in zip(ads, keys)]
    return keys


def job_id(ad: Ad) -> tuple[tuple[int, int], str]:
    """(cluster, proc) for sorting (-1 for a value that is not an integer), and the id as text."""
    cluster, proc = value_of(ad, "ClusterId"), value_of(ad, "ProcId")
    key = (cluster if isinstance(cluster, int) else -1, proc if isinstance(proc, int) else -1)
    return key, f"{cluster}.{proc}"


def _select(parts: list[str], keep: frozenset[str] | None, hide: frozenset[str]) -> str:
    kept = []
    last = len(parts) - 2
    for i in range(1, len(parts), 2):
        name = parts[i][4:-1]
        if keep is not None and name not in keep:
            continue
        value = parts[i + 1]
        if i == last:
            value = value[:-2]  # the closing "\n}"
        value = value.rstrip(",")
        if name in hide:
            value = ": " + REDACTED
        kept.append(parts[i] + value)
    if not kept:
        return "{}"
    return "{" + ",".join(kept) + "\n}"


# ----------------------------------------------------------------------- history files

BANNER = b"\n*** "  # every record in a schedd's history file ends with a line "*** Offset = ..."
READ_BLOCK = 1 << 16


class HistoryFile:
    """A schedd's history file, and the files it was rotated into, read newest record first.

    A position is (file name, byte offset of a record's start); reading from a position gives
    the records before it. Used only when the daemon runs on the schedd's host and may read
    the files, so that a deep page costs one page of reading, not a scan from the newest record.
    """

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)

    def files(self) -> list[str]:
        """The current file, then the rotated ones (history.YYYYMMDDTHHMMSS), newest first."""
        folder, name = os.path.split(self.path)
        try:
            rotated = sorted((f for f in os.listdir(folder) if f.startswith(name + ".")
                              and f[len(name) + 1:].replace("T", "").isdigit()), reverse=True)
        except OSError:
            rotated = []
        return [name, *rotated]

    def identity(self) -> str:
        """Changes whenever a record is added or the files rotate (for weak ETags)."""
        try:
            stat = os.stat(self.path)
        except OSError:
            return "missing"
        return f"{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}"

    def records(self, before: tuple[str, int] | None = None) -> Iterator[tuple[tuple[str, int], Ad]]:
        """(position, ad) for every record before `before` (or all), newest first."""
        folder = os.path.dirname(self.path)
        names = self.files()
        start = 0
        if before is not None:
            if before[0] not in names:
                return  # rotated away since the cursor was given out: nothing older is known
            start = names.index(before[0])
        for index in range(start, len(names)):
            name = names[index]
            end = before[1] if before is not None and index == start else None
            try:
                with open(os.path.join(folder, name), "rb") as file:
                    for offset, text in _records_backwards(file, end):
                        try:
                            ads = parse_ads(text.decode("utf-8", "replace"))
                        except PARSE_ERRORS:
                            continue  # a damaged record: the schedd would skip it too
                        if ads:
                            yield (name, offset), ads[0]
            except FileNotFoundError:
                continue  # rotated while being read


def _records_backwards(file: Any, end: int | None) -> Iterator[tuple[int, bytes]]:
    """(start offset, text without its banner) of each whole record ending at or before `end`,
    newest first, reading the file backwards a block at a time."""
    if end is None:
        file.seek(0, os.SEEK_END)
        end = file.tell()
    buffer, base = b"", end  # the file's bytes [base, end)

    def find_back(pattern: bytes, limit: int) -> int:
        nonlocal buffer, base
        while True:
            found = buffer.rfind(pattern, 0, limit - base) if limit > base else -1
            if found >= 0:
                return base + found
            if base == 0:
                return -1
            step = min(READ_BLOCK, base)
            file.seek(base - step)
            buffer = file.read(step) + buffer
            base -= step

    while end > 0:
        own = find_back(BANNER, end)  # the line break before this record's banner line
        if own < 0:
            return
        line_end = buffer.find(b"\n", own - base + 1, end - base)
        banner_end = end if line_end < 0 else base + line_end + 1
        if banner_end < end:  # a record still being written follows the last banner
            end = banner_end
            continue
        previous = find_back(BANNER, own)
        start = 0 if previous < 0 else base + buffer.index(b"\n", previous - base + 1) + 1
        text = buffer[start - base:own - base]
        if text.strip():
            yield start, text
        end = start
        buffer = buffer[:start - base]


# ------------------------------------------------------------------------- bindings errors

@contextlib.contextmanager
def bindings_errors(what: str) -> Iterator[None]:
    """Turn whatever the bindings raise while doing `what` into a RestdError."""
    try:
        yield
    except RestdError:
        raise
    except HTCONDOR_ERRORS as exc:
        raise Unavailable(f"{what} failed: {exc}".rstrip(" =")) from None
    except CLASSAD_ERRORS as exc:
        raise BadRequest(f"{what}: {exc}") from None
    except ValueError as exc:  # history() and the old bindings raise ValueError for bad input
        raise BadRequest(f"{what}: {exc}") from None
    except KeyError as exc:
        raise NotFound(f"{what}: {exc.args[0] if exc.args else exc} is not defined") from None
    except (RuntimeError, OSError, AttributeError, TypeError) as exc:
        raise Unavailable(f"{what} failed: {exc}") from None


# ------------------------------------------------------------------------------ real adapter

class HTCondor:
    """The Condor protocol over the HTCondor Python bindings."""

    LOCATE_TTL = 60.0

    def __init__(self, pool: str | None = None) -> None:
        self._pool = pool or None
        self._located: dict[tuple[str, str], tuple[float, Ad]] = {}
        self._lock = threading.Lock()

    def _collector(self) -> Any:
        return htcondor.Collector(self._pool)

    def _locate(self, daemon: str, name: str | None) -> Ad:
        key = (daemon, name or "")
        now = time.monotonic()
        with self._lock:
            hit = self._located.get(key)
        if hit and now - hit[0] < self.LOCATE_TTL:
            return hit[1]
        label = f"{daemon.lower()} {name!r}" if name else f"the local {daemon.lower()}"
        with bindings_errors(f"locating {label}"):
            try:
                location = self._collector().locate(getattr(htcondor.DaemonTypes, daemon), name)
            except ValueError:  # the old bindings raise HTCondorLocateError (a ValueError)
                location = None
        if location is None:
            raise NotFound(f"no {daemon.lower()} named {name!r} is known to the collector"
                           if name else f"there is no local {daemon.lower()}")
        with self._lock:
            self._located[key] = (now, location)
        return location

    def _forget(self, daemon: str, name: str | None) -> None:
        with self._lock:
            self._located.pop((daemon, name or ""), None)

    def _schedd(self, name: str | None) -> Any:
        if name is None and not has_default_schedd(self):
            raise NotFound(NO_LOCAL_SCHEDD)
        location = self._locate("Schedd", name)
        with bindings_errors("contacting the schedd"):
            return htcondor.Schedd(location)

    def jobs(self, schedd: str | None, constraint: str, projection: Sequence[str],
             limit: int) -> Sequence[Ad]:
        handle = self._schedd(schedd)
        try:
            with bindings_errors(f"querying schedd {schedd or 'DEFAULT'}"):
                return list(handle.query(constraint=constraint, projection=list(projection),
                                         limit=limit if limit > 0 else -1))
        except Unavailable:
            self._forget("Schedd", schedd)
            raise

    def history(self, schedd: str | None, constraint: str, projection: Sequence[str],
                limit: int, since: str | None = None) -> Sequence[Ad]:
        handle = self._schedd(schedd)
        try:
            with bindings_errors(f"reading the history of schedd {schedd or 'DEFAULT'}"):
                # the bindings take a bare cluster id as an int, and "c.p" as a string
                stop: int | str | None = int(since) if since and since.isdigit() else since
                return list(handle.history(constraint, list(projection),
                                           match=limit if limit > 0 else -1, since=stop))
        except Unavailable:
            self._forget("Schedd", schedd)
            raise

    def status(self, ad_type: str, constraint: str, projection: Sequence[str]) -> Sequence[Ad]:
        kind = getattr(htcondor.AdTypes, AD_TYPES[ad_type])
        with bindings_errors("querying the collector"):
            return list(self._collector().query(kind, constraint=constraint,
                                                projection=list(projection) or None))

    def history_file(self, schedd: str | None) -> HistoryFile | None:
        """The local schedd's history file, if this process may read it (DEFAULT only)."""
        if schedd is not None:
            return None
        path = htcondor.param.get("HISTORY")
        if not path or not os.access(str(path), os.R_OK):
            return None
        return HistoryFile(str(path))

    def _params(self, daemon: str | None) -> Any:
        if daemon is None:
            return htcondor.param
        location = self._locate(DAEMON_TYPES[daemon], None)
        with bindings_errors(f"contacting the {daemon}"):
            return htcondor.RemoteParam(location)

    def config(self, daemon: str | None) -> Mapping[str, Any]:
        params = self._params(daemon)
        with bindings_errors(f"reading the {daemon or 'local'} configuration"):
            return {k: v for k, v in params.items() if v != NOT_DEFINED}

    def config_value(self, daemon: str | None, name: str) -> Any:
        params = self._params(daemon)
        with bindings_errors(f"reading {name} from the {daemon or 'local'} configuration"):
            value = params.get(name)
        if value is None or value == NOT_DEFINED:
            raise NotFound(f"{name} is not defined in the {daemon or 'local'} configuration")
        return value


# ------------------------------------------------------------------------- daemon plumbing

def param() -> Mapping[str, Any]:
    """The live HTCondor configuration (htcondor2.param)."""
    return htcondor.param  # type: ignore[no-any-return]


def reload_config() -> None:
    htcondor.reload_config()


def set_subsystem(name: str) -> None:
    subsystem_type = getattr(htcondor, "SubsystemType", None)
    if subsystem_type is not None:
        htcondor.set_subsystem(name, subsystem_type.Daemon)
    else:  # pragma: no cover
        htcondor.set_subsystem(name)


def set_ready_state(state: str = "Ready") -> None:
    htcondor.set_ready_state(state)


def send_alive(pid: Optional[int] = None, timeout: Optional[int] = None) -> None:
    if pid is None and timeout is None:
        htcondor.send_alive()
    else:
        htcondor.send_alive(None, pid, timeout)


def version() -> str:
    """The bindings in use, their version, and whether the compiled helper is built."""
    helper = "compiled helper" if _speedups is not None else "no compiled helper: slower encoding"
    return f"{BINDINGS} {htcondor.version()}; {helper}"


# ------------------------------------------------------------------------- the local schedd

def schedd_configured(config: Mapping[str, Any]) -> bool:
    """Whether this host's configuration gives DEFAULT a schedd to ask: SCHEDD in DAEMON_LIST
    (this host runs one), or SCHEDD_HOST or SCHEDD_NAME naming one elsewhere, as condor_q
    reads them. A central manager has none: DEFAULT is then a 404, and /readyz does not wait
    for a schedd that will never come."""
    daemons = re.split(r"[\s,]+", str(config.get("DAEMON_LIST") or "").upper())
    if "SCHEDD" in daemons:
        return True
    return any(str(config.get(name) or "").strip() for name in ("SCHEDD_HOST", "SCHEDD_NAME"))


def has_default_schedd(backend: Any) -> bool:
    """Whether `backend` has a DEFAULT schedd: for the real adapter, what the local configuration
    says (schedd_configured); another backend says so with a `has_default_schedd` attribute,
    else it has one."""
    if isinstance(backend, HTCondor):
        return schedd_configured(htcondor.param)
    return bool(getattr(backend, "has_default_schedd", True))


NO_LOCAL_SCHEDD = ("there is no local schedd: this host's configuration runs none (no SCHEDD in "
                   "DAEMON_LIST, no SCHEDD_HOST); ask for a schedd by name")
