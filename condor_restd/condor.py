"""The one seam to HTCondor: the bindings, the Condor protocol over them, and what a worker runs."""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Optional, Protocol

from .classads import (
    CLASSAD_ERRORS as CLASSAD_ERRORS,
)
from .classads import (
    PARSE_ERRORS as PARSE_ERRORS,
)
from .classads import (
    VALUE_TYPES as VALUE_TYPES,
)
from .classads import (
    Ad as Ad,
)
from .classads import (
    check_expression as check_expression,
)
from .classads import (
    check_size as check_size,
)
from .classads import (
    group_key as group_key,
)
from .classads import (
    matches as matches,
)
from .classads import (
    parse_ads as parse_ads,
)
from .classads import (
    project as project,
)
from .classads import (
    quote as quote,
)
from .classads import (
    referenced_attributes as referenced_attributes,
)
from .classads import (
    scrubbed as scrubbed,
)
from .classads import (
    scrubbed_matches as scrubbed_matches,
)
from .classads import (
    skeleton as skeleton,
)
from .classads import (
    unparse as unparse,
)
from .classads import (
    value_of as value_of,
)
from .encoding import (
    REDACTED as REDACTED,
)
from .encoding import (
    Shape as Shape,
)
from .encoding import (
    ad_json as ad_json,
)
from .encoding import (
    encode_rows as encode_rows,
)
from .encoding import (
    job_id as job_id,
)
from .encoding import (
    job_keys as job_keys,
)
from .encoding import (
    job_listing as job_listing,
)
from .encoding import (
    job_record as job_record,
)
from .encoding import (
    job_records as job_records,
)
from .encoding import (
    lower_names as lower_names,
)
from .errors import BadRequest, NotFound, RestdError, Unavailable
from .historyfile import HistoryFile as HistoryFile
from .historyfile import read_page
from .responses import Rows

try:  # htcondor2 first; sites on older bindings fall back to the version 1 module
    import htcondor2 as htcondor

    BINDINGS = "htcondor2"
except ImportError:  # pragma: no cover - exercised only where the old bindings are installed
    import htcondor  # type: ignore[no-redef,unused-ignore]

    BINDINGS = "htcondor"

from . import encoding

HTCONDOR_ERRORS: tuple[type[BaseException], ...] = tuple(
    e for e in (getattr(htcondor, "HTCondorException", None),) if isinstance(e, type))

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


class Condor(Protocol):
    """A pool's ads: what the real bindings (HTCondor), the demo pool and test pools provide.
    `schedd` is a schedd's Name, or None for the default one.

    Every method raises errors.RestdError subclasses only: NotFound for an unknown schedd or
    daemon, BadRequest for a constraint the daemon rejects, Unavailable when a daemon cannot be
    reached. Callers must not modify returned ads. These ads never leave a worker process:
    Encoded turns them into Rows there.
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

    def acting_argv(self) -> list[str]:
        """How the acting child (python -m condor_restd.acting) is started for this pool."""
        return ["--pool", self._pool or ""]

    def _collector(self) -> Any:
        return htcondor.Collector(self._pool)

    def _collector_address(self) -> str:
        return str(self._pool or htcondor.param.get("COLLECTOR_HOST") or "the configured collector")

    def _locate(self, daemon: str, name: str | None) -> Ad:
        key = (daemon, name or "")
        now = time.monotonic()
        with self._lock:
            hit = self._located.get(key)
        if hit and now - hit[0] < self.LOCATE_TTL:
            return hit[1]
        label = f"{daemon.lower()} {name!r}" if name else f"the local {daemon.lower()}"
        with bindings_errors(f"locating {label} (collector {self._collector_address()})"):
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

    def _schedd(self, name: str | None) -> tuple[Any, str]:
        """A handle on the schedd, and how to name it in a message (its name and address)."""
        if name is None and not has_default_schedd(self):
            raise NotFound(NO_LOCAL_SCHEDD)
        location = self._locate("Schedd", name)
        where = f"schedd {name or 'DEFAULT'} at {value_of(location, 'MyAddress') or 'an unknown address'}"
        with bindings_errors(f"contacting {where}"):
            return htcondor.Schedd(location), where

    def jobs(self, schedd: str | None, constraint: str, projection: Sequence[str],
             limit: int) -> Sequence[Ad]:
        handle, where = self._schedd(schedd)
        try:
            with bindings_errors(f"querying {where}"):
                return list(handle.query(constraint=constraint, projection=list(projection),
                                         limit=limit if limit > 0 else -1))
        except Unavailable:
            self._forget("Schedd", schedd)
            raise

    def history(self, schedd: str | None, constraint: str, projection: Sequence[str],
                limit: int, since: str | None = None) -> Sequence[Ad]:
        handle, where = self._schedd(schedd)
        try:
            with bindings_errors(f"reading the history of {where}"):
                # the bindings take a bare cluster id as an int, and "c.p" as a string
                stop: int | str | None = int(since) if since and since.isdigit() else since
                return list(handle.history(constraint, list(projection),
                                           match=limit if limit > 0 else -1, since=stop))
        except Unavailable:
            self._forget("Schedd", schedd)
            raise

    def status(self, ad_type: str, constraint: str, projection: Sequence[str]) -> Sequence[Ad]:
        kind = getattr(htcondor.AdTypes, AD_TYPES[ad_type])
        with bindings_errors(f"querying the collector at {self._collector_address()}"):
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


# ------------------------------------------------------------------------- worker side

class Encoded:
    """What a worker process runs for the front: a Condor source's calls, their ads encoded
    into Rows (bytes and ids) before anything leaves the worker. No ClassAd crosses over."""

    def __init__(self, source: Condor) -> None:
        self.source = source

    def jobs(self, schedd: str | None, constraint: str, projection: Sequence[str], limit: int,
             shape: Shape) -> Rows:
        if shape.where is None:
            return encode_rows(self.source.jobs(schedd, constraint, list(projection), limit), shape)
        ads = self.source.jobs(schedd, constraint, [], 0)  # every job in scope, whole
        return encode_rows(scrubbed_matches(ads, shape.where, shape.hide, limit), shape)

    def history(self, schedd: str | None, constraint: str, projection: Sequence[str], limit: int,
                since: str | None, shape: Shape) -> Rows:
        ask, most = (list(projection), limit) if shape.where is None else ([], 0)
        if since is None:  # sources written before `since` existed take four arguments
            ads = self.source.history(schedd, constraint, ask, most)
        else:
            ads = self.source.history(schedd, constraint, ask, most, since)
        if shape.where is not None:  # every job in scope, whole, filtered here
            ads = scrubbed_matches(ads, shape.where, shape.hide, limit)
        return encode_rows(ads, shape)

    def status(self, ad_type: str, constraint: str, projection: Sequence[str], shape: Shape) -> Rows:
        return encode_rows(self.source.status(ad_type, constraint, list(projection)), shape)

    def config(self, daemon: str | None) -> dict[str, Any]:
        return dict(self.source.config(daemon))

    def config_value(self, daemon: str | None, name: str) -> Any:
        return self.source.config_value(daemon, name)

    def _history_file(self, schedd: str | None) -> HistoryFile | None:
        find = getattr(self.source, "history_file", None)
        if find is None:
            return None
        try:
            found: HistoryFile | None = find(schedd)
        except Exception:  # never worse than the schedd query
            return None
        return found

    def history_file(self, schedd: str | None) -> str | None:
        """Whether this host reads the schedd's history file: its identity (it changes whenever
        a record is added or the files rotate), or None."""
        history = self._history_file(schedd)
        return history.identity() if history is not None else None

    def file_page(self, schedd: str | None, constraint: str, size: int,
                  before: tuple[str, int] | None, since: str | None,
                  shape: Shape) -> tuple[Rows, list[tuple[str, int]], bool]:
        """Up to `size` matching records of the history file before `before`, newest first,
        stopping at the `since` job: their Rows, each one's position, and whether more follow."""
        history = self._history_file(schedd)
        if history is None:
            raise Unavailable("the schedd's history file cannot be read here any more")
        expr = check_expression(constraint)
        where = check_expression(shape.where) if shape.where is not None else None

        def wanted(ad: Ad) -> bool:
            return matches(expr, ad) and (where is None or matches(where, scrubbed(ad, shape.hide)))

        stop = tuple(int(part) for part in since.split(".")) if since else None
        found, more = read_page(history, wanted, size, before, stop)
        return encode_rows([ad for _, ad in found], shape), [pos for pos, _ in found], more


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
    helper = "compiled helper" if encoding._speedups is not None else "no compiled helper: slower encoding"
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
