"""What each endpoint means: constraints, projections, limits, redaction, grouping and result shapes."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Sequence
from typing import Any, Callable, Protocol, TypeVar

from . import condor, hiding, streams
from .auth import Forbidden, Identity, token_required
from .cache import SingleFlight
from .condor import Condor
from .cursors import JOB_ID
from .encoding import IDS, Shape
from .errors import BadRequest, NotFound, RestdError, Timeout, Unavailable
from .knobvalues import ATTRIBUTE_NAME
from .responses import GZIP, Listing, RawJSON, RecordBlock, Rows
from .settings import Settings
from .streams import JOB_ID_ATTRS, Pager
from .workers import Inline, Pool

T = TypeVar("T")

SOURCES = ("jobs", "history")
AD_TYPES = tuple(condor.AD_TYPES)
DAEMONS = tuple(condor.DAEMON_TYPES)
STATUS_ID_ATTRS = ("Name", "MyType")
CONFIG_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
MAX_CONSTRAINT_LENGTH = 8192
MAX_PROJECTION = 256
CACHE_BUDGET = 256 << 20  # characters of answers kept for RESTD_CACHE_TTL, at the most
SLOT_WAIT = 0.25  # seconds a request waits for a busy query pool before a 503

log = logging.getLogger("condor_restd.queries")


def attribute_names(text: str | None, what: str = "projection") -> list[str] | None:
    """Comma-separated attribute names (whitespace ignored), validated; None when not given."""
    if text is None or not text.strip():
        return None
    names = [n.strip() for n in text.split(",")]
    if len(names) > MAX_PROJECTION:
        raise BadRequest(f"{what}: at most {MAX_PROJECTION} attributes, not {len(names)}")
    for name in names:
        check_attribute(name, what)
    return list(dict.fromkeys(names))


def check_attribute(name: str, what: str = "attribute") -> str:
    if not ATTRIBUTE_NAME.match(name):
        raise BadRequest(f"{what}: {name!r} is not a ClassAd attribute name")
    return name


class Observer(Protocol):
    """Told about every upstream query (metrics); `failure` is an error class name or None."""

    def upstream(self, daemon: str, seconds: float, failure: str | None) -> None: ...

    def cache(self, hit: bool) -> None: ...


class _Quiet:
    def upstream(self, daemon: str, seconds: float, failure: str | None) -> None:
        pass

    def cache(self, hit: bool) -> None:
        pass


READY_CACHE_SECONDS = 5.0


class Queries:
    """The API's logic over one Condor backend; knows nothing of HTTP."""

    def __init__(self, settings: Settings, backend: Condor, observer: Observer | None = None,
                 isolate: bool = True) -> None:
        """`isolate`: pool calls run in worker processes (always, in the daemon); False runs
        them in the calling thread, through the same encoding (tests that watch the backend)."""
        self.settings = settings
        self.backend = backend
        self.observer: Observer = observer if observer is not None else _Quiet()
        self.pool: Pool | Inline = Pool(
            backend, workers=settings.query_workers, timeout=settings.query_timeout, wait=SLOT_WAIT,
            max_calls=settings.worker_max_calls, max_growth=settings.worker_max_growth << 20,
        ) if isolate else Inline(backend, workers=settings.query_workers, wait=SLOT_WAIT)
        self.pager = Pager(settings, self._fetch, self._call)
        self._failing: set[str] = set()
        self._ready: tuple[float, dict[str, Any]] | None = None
        self._ready_lock = threading.Lock()
        self._shared: SingleFlight[Any] = SingleFlight(settings.cache_ttl, entries=512,
                                                       budget=CACHE_BUDGET, weigh=_weight)

    def close(self) -> None:
        self.pool.close()

    def drain(self) -> None:
        """A newer configuration serves now: let this one's workers go as their calls end."""
        self.pool.drain()

    # ----------------------------------------------------------------------- plumbing

    def _call(self, daemon: str, method: str, *args: Any) -> Any:
        """One pool call (condor.Encoded's `method`) in a worker, bounded by RESTD_QUERY_TIMEOUT."""
        started = time.perf_counter()
        failure: str | None = None
        try:
            return self.pool.call(method, *args)
        except (Unavailable, Timeout) as exc:
            failure = type(exc).__name__
            self._failed(daemon, exc)
            raise
        except RestdError as exc:
            failure = None if isinstance(exc, BadRequest) else type(exc).__name__
            raise
        except Exception as exc:  # a pool must raise RestdError; anything else is an outage
            failure = "Unavailable"
            log.exception("the %s call %s failed", daemon, method)
            raise Unavailable(f"the {daemon} query failed: {exc}") from None
        finally:
            if failure is None and daemon in self._failing:
                self._failing.discard(daemon)
                log.info("the %s answers again", daemon)
            self.observer.upstream(daemon, time.perf_counter() - started, failure)

    def _failed(self, daemon: str, error: RestdError) -> None:
        """Log an upstream failure with its cause, once per streak of failures."""
        if daemon not in self._failing:
            self._failing.add(daemon)
            log.warning("the %s does not answer: %s", daemon, error.message)

    def _fetch(self, source: str, schedd: str | None, query: str, ask: list[str], limit: int,
               since: str | None, shape: Shape) -> Rows:
        """One job query: the queue or the history of a schedd, encoded by the worker."""
        if source == "jobs":
            rows: Rows = self._call("schedd", "jobs", schedd, query, ask, limit, shape)
        else:
            rows = self._call("schedd", "history", schedd, query, ask, limit, since, shape)
        return rows

    def _cached(self, key: tuple[Any, ...], compute: Callable[[], T]) -> T:
        """One computation for identical concurrent requests; its answer kept RESTD_CACHE_TTL s."""
        value, hit = self._shared.get(key, compute)
        self.observer.cache(hit)
        return value  # type: ignore[no-any-return]

    def _hidden(self, source: str) -> frozenset[str]:
        return self.settings.hide_job_attrs if source in SOURCES else frozenset()

    def _constraint(self, constraint: str | None, hidden: frozenset[str],
                    *clauses: str, scope: Sequence[str] = ()) -> str:
        """The user's constraint, validated and parenthesised, and-ed with our own clauses.

        With `scope` clauses (what the requester may see), the constraint goes in as the ClassAd
        library writes it back, so that nothing in its text can reach outside the parentheses."""
        parts = []
        if constraint is not None and constraint.strip():
            if len(constraint) > MAX_CONSTRAINT_LENGTH:
                raise BadRequest(f"constraint is longer than {MAX_CONSTRAINT_LENGTH} characters")
            condor.check_size(constraint)
            if hidden:
                hiding.refuse_hidden_refs(constraint, hidden)
            parts.append(f"({condor.unparse(constraint) if scope else constraint})")
        parts.extend(clauses)
        parts.extend(scope)
        combined = " && ".join(parts) if parts else "true"
        condor.check_expression(combined)
        return combined

    # ------------------------------------------------------------------------ authorization

    def _authenticated(self, who: Identity | None) -> None:
        """With RESTD_AUTHENTICATION = TOKEN, pool data is for authenticated users only."""
        if who is None and self.settings.authentication == "TOKEN":
            raise token_required()

    def _job_scope(self, who: Identity | None) -> list[str]:
        """The clauses that keep a user to the jobs RESTD_USER_JOB_SCOPE lets them see."""
        self._authenticated(who)
        if who is None or who.admin or self.settings.user_job_scope != "OWN":
            return []
        return [f"User =?= {condor.quote(who.user)}"]

    def _admin_only(self, who: Identity | None, what: str) -> None:
        self._authenticated(who)
        if self.settings.authentication == "TOKEN" and not (who is not None and who.admin):
            raise Forbidden(f"{what} is shown to RESTD_ADMIN_USERS only")

    # -------------------------------------------------------------------------- jobs

    def jobs(self, source: str, schedd: str | None, cluster: int | None = None,
             projection: list[str] | None = None, constraint: str | None = None,
             who: Identity | None = None, limit: int | None = None, cursor: str | None = None,
             since: str | None = None) -> Listing:
        """Jobs in id order, or history newest first; pages when `limit` or `cursor` is given."""
        if source not in SOURCES:
            raise NotFound(f"unknown job source {source!r}")
        hidden = self._hidden(source)
        query, where = self._job_constraint(constraint, hidden, cluster, who)
        if since is not None and (source != "history" or not JOB_ID.fullmatch(since)):
            raise BadRequest("since takes a job id (cluster or cluster.proc), on history only")
        if limit is not None and limit < 1:
            raise BadRequest("limit must be at least 1")
        if since is not None and self._job_scope(who):
            since = self._visible_since(schedd, since, self._job_scope(who))
        pager = self._local_pager(where, hidden)
        names = tuple(projection or ())
        if limit is not None or cursor is not None:
            key = ("page", source, schedd, names, query, where, limit, cursor, since, GZIP.get())
            return self._cached(key, lambda: pager.page(source, schedd, query, projection, hidden,
                                                         limit, cursor, since))
        if not self.settings.max_jobs or self.settings.max_jobs > streams.STREAM_ABOVE:
            if source == "history":
                return pager.history_stream(schedd, query, projection, hidden, since)
            return self._cached(("queue", schedd, names, query, where, GZIP.get()),
                                lambda: pager.queue_stream(schedd, query, projection, hidden))
        whole = ("jobs", source, schedd, names, query, where, since, GZIP.get())
        return self._cached(whole, lambda: pager.whole(source, schedd, query, projection, hidden,
                                                     since))

    def _job_constraint(self, constraint: str | None, hidden: frozenset[str],
                        cluster: int | None, who: Identity | None) -> tuple[str, str | None]:
        """The query a schedd evaluates, and the client's constraint when the worker must
        evaluate it instead: while job attributes are hidden, no schedd evaluates a client's
        expression on real ads (an attribute's expression could compute with a hidden one);
        the worker does, on copies without them (condor.Encoded)."""
        clauses, scope = self._id_clauses(cluster, None), self._job_scope(who)
        if not hidden or constraint is None or not constraint.strip():
            return self._constraint(constraint, hidden, *clauses, scope=scope), None
        where = self._constraint(constraint, hidden)
        if not hiding.names_an_attribute(constraint):  # `false`: the summary's probe of a schedd
            return self._constraint(constraint, hidden, *clauses, scope=scope), None
        return self._constraint(None, hidden, *clauses, scope=scope), where

    def job_ids(self, schedd: str | None, cluster: int | None, proc: int | None,
                constraint: str | None, who: Identity | None) -> list[tuple[int, int]]:
        """The queue's jobs that an action names (a job, a cluster, a constraint), in id order,
        found as a read finds them (hidden attributes and RESTD_USER_JOB_SCOPE apply); never
        from the cache."""
        hidden = self._hidden("jobs")
        query, where = self._job_constraint(constraint, hidden, cluster, who)
        if proc is not None:
            query = f"{query} && ProcId == {proc}"
        return self._local_pager(where, hidden)._queue_ids(schedd, query)

    def forget(self) -> None:
        """Drop every cached answer (after an action: the next read sees what it changed)."""
        self._shared.clear()

    def _visible_since(self, schedd: str | None, since: str, scope: list[str]) -> str | None:
        """`since` when it names a job the requester may see, else None: the history then reads
        on as for a job that does not exist, so that another user's job tells nothing by
        stopping it (nor where it sits)."""
        cluster, _, proc = since.partition(".")
        clauses = [f"ClusterId == {int(cluster)}", *([f"ProcId == {int(proc)}"] if proc else [])]
        found = self._fetch("history", schedd, " && ".join([*clauses, *scope]),
                            list(JOB_ID_ATTRS), 1, None, IDS)
        return since if len(found) else None

    def _local_pager(self, where: str | None, hidden: frozenset[str]) -> Pager:
        """The pager, or one whose every job query carries `where` to the worker."""
        if where is None:
            return self.pager
        return hiding.filtering_pager(self.settings, self._fetch, self._call, where, hidden)

    def _one_job(self, source: str, schedd: str | None, cluster: int, proc: int,
                 ask: list[str], shape: Shape, who: Identity | None) -> bytes:
        query = self._constraint(None, shape.hide, *self._id_clauses(cluster, proc),
                                 scope=self._job_scope(who))
        rows = self._fetch(source, schedd, query, ask, 1, None, shape)
        if not len(rows):
            raise NotFound(f"job {cluster}.{proc} not found in {source} of schedd "
                           f"{schedd or 'DEFAULT'}")
        return rows.records[0]

    def job(self, source: str, schedd: str | None, cluster: int, proc: int,
            projection: list[str] | None = None, who: Identity | None = None) -> bytes:
        if source not in SOURCES:
            raise NotFound(f"unknown job source {source!r}")
        ask, keep = streams.projection(projection, JOB_ID_ATTRS)
        return self._one_job(source, schedd, cluster, proc, ask,
                             Shape(keep=keep, hide=self._hidden(source), ids=False), who)

    def job_attribute(self, source: str, schedd: str | None, cluster: int, proc: int,
                      attribute: str, who: Identity | None = None) -> Any:
        if source not in SOURCES:
            raise NotFound(f"unknown job source {source!r}")
        check_attribute(attribute)
        name = attribute.lower()
        record = self._one_job(source, schedd, cluster, proc, [attribute, *JOB_ID_ATTRS],
                               Shape(keep=frozenset([name]), hide=self._hidden(source), ids=False),
                               who)
        value = json.loads(record)["classad"].get(name)
        if value is None:
            raise NotFound(f"attribute {attribute} of job {cluster}.{proc} is undefined")
        return value

    def grouped_jobs(self, source: str, schedd: str | None, groupby: str,
                     cluster: int | None = None, projection: list[str] | None = None,
                     constraint: str | None = None,
                     who: Identity | None = None) -> Listing:
        if source not in SOURCES:
            raise NotFound(f"unknown job source {source!r}")
        check_attribute(groupby, "groupby")
        hidden = self._hidden(source)
        if groupby.lower() in hidden:
            raise BadRequest(f"cannot group by hidden attribute {groupby!r}")
        query, where = self._job_constraint(constraint, hidden, cluster, who)
        key = ("grouped", source, schedd, groupby.lower(), tuple(projection or ()), query, where)
        return self._cached(key, lambda: self._grouped(source, schedd, groupby, query, projection,
                                                       hidden, where))

    def _grouped(self, source: str, schedd: str | None, groupby: str, query: str,
                 projection: list[str] | None, hidden: frozenset[str],
                 where: str | None = None) -> Listing:
        cap = self.settings.max_jobs
        ask, keep = streams.projection(projection, JOB_ID_ATTRS, (groupby,))
        rows = self._fetch(source, schedd, query, ask, cap + 1 if cap else 0, None,
                           Shape(keep=keep, hide=hidden, group=groupby, sort=source == "jobs",
                                 cap=cap, ids=False, where=where))
        return Listing(_groups(rows), truncated=bool(cap) and rows.count > cap)

    @staticmethod
    def _id_clauses(cluster: int | None, proc: int | None) -> list[str]:
        clauses = []
        if cluster is not None:
            clauses.append(f"ClusterId == {int(cluster)}")
        if proc is not None:
            clauses.append(f"ProcId == {int(proc)}")
        return clauses

    # ------------------------------------------------------------------------ status

    def _status_rows(self, name: str | None, projection: list[str] | None, constraint: str | None,
                     query: str, groupby: str | None = None) -> Rows:
        if query not in condor.AD_TYPES:
            raise BadRequest(f"query must be one of {', '.join(AD_TYPES)}, not {query!r}")
        clauses = [f"Name == {condor.quote(name)}"] if name is not None else []
        expr = self._constraint(constraint, frozenset(), *clauses)
        ask, keep = streams.projection(projection, STATUS_ID_ATTRS, (groupby,) if groupby else ())
        rows: Rows = self._call("collector", "status", query, expr, ask,
                                Shape(records="status", keep=keep, group=groupby, sort=True))
        return rows

    def status(self, name: str | None = None, projection: list[str] | None = None,
               constraint: str | None = None, query: str = "any",
               who: Identity | None = None) -> list[RawJSON]:
        self._authenticated(who)

        def compute() -> list[RawJSON]:
            rows = self._status_rows(name, projection, constraint, query)
            return [RawJSON(record.decode("utf-8")) for record in rows.records]
        return self._cached(("status", name, tuple(projection or ()), constraint, query), compute)

    def grouped_status(self, groupby: str, name: str | None = None,
                       projection: list[str] | None = None, constraint: str | None = None,
                       query: str = "any", who: Identity | None = None) -> dict[str, list[RawJSON]]:
        self._authenticated(who)
        check_attribute(groupby, "groupby")

        def compute() -> dict[str, list[RawJSON]]:
            rows = self._status_rows(name, projection, constraint, query, groupby)
            return {key: [RawJSON(r.decode("utf-8")) for r in records]
                    for key, records in _groups(rows).items()}
        return self._cached(("grouped_status", groupby.lower(), name, tuple(projection or ()),
                             constraint, query), compute)

    # ------------------------------------------------------------------------ config

    def config(self, attribute: str | None = None, daemon: str | None = None,
               who: Identity | None = None) -> Any:
        self._admin_only(who, "the configuration")  # paths, host names, security settings
        if daemon is not None and daemon not in condor.DAEMON_TYPES:
            raise BadRequest(f"daemon must be one of {', '.join(DAEMONS)}, not {daemon!r}")
        if attribute is None:
            return self._cached(("config", daemon), lambda: {  # names in lower case, as v1 had
                str(k).lower(): v
                for k, v in self._call(daemon or "config", "config", daemon).items()})
        if not CONFIG_NAME.match(attribute):
            raise BadRequest(f"{attribute!r} is not a configuration knob name")
        return self._cached(("config", daemon, attribute.upper()), lambda: self._call(
            daemon or "config", "config_value", daemon, attribute))

    # ------------------------------------------------------------------- pool overview

    def readiness(self) -> dict[str, Any]:
        """Whether the collector and the default schedd (where this host has one) answer; cached
        briefly so probes cannot hammer the pool. Raises Unavailable naming what is down."""
        with self._ready_lock:
            now = time.monotonic()
            if self._ready is None or now - self._ready[0] > READY_CACHE_SECONDS:
                checks = {"collector": self._probe("collector", "status", "schedd", "false",
                                                   ["Name"], IDS)}
                if condor.has_default_schedd(self.backend):  # not on a central manager
                    checks["schedd"] = self._probe("schedd", "jobs", None, "false",
                                                   ["ClusterId"], 1, IDS)
                self._ready = (now, checks)
            checks = self._ready[1]
        down = sorted(name for name, check in checks.items() if check != "ok")
        if down:
            raise Unavailable(f"not ready: {' and '.join(down)} not reachable", checks=checks)
        return {"status": "ready", "checks": checks}

    def _probe(self, daemon: str, method: str, *args: Any) -> str:
        try:
            self._call(daemon, method, *args)
        except RestdError as exc:
            return exc.message
        return "ok"

    def summary(self, who: Identity | None = None) -> dict[str, Any]:
        """The pool overview of /v1/summary, counted from collector ads (overview.py)."""
        from .overview import Overview  # builds on this class: imported when first used
        return Overview(self).summary(who)




def _groups(rows: Rows) -> dict[str, list[bytes]]:
    """The records of `rows` under their group keys, in order; those without a key left out."""
    groups: dict[str, list[bytes]] = {}
    for key, record in zip(rows.groups, rows.records):
        if key is not None:
            groups.setdefault(key, []).append(record)
    return groups


def _weight(value: Any) -> int:
    """Roughly how many characters an answer holds, for the cache's budget."""
    if isinstance(value, Listing):
        if isinstance(value.records, RecordBlock):
            packed = value.records.packed
            return len(value.records.body) + (len(packed.data) if packed is not None else 0)
        if value.stream:
            return 4096
        return sum(map(len, value.records))
    if isinstance(value, dict):
        return sum(_weight(v) for v in value.values()) + 64
    if isinstance(value, (list, tuple)):
        return sum(len(v) if isinstance(v, (str, bytes)) else 64 for v in value)
    return len(value) if isinstance(value, str) else 64
