"""What each endpoint means: constraints, projections, limits, redaction, grouping and result shapes."""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import json
import re
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Callable, Protocol, TypeVar

from . import condor
from .auth import Forbidden, Identity, token_required
from .cache import SingleFlight
from .condor import Ad, Condor
from .errors import BadRequest, NotFound, RestdError, Timeout, Unavailable
from .render import Listing, RawJSON, RecordBlock
from .settings import ATTRIBUTE_NAME, Settings

T = TypeVar("T")

SOURCES = ("jobs", "history")
AD_TYPES = tuple(condor.AD_TYPES)
DAEMONS = tuple(condor.DAEMON_TYPES)
JOB_ID_ATTRS = ("ClusterId", "ProcId")
STATUS_ID_ATTRS = ("Name", "MyType")
# ClassAd functions that turn a string into an attribute reference or expression at run time.
INDIRECT_FUNCTIONS = ("eval",)
CONFIG_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
MAX_CONSTRAINT_LENGTH = 8192
MAX_PROJECTION = 256
# References that reach a whole ad (MY["Env" + "ironment"]) or build a name at run time (eval):
# with hidden attributes, a constraint may use none of them.
WHOLE_AD_REFS = frozenset({"", "my", "target", "parent", "super"})
JOB_ID = re.compile(r"[0-9]{1,10}(\.[0-9]{1,10})?")
MAX_CURSOR_LENGTH = 256
CACHE_BUDGET = 256 << 20  # characters of answers kept for RESTD_CACHE_TTL, at the most
SLOT_WAIT = 0.25  # seconds a request waits for a busy query pool before a 503


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
JOB_STATUS = {1: "idle", 2: "running", 3: "removed", 4: "completed", 5: "held",
              6: "transferring_output", 7: "suspended"}


class Queries:
    """The API's logic over one Condor backend; knows nothing of HTTP."""

    def __init__(self, settings: Settings, backend: Condor, observer: Observer | None = None) -> None:
        self.settings = settings
        self.backend = backend
        self.observer: Observer = observer if observer is not None else _Quiet()
        self._executor = ThreadPoolExecutor(settings.query_workers, "restd-query")
        self._slots = threading.BoundedSemaphore(settings.query_workers)
        self._ready: tuple[float, dict[str, Any]] | None = None
        self._ready_lock = threading.Lock()
        self._shared: SingleFlight[Any] = SingleFlight(settings.cache_ttl, entries=512,
                                                       budget=CACHE_BUDGET, weigh=_weight)

    def close(self) -> None:
        self._executor.shutdown(wait=False)

    # ----------------------------------------------------------------------- plumbing

    def _call(self, daemon: str, fn: Callable[..., T], *args: Any) -> T:
        """Run one backend call in the query pool, bounded by RESTD_QUERY_TIMEOUT."""
        timeout = self.settings.query_timeout
        if not self._slots.acquire(timeout=min(SLOT_WAIT, timeout)):
            raise Unavailable("every query worker is busy; try again shortly", retry_after=2)
        started = time.perf_counter()
        try:
            future = self._executor.submit(fn, *args)
        except RuntimeError:
            self._slots.release()
            raise Unavailable("the daemon is shutting down", retry_after=10) from None
        future.add_done_callback(lambda _: self._slots.release())
        failure: str | None = None
        try:
            return future.result(timeout=timeout)
        except FutureTimeout:
            failure = "Timeout"
            raise Timeout(f"the {daemon} query took longer than {timeout:g} s "
                          "(RESTD_QUERY_TIMEOUT)") from None
        except RestdError as exc:
            failure = type(exc).__name__
            raise
        except Exception as exc:  # a backend must raise RestdError; anything else is an outage
            failure = "Unavailable"
            raise Unavailable(f"the {daemon} query failed: {exc}") from None
        finally:
            self.observer.upstream(daemon, time.perf_counter() - started, failure)

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
            refs = condor.referenced_attributes(constraint)
            if hidden:
                self._refuse_hidden_refs(constraint, refs, hidden)
            parts.append(f"({condor.unparse(constraint) if scope else constraint})")
        parts.extend(clauses)
        parts.extend(scope)
        combined = " && ".join(parts) if parts else "true"
        condor.check_expression(combined)
        return combined

    @staticmethod
    def _refuse_hidden_refs(constraint: str, refs: Sequence[str],
                            hidden: frozenset[str]) -> None:
        for ref in refs:
            name = ref.rsplit(".", 1)[-1].strip("'").lower()
            if name in hidden:
                raise BadRequest(f"constraint refers to hidden attribute {ref!r}")
            if name in WHOLE_AD_REFS:
                raise BadRequest("constraint may not use eval() or refer to a whole ad "
                                 f"({ref or 'eval'}) while job attributes are hidden")
        normalized = re.sub(r"\s+", "", condor.unparse(constraint)).lower()
        for function in INDIRECT_FUNCTIONS:
            if function + "(" in normalized:
                raise BadRequest(f"constraint may not call {function}() while job "
                                 "attributes are hidden")

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

    def _job_ads(self, source: str, schedd: str | None, constraint: str,
                 projection: Sequence[str], limit: int | None = None,
                 since: str | None = None) -> Sequence[Ad]:
        if source not in SOURCES:
            raise NotFound(f"unknown job source {source!r}")
        limit = self.settings.max_jobs if limit is None else limit
        ads: Sequence[Ad]
        if source == "jobs":
            ads = self._call("schedd", self.backend.jobs, schedd, constraint, list(projection), limit)
        elif since is None:
            ads = self._call("schedd", self.backend.history, schedd, constraint, list(projection),
                             limit)
        else:
            ads = self._call("schedd", self.backend.history, schedd, constraint, list(projection),
                             limit, since)
        return ads

    @staticmethod
    def _job_record(ad: Ad, keep: frozenset[str] | None, hidden: frozenset[str]) -> bytes:
        """{"jobid": ..., "classad": ...} as JSON in UTF-8 (the renderer writes it as it is)."""
        return condor.job_record(ad, keep, hidden)[1]

    @staticmethod
    def _projection(names: list[str] | None, required: Sequence[str],
                    shown: Sequence[str] = ()) -> tuple[list[str], frozenset[str] | None]:
        """What to ask the daemon for, and which (lowercase) names the client sees."""
        if names is None:
            return [], None
        ask = list(dict.fromkeys([*names, *shown, *required]))
        return ask, frozenset(n.lower() for n in (*names, *shown))

    def jobs(self, source: str, schedd: str | None, cluster: int | None = None,
             projection: list[str] | None = None, constraint: str | None = None,
             who: Identity | None = None, limit: int | None = None, cursor: str | None = None,
             since: str | None = None) -> Listing:
        """Jobs in id order, or history newest first; pages when `limit` or `cursor` is given."""
        hidden = self._hidden(source)
        query = self._constraint(constraint, hidden, *self._id_clauses(cluster, None),
                                 scope=self._job_scope(who))
        if since is not None and (source != "history" or not JOB_ID.fullmatch(since)):
            raise BadRequest("since takes a job id (cluster or cluster.proc), on history only")
        if limit is not None and limit < 1:
            raise BadRequest("limit must be at least 1")
        position = _decode_cursor(cursor, source) if cursor is not None else None
        if limit is None and position is None and (
                not self.settings.max_jobs or self.settings.max_jobs > STREAM_ABOVE):
            if source == "history":
                return self._history_stream(schedd, query, projection, hidden, since)
            return self._cached(("queue", schedd, tuple(projection or ()), query),
                                lambda: self._queue_stream(schedd, query, projection, hidden))
        key = ("jobs", source, schedd, tuple(projection or ()), query, limit, cursor, since)
        return self._cached(key, lambda: self._listing(source, schedd, query, projection, hidden,
                                                       limit, position, since))

    def _listing(self, source: str, schedd: str | None, query: str, projection: list[str] | None,
                 hidden: frozenset[str], limit: int | None, position: dict[str, Any] | None,
                 since: str | None) -> Listing:
        cap = self.settings.max_jobs
        if limit is None and position is None:  # a v1 request: everything, up to the cap
            ask, keep = self._projection(projection, JOB_ID_ATTRS)
            ads = self._job_ads(source, schedd, query, ask, cap + 1 if cap else 0, since)
            truncated = bool(cap) and len(ads) > cap
            return Listing(self._records(ads, keep, hidden, sort=source == "jobs", cap=cap),
                           truncated=truncated)
        size = min(limit or cap or DEFAULT_PAGE, cap or MAX_PAGE)
        if source == "jobs":
            return self._queue_page(schedd, query, projection, hidden, size, position)
        history = self._history_file(schedd)
        if history is not None and (position is None or "f" in position):
            return self._file_page(history, query, projection, hidden, size, position, since)
        return self._history_page(schedd, query, projection, hidden, size, position, since)

    def _history_file(self, schedd: str | None) -> condor.HistoryFile | None:
        """The schedd's history file when the backend can read it locally, else None."""
        find = getattr(self.backend, "history_file", None)
        if find is None:
            return None
        try:
            history: condor.HistoryFile | None = find(schedd)
        except Exception:  # never worse than the schedd query
            return None
        return history

    def _file_records(self, history: condor.HistoryFile, query: str, since: str | None,
                      before: tuple[str, int] | None = None) -> Iterator[tuple[tuple[str, int], Ad]]:
        """Matching records of a history file, newest first, stopping at the `since` job."""
        expr = condor.check_expression(query)
        stop = tuple(int(part) for part in since.split(".")) if since else None
        for position, ad in history.records(before):
            if stop is not None and _job_sort_key(ad)[:len(stop)] == stop:
                return
            if condor.matches(expr, ad):
                yield position, ad

    def _file_page(self, history: condor.HistoryFile, query: str, projection: list[str] | None,
                   hidden: frozenset[str], size: int, position: dict[str, Any] | None,
                   since: str | None) -> Listing:
        """A page read straight from the history file: the cursor is the byte offset of the
        last record served, so a deep page costs what a first page does."""
        before = (position["f"], position["o"]) if position is not None else None
        picked = []
        for found in self._file_records(history, query, since, before):
            picked.append(found)
            if len(picked) > size:
                break
        page = picked[:size]
        keep = self._projection(projection, JOB_ID_ATTRS)[1]
        records = [self._job_record(ad, keep, hidden) for _, ad in page]
        if len(picked) <= size:
            return Listing(records)
        (name, offset), _ = page[-1]
        return Listing(records, next_page=_next_page({"f": name, "o": offset}, "history", size))

    def _history_stream(self, schedd: str | None, query: str, projection: list[str] | None,
                        hidden: frozenset[str], since: str | None) -> Listing:
        """All of a big history, fetched in batches and sent as they come, so that memory holds
        one batch (and the ids, as small ads while they arrive), not the result.

        A first small query (ids only) finds whether RESTD_MAX_JOBS cuts the result short, and
        gives the answer its ETag: history records never change once written, so the same ids
        mean the same answer (with no cap, the newest match and the newest record of all). A
        first batch of STREAM_FIRST_BATCH, fetched as a page is, gives a quick first byte; then
        the ids of the rest come in one query, and each later batch (up to RESTD_STREAM_BATCH) in
        one query for its clusters that stops at the record after it."""
        cap = self.settings.max_jobs
        history = self._history_file(schedd)
        if history is not None:
            return self._file_stream(history, query, projection, hidden, since)
        probe = self._job_ads("history", schedd, query, ["GlobalJobId", *JOB_ID_ATTRS],
                              cap + 1 if cap else 1, since)
        truncated = bool(cap) and len(probe) > cap
        fingerprint = hashlib.blake2b(repr((query, projection, sorted(hidden), cap, since)).encode(),
                                      digest_size=16)
        if not cap and query != "true":
            # the probe saw the newest match alone; the oldest records go when the schedd rotates
            # its history, which it does only as it writes a record: the newest of all
            probe = [*probe, *self._job_ads("history", schedd, "true", ["GlobalJobId"], 1, None)]
        for ad in probe[:cap or None]:
            fingerprint.update(str(condor.value_of(ad, "GlobalJobId")).encode())

        def records() -> Iterator[bytes]:
            # a small first batch, fetched as a page is, for a quick first byte
            most = self.settings.stream_batch
            page = self._history_page(schedd, query, projection, hidden,
                                      min(STREAM_FIRST_BATCH, most, cap or most), None, since)
            yield from page.records
            served = len(page.records)
            if not page.next_page or (cap and served >= cap):
                return
            # then the ids of the rest, once (small ads), and each batch by its window alone
            anchor = _decode_cursor(page.next_page["cursor"], "history")["a"]
            newer = len(self._job_ads("history", schedd, query, list(JOB_ID_ATTRS), 0, anchor))
            ids = condor.job_keys(self._job_ads("history", schedd, query, list(JOB_ID_ATTRS),
                                                newer + cap + 1 if cap else 0, since))
            if ids[newer:newer + 1] != [tuple(int(x) for x in anchor.split("."))]:
                raise Unavailable("the schedd's history changed under a stream; try again")
            del ids[:newer + served]
            del ids[cap - served if cap else len(ids):]
            ask, keep = self._projection(projection, JOB_ID_ATTRS)
            batch = min(2 * STREAM_FIRST_BATCH, most)
            while ids:
                wanted, rest = ids[:batch], ids[batch:batch + 1]
                stop = "%s.%s" % rest[0] if rest else since
                yield from self._history_window(schedd, query, ask, keep, hidden, wanted, stop)
                del ids[:batch]
                batch = min(2 * batch, most)

        return Listing(records(), truncated=truncated, stream_tag=f'W/"{fingerprint.hexdigest()}"')

    def _file_stream(self, history: condor.HistoryFile, query: str, projection: list[str] | None,
                     hidden: frozenset[str], since: str | None) -> Listing:
        """A whole history straight from the file, one record at a time: memory holds a record,
        and the file is read once (twice up to the cap, when RESTD_MAX_JOBS may cut it)."""
        cap = self.settings.max_jobs
        truncated = bool(cap) and sum(1 for _ in itertools.islice(
            self._file_records(history, query, since), cap + 1)) > cap
        keep = self._projection(projection, JOB_ID_ATTRS)[1]
        tag = hashlib.blake2b(repr((query, projection, sorted(hidden), cap, since,
                                    history.identity())).encode(), digest_size=16).hexdigest()

        def records() -> Iterator[bytes]:
            for _, ad in itertools.islice(self._file_records(history, query, since), cap or None):
                yield self._job_record(ad, keep, hidden)

        return Listing(records(), truncated=truncated, stream_tag=f'W/"{tag}"')

    def _queue_stream(self, schedd: str | None, query: str, projection: list[str] | None,
                      hidden: frozenset[str]) -> Listing:
        """The queue with no cap, or a cap above STREAM_ABOVE: the matching ids first (small
        ads). Up to STREAM_ABOVE jobs then come in one query; more come RESTD_STREAM_BATCH at a time
        by id window, and the answer is spooled as it is encoded (see render), so memory holds
        one batch. Queue ads change, so unlike history the ids cannot stand for the answer: the
        spool gives it a true ETag, and a failure half-way still gets an error status."""
        cap = self.settings.max_jobs
        ids = self._queue_ids(schedd, query)
        truncated = bool(cap) and len(ids) > cap
        del ids[cap or len(ids):]
        if not ids:
            return Listing([], truncated=truncated)
        ask, keep = self._projection(projection, JOB_ID_ATTRS)
        if len(ids) <= STREAM_ABOVE:
            ads = self._queue_window(schedd, query, ask, ids[0], ids[-1])
            return Listing(self._records(ads, keep, hidden, sort=True), truncated=truncated)
        return Listing(_Windows(self, schedd, query, ask, keep, hidden, ids), truncated=truncated,
                       spool=True)

    @staticmethod
    def _records(ads: Sequence[Ad], keep: frozenset[str] | None, hidden: frozenset[str],
                 sort: bool, cap: int = 0) -> RecordBlock | list[bytes]:
        """The job records of `ads` (in id order with `sort`; the first `cap` when cap > 0)."""
        if keep is None and not hidden:
            block = condor.job_listing(ads, sort, cap)
            if block is not None:
                return RecordBlock(*block)
        entries = condor.job_records(ads, keep, hidden)
        if sort:
            entries.sort(key=_first)
        return [record for _, record in entries[:cap or None]]

    def _queue_page(self, schedd: str | None, query: str, projection: list[str] | None,
                    hidden: frozenset[str], size: int, position: dict[str, Any] | None) -> Listing:
        """A page of the queue in job-id order: the matching ids first (small), then the page."""
        if position is not None:
            c, p = position["after"]
            query = f"{query} && (ClusterId > {c} || (ClusterId == {c} && ProcId > {p}))"
        ids = self._queue_ids(schedd, query)
        page = ids[:size]
        if not page:
            return Listing([])
        ask, keep = self._projection(projection, JOB_ID_ATTRS)
        ads = self._queue_window(schedd, query, ask, page[0], page[-1])
        more = len(ids) > size
        return Listing(self._records(ads, keep, hidden, sort=True),
                       next_page=_next_page({"after": list(page[-1])}, "jobs", size) if more else None)

    def _queue_ids(self, schedd: str | None, query: str) -> list[tuple[int, int]]:
        """The ids of the matching jobs, in order: one query for the ids alone (small ads)."""
        return sorted(condor.job_keys(self._job_ads("jobs", schedd, query, list(JOB_ID_ATTRS), 0,
                                                    None)))

    def _queue_window(self, schedd: str | None, query: str, ask: list[str],
                      first: tuple[int, int], last: tuple[int, int]) -> Sequence[Ad]:
        """The matching jobs whose ids run from `first` to `last` (both included), in any order."""
        return self._job_ads("jobs", schedd, f"{query} && {_id_window(first, last)}", ask, 0, None)

    def _history_page(self, schedd: str | None, query: str, projection: list[str] | None,
                      hidden: frozenset[str], size: int, position: dict[str, Any] | None,
                      since: str | None) -> Listing:
        """A page of history, newest first, from a cursor (anchor, n): the newest matching job
        when the walk began, and how many records have been served since.

        The file's order is the only order history has, so the page is found by counting, on
        ids alone (small ads): the records written since the anchor (since=anchor), plus n,
        are passed over. The page's full ads then come from one query for its clusters that
        stops (since=) at the record after the page."""
        skip, anchor, served = 0, None, 0
        if position is not None:
            anchor, served = position["a"], position["n"]
            skip = served + len(self._job_ads("history", schedd, query, list(JOB_ID_ATTRS), 0,
                                              anchor))
        ids = condor.job_keys(self._job_ads("history", schedd, query, list(JOB_ID_ATTRS),
                                            skip + size + 1, since))
        if anchor is None and ids:
            anchor = "%s.%s" % ids[0]
        wanted = ids[skip:skip + size]
        more = len(ids) > skip + size
        ask, keep = self._projection(projection, JOB_ID_ATTRS)
        stop = "%s.%s" % ids[skip + size] if more else since
        records = self._history_window(schedd, query, ask, keep, hidden, wanted, stop)
        if not more or anchor is None:
            return Listing(records)
        return Listing(records, next_page=_next_page({"a": anchor, "n": served + len(wanted)},
                                                     "history", size))

    def _history_window(self, schedd: str | None, query: str, ask: list[str],
                        keep: frozenset[str] | None, hidden: frozenset[str],
                        wanted: list[tuple[int, int]], stop: str | None) -> list[bytes]:
        """The records of the `wanted` jobs, in that order: one query for their clusters that
        stops (since=) at `stop`, the record after them."""
        if not wanted:
            return []
        clusters = [c for c, _ in wanted]
        window = f"{query} && ClusterId >= {min(clusters)} && ClusterId <= {max(clusters)}"
        found = dict(condor.job_records(self._job_ads("history", schedd, window, ask, 0, stop),
                                        keep, hidden))
        return [found[job] for job in wanted if job in found]

    def job(self, source: str, schedd: str | None, cluster: int, proc: int,
            projection: list[str] | None = None, who: Identity | None = None) -> bytes:
        hidden = self._hidden(source)
        ask, keep = self._projection(projection, JOB_ID_ATTRS)
        query = self._constraint(None, hidden, *self._id_clauses(cluster, proc),
                                 scope=self._job_scope(who))
        ads = self._job_ads(source, schedd, query, ask)
        if not ads:
            raise NotFound(f"job {cluster}.{proc} not found in {source} of schedd "
                           f"{schedd or 'DEFAULT'}")
        return self._job_record(ads[0], keep, hidden)

    def job_attribute(self, source: str, schedd: str | None, cluster: int, proc: int,
                      attribute: str, who: Identity | None = None) -> Any:
        check_attribute(attribute)
        hidden = self._hidden(source)
        query = self._constraint(None, hidden, *self._id_clauses(cluster, proc),
                                 scope=self._job_scope(who))
        ads = self._job_ads(source, schedd, query, [attribute, *JOB_ID_ATTRS])
        if not ads:
            raise NotFound(f"job {cluster}.{proc} not found in {source} of schedd "
                           f"{schedd or 'DEFAULT'}")
        name = attribute.lower()
        value = json.loads(condor.ad_json(ads[0], frozenset([name]), hidden)).get(name)
        if value is None:
            raise NotFound(f"attribute {attribute} of job {cluster}.{proc} is undefined")
        return value

    def grouped_jobs(self, source: str, schedd: str | None, groupby: str,
                     cluster: int | None = None, projection: list[str] | None = None,
                     constraint: str | None = None,
                     who: Identity | None = None) -> Listing:
        check_attribute(groupby, "groupby")
        hidden = self._hidden(source)
        if groupby.lower() in hidden:
            raise BadRequest(f"cannot group by hidden attribute {groupby!r}")
        query = self._constraint(constraint, hidden, *self._id_clauses(cluster, None),
                                 scope=self._job_scope(who))
        key = ("grouped", source, schedd, groupby.lower(), tuple(projection or ()), query)
        return self._cached(key, lambda: self._grouped(source, schedd, groupby, query, projection,
                                                       hidden))

    def _grouped(self, source: str, schedd: str | None, groupby: str, query: str,
                 projection: list[str] | None, hidden: frozenset[str]) -> Listing:
        cap = self.settings.max_jobs
        ask, keep = self._projection(projection, JOB_ID_ATTRS, (groupby,))
        ads = self._job_ads(source, schedd, query, ask, cap + 1 if cap else 0)
        truncated = bool(cap) and len(ads) > cap
        if source == "jobs":
            ads = sorted(ads, key=_job_sort_key)
        groups: dict[str, list[bytes]] = {}
        for ad in ads[:cap or None]:
            key = condor.group_key(ad, groupby)
            if key is not None:
                groups.setdefault(key, []).append(self._job_record(ad, keep, hidden))
        return Listing(groups, truncated=truncated)

    @staticmethod
    def _id_clauses(cluster: int | None, proc: int | None) -> list[str]:
        clauses = []
        if cluster is not None:
            clauses.append(f"ClusterId == {int(cluster)}")
        if proc is not None:
            clauses.append(f"ProcId == {int(proc)}")
        return clauses

    # ------------------------------------------------------------------------ status

    def _status_ads(self, name: str | None, projection: list[str] | None, constraint: str | None,
                    query: str, groupby: str | None = None) -> tuple[Sequence[Ad], frozenset[str] | None]:
        if query not in condor.AD_TYPES:
            raise BadRequest(f"query must be one of {', '.join(AD_TYPES)}, not {query!r}")
        clauses = [f"Name == {condor.quote(name)}"] if name is not None else []
        expr = self._constraint(constraint, frozenset(), *clauses)
        ask, keep = self._projection(projection, STATUS_ID_ATTRS, (groupby,) if groupby else ())
        ads = self._call("collector", self.backend.status, query, expr, ask)
        return sorted(ads, key=_status_sort_key), keep

    @staticmethod
    def _status_record(ad: Ad, keep: frozenset[str] | None) -> RawJSON:
        return RawJSON('{"name": %s, "type": %s, "classad": %s}' % (
            json.dumps(condor.value_of(ad, "Name")), json.dumps(condor.value_of(ad, "MyType")),
            condor.ad_json(ad, keep)))

    def status(self, name: str | None = None, projection: list[str] | None = None,
               constraint: str | None = None, query: str = "any",
               who: Identity | None = None) -> list[RawJSON]:
        self._authenticated(who)

        def compute() -> list[RawJSON]:
            ads, keep = self._status_ads(name, projection, constraint, query)
            return [self._status_record(ad, keep) for ad in ads]
        return self._cached(("status", name, tuple(projection or ()), constraint, query), compute)

    def grouped_status(self, groupby: str, name: str | None = None,
                       projection: list[str] | None = None, constraint: str | None = None,
                       query: str = "any", who: Identity | None = None) -> dict[str, list[RawJSON]]:
        self._authenticated(who)
        check_attribute(groupby, "groupby")

        def compute() -> dict[str, list[RawJSON]]:
            ads, keep = self._status_ads(name, projection, constraint, query, groupby)
            groups: dict[str, list[RawJSON]] = {}
            for ad in ads:
                key = condor.group_key(ad, groupby)
                if key is not None:
                    groups.setdefault(key, []).append(self._status_record(ad, keep))
            return groups
        return self._cached(("grouped_status", groupby.lower(), name, tuple(projection or ()),
                             constraint, query), compute)

    # ------------------------------------------------------------------------ config

    def config(self, attribute: str | None = None, daemon: str | None = None,
               who: Identity | None = None) -> Any:
        self._admin_only(who, "the configuration")  # paths, host names, security settings
        if daemon is not None and daemon not in condor.DAEMON_TYPES:
            raise BadRequest(f"daemon must be one of {', '.join(DAEMONS)}, not {daemon!r}")
        if attribute is None:
            return self._cached(("config", daemon), lambda: dict(
                self._call(daemon or "config", self.backend.config, daemon)))
        if not CONFIG_NAME.match(attribute):
            raise BadRequest(f"{attribute!r} is not a configuration knob name")
        return self._cached(("config", daemon, attribute.upper()), lambda: self._call(
            daemon or "config", self.backend.config_value, daemon, attribute))

    # ------------------------------------------------------------------- pool overview

    def readiness(self) -> dict[str, Any]:
        """Whether the collector and the default schedd answer; cached briefly so probes
        cannot hammer the pool. Raises Unavailable naming what is down."""
        with self._ready_lock:
            now = time.monotonic()
            if self._ready is None or now - self._ready[0] > READY_CACHE_SECONDS:
                checks = {"collector": self._probe("collector", self.backend.status, "schedd",
                                                   "false", ["Name"]),
                          "schedd": self._probe("schedd", self.backend.jobs, None, "false",
                                                ["ClusterId"], 1)}
                self._ready = (now, checks)
            checks = self._ready[1]
        down = sorted(name for name, check in checks.items() if check != "ok")
        if down:
            raise Unavailable(f"not ready: {' and '.join(down)} not reachable", checks=checks)
        return {"status": "ready", "checks": checks}

    def _probe(self, daemon: str, fn: Callable[..., Any], *args: Any) -> str:
        try:
            self._call(daemon, fn, *args)
        except RestdError as exc:
            return exc.message
        return "ok"

    def summary(self, who: Identity | None = None) -> dict[str, Any]:
        """The pool overview of /v1/summary, counted from collector ads (overview.py)."""
        from .overview import Overview  # builds on this class: imported when first used
        return Overview(self).summary(who)


def _job_sort_key(ad: Ad) -> tuple[int, int]:
    return condor.job_id(ad)[0]


class _Windows:
    """A big queue's job records, fetched RESTD_STREAM_BATCH jobs at a time by id window each time it
    is iterated (a shared answer is iterated once per request)."""

    def __init__(self, queries: Queries, schedd: str | None, query: str, ask: list[str],
                 keep: frozenset[str] | None, hidden: frozenset[str],
                 ids: list[tuple[int, int]]) -> None:
        self.queries, self.schedd, self.query, self.ask = queries, schedd, query, ask
        self.keep, self.hidden, self.ids = keep, hidden, ids

    def __iter__(self) -> Iterator[bytes | RecordBlock]:
        size = self.queries.settings.stream_batch
        for start in range(0, len(self.ids), size):
            batch = self.ids[start:start + size]
            ads = sorted(self.queries._queue_window(self.schedd, self.query, self.ask, batch[0],
                                                    batch[-1]), key=_job_sort_key)
            # encoded a slice at a time: memory holds the batch's ads and one slice's text
            for part in range(0, len(ads), ENCODE_SLICE):
                records = self.queries._records(ads[part:part + ENCODE_SLICE], self.keep,
                                                self.hidden, sort=False)
                yield from [records] if isinstance(records, RecordBlock) else records  # see render
                del records
            del ads


def _id_window(first: tuple[int, int], last: tuple[int, int]) -> str:
    """A constraint for the job ids from `first` to `last`, both included."""
    (c0, p0), (c1, p1) = first, last
    return (f"(ClusterId > {c0} || (ClusterId == {c0} && ProcId >= {p0})) && "
            f"(ClusterId < {c1} || (ClusterId == {c1} && ProcId <= {p1}))")


def _first(entry: tuple[tuple[int, int], bytes]) -> tuple[int, int]:
    return entry[0]


def _status_sort_key(ad: Ad) -> tuple[str, str]:
    return (str(condor.value_of(ad, "MyType") or ""), str(condor.value_of(ad, "Name") or ""))


STREAM_ABOVE = 20_000  # a history request allowed more records than this (RESTD_MAX_JOBS) streams
STREAM_FIRST_BATCH = 1_000  # records in the first batch of a stream (the first bytes come quickly)
ENCODE_SLICE = 500  # ads of a queue batch encoded at a time while spooling
DEFAULT_PAGE = 1000  # a page's size when neither limit nor RESTD_MAX_JOBS sets one
MAX_PAGE = 100_000


def _weight(value: Any) -> int:
    """Roughly how many characters an answer holds, for the cache's budget."""
    if isinstance(value, Listing):
        if isinstance(value.records, RecordBlock):
            return len(value.records.body)
        if isinstance(value.records, _Windows):
            return 16 * len(value.records.ids)
        return sum(map(len, value.records))
    if isinstance(value, dict):
        return sum(_weight(v) for v in value.values()) + 64
    if isinstance(value, (list, tuple)):
        return sum(len(v) if isinstance(v, str) else 64 for v in value)
    return len(value) if isinstance(value, str) else 64


def _next_page(position: dict[str, Any], source: str, size: int) -> dict[str, str]:
    data = json.dumps({"v": 1, "s": source, **position}, separators=(",", ":")).encode()
    return {"cursor": base64.urlsafe_b64encode(data).decode().rstrip("="), "limit": str(size)}


def _decode_cursor(cursor: str, source: str) -> dict[str, Any]:
    """A cursor this daemon gave out for `source`, or BadRequest."""
    bad = BadRequest("cursor is not one this daemon gave out for this URL; start again without it")
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise bad
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise bad from None
    if not isinstance(data, dict) or data.get("v") != 1 or data.get("s") != source:
        raise bad
    if source == "jobs":
        ints = data.get("after") or []
    elif "f" in data:  # a byte offset in a history file
        ints = [data.get("o")]
        if not isinstance(data["f"], str) or not re.fullmatch(r"[A-Za-z0-9_.\-]{1,200}", data["f"]):
            raise bad
    else:
        ints = [data.get("n")]
        if not isinstance(data.get("a"), str) or not JOB_ID.fullmatch(data["a"]):
            raise bad
    if len(ints) != (2 if source == "jobs" else 1) or not all(
            isinstance(i, int) and not isinstance(i, bool) and 0 <= i < 2**40 for i in ints):
        raise bad
    return data
