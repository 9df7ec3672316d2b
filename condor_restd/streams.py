"""Pages and big answers: cursors, queue windows in id order, history newest first, streamed in batches."""

from __future__ import annotations

import collections
import hashlib
import heapq
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Protocol, TypeVar

from .cursors import decode_cursor, next_page
from .encoding import IDS, Shape, block
from .errors import BadRequest, RestdError, Unavailable
from .historyfile import CURSOR_REFUSED
from .responses import GZIP, Listing, RecordBlock, Rows
from .settings import Settings

JOB_ID_ATTRS = ("ClusterId", "ProcId")
STREAM_ABOVE = 20_000  # a request allowed more jobs than this (RESTD_MAX_JOBS) streams
STREAM_FIRST_BATCH = 1_000  # records in the first batch of a stream (the first bytes come quickly)
QUEUE_FIRST_WINDOW = 100  # jobs in a streamed queue's first window: its first record comes quickly
DEFAULT_PAGE = 1000  # a page's size when neither limit nor RESTD_MAX_JOBS sets one
MAX_PAGE = 100_000
WINDOW_SHARE = 5  # the windows a history stream holds at once: at most 1/5 of its records
BLOCK_RECORDS = 256  # history records sent as one chunk of the body
HEAD_BATCHES = 4  # RESTD_STREAM_BATCH windows a history stream sends while the ids of the rest come

T = TypeVar("T")
Window = tuple[list[tuple[int, int]], str | None]  # history records' ids, and the record after them


class Fetch(Protocol):
    """One job query in a worker: source, schedd, constraint, projection, limit, since, shape."""

    def __call__(self, source: str, schedd: str | None, query: str, ask: list[str], limit: int,
                 since: str | None, shape: Shape) -> Rows: ...


def projection(names: list[str] | None, required: tuple[str, ...],
               shown: tuple[str, ...] = ()) -> tuple[list[str], frozenset[str] | None]:
    """What to ask the daemon for, and which (lowercase) names the client sees."""
    if names is None:
        return [], None
    ask = list(dict.fromkeys([*names, *shown, *required]))
    return ask, frozenset(n.lower() for n in (*names, *shown))


class Pager:
    """Job lists that are more than one query: pages with cursors, and big answers in batches.

    `fetch` runs one job query in a worker; `call(daemon, method, *args)` any other pool call."""

    def __init__(self, settings: Settings, fetch: Fetch, call: Callable[..., Any],
                 where: str | None = None) -> None:
        """`where`: the client's constraint when `fetch` and `call` carry it to the worker
        apart from the query (hidden job attributes); it goes into the streams' ETags."""
        self.settings = settings
        self.fetch = fetch
        self.call = call
        self.where = where

    # ---------------------------------------------------------------------------- v1 lists

    def whole(self, source: str, schedd: str | None, query: str, names: list[str] | None,
              hidden: frozenset[str], since: str | None) -> Listing:
        """A v1 list: everything, up to RESTD_MAX_JOBS, in one query (jobs in id order)."""
        cap = self.settings.max_jobs
        ask, keep = projection(names, JOB_ID_ATTRS)
        rows = self.fetch(source, schedd, query, ask, cap + 1 if cap else 0, since,
                          Shape(keep=keep, hide=hidden, sort=source == "jobs", cap=cap, ids=False,
                                gzip=GZIP.get()))
        return Listing(rows.records, truncated=bool(cap) and rows.count > cap)

    def page(self, source: str, schedd: str | None, query: str, names: list[str] | None,
             hidden: frozenset[str], limit: int | None, cursor: str | None,
             since: str | None) -> Listing:
        """One page, from the start or from a cursor this daemon gave out."""
        cap = self.settings.max_jobs
        size = min(limit or cap or DEFAULT_PAGE, cap or MAX_PAGE)
        position = decode_cursor(cursor, source) if cursor is not None else None
        if source == "jobs":
            return self._queue_page(schedd, query, names, hidden, size, position)
        # A file cursor holds the byte offset of a record: how long records are, and so how long
        # a hidden value is. While job attributes are hidden, pages come from the schedd.
        if position is not None and "f" in position:
            if hidden or self.call("schedd", "history_file", schedd) is None:
                raise BadRequest(CURSOR_REFUSED)  # a file cursor where no file is read
            return self._file_page(schedd, query, names, hidden, size, position, since)
        if position is None and not hidden and self.call("schedd", "history_file", schedd) is not None:
            return self._file_page(schedd, query, names, hidden, size, None, since)
        return self._history_page(schedd, query, names, hidden, size, position, since)

    # ------------------------------------------------------------------------------ queue

    def queue_stream(self, schedd: str | None, query: str, names: list[str] | None,
                     hidden: frozenset[str]) -> Listing:
        """The queue with no cap, or a cap above STREAM_ABOVE: the matching ids first (small
        ads). Up to STREAM_ABOVE jobs then come in one query; more are streamed, RESTD_STREAM_BATCH
        at a time by id window, so that memory holds one batch. Queue ads change, and nothing
        cheap stands for the whole answer, so a streamed queue carries no ETag.

        The first window is small (QUEUE_FIRST_WINDOW, for a quick first record): its ids are
        picked from the others, which are put in order only once it is out."""
        cap = self.settings.max_jobs
        ids = self._queue_ids(schedd, query, ordered=False)
        truncated = bool(cap) and len(ids) > cap
        if not ids:
            return Listing([], truncated=truncated)
        ask, keep = projection(names, JOB_ID_ATTRS)
        shape = Shape(keep=keep, hide=hidden, sort=True, ids=False, gzip=GZIP.get())
        if min(len(ids), cap or len(ids)) <= STREAM_ABOVE:
            _in_order(ids, cap)
            rows = self._queue_window(schedd, query, ask, ids[0], ids[-1], shape)
            return Listing(rows.records, truncated=truncated)
        # the smallest ids (quick in either order a schedd may send them: newest first too)
        first = heapq.nsmallest(min(QUEUE_FIRST_WINDOW, self.settings.stream_batch),
                                reversed(ids) if ids[0] > ids[-1] else ids)
        early = [self._queue_window(schedd, query, ask, first[0], first[-1], shape)]
        ordering, ordered = threading.Lock(), [False]

        def batches() -> Iterator[RecordBlock]:
            # the small first window (fetched already, the first time), then RESTD_STREAM_BATCH
            # at a time: the ids are put in order once, after the first window is out
            head = early.pop() if early else None
            yield (head or self._queue_window(schedd, query, ask, first[0], first[-1], shape)).records
            with ordering:  # once: a sort empties the list while it runs
                if not ordered[0]:
                    _in_order(ids, cap)
                    ordered[0] = True
            start, size = len(first), self.settings.stream_batch
            while start < len(ids):
                batch = ids[start:start + size]
                yield self._queue_window(schedd, query, ask, batch[0], batch[-1], shape).records
                start += size

        return Listing(_Replayable(batches), truncated=truncated, stream=True)

    def _queue_page(self, schedd: str | None, query: str, names: list[str] | None,
                    hidden: frozenset[str], size: int, position: dict[str, Any] | None) -> Listing:
        """A page of the queue in job-id order: the matching ids first (small), then the page."""
        if position is not None:
            c, p = position["after"]
            query = f"{query} && (ClusterId > {c} || (ClusterId == {c} && ProcId > {p}))"
        ids = self._queue_ids(schedd, query)
        page = ids[:size]
        if not page:
            return Listing([])
        ask, keep = projection(names, JOB_ID_ATTRS)
        rows = self._queue_window(schedd, query, ask, page[0], page[-1],
                                  Shape(keep=keep, hide=hidden, sort=True, ids=False, gzip=GZIP.get()))
        more = len(ids) > size
        return Listing(rows.records,
                       next_page=next_page({"after": list(page[-1])}, "jobs", size) if more else None)

    def _queue_ids(self, schedd: str | None, query: str,
                   ordered: bool = True) -> list[tuple[int, int]]:
        """The ids of the matching jobs (in order with `ordered`): one query for the ids alone
        (small ads)."""
        ids = list(self.fetch("jobs", schedd, query, list(JOB_ID_ATTRS), 0, None, IDS).ids)
        if ordered:
            ids.sort()
        return ids

    def _queue_window(self, schedd: str | None, query: str, ask: list[str],
                      first: tuple[int, int], last: tuple[int, int], shape: Shape) -> Rows:
        """The matching jobs whose ids run from `first` to `last` (both included)."""
        return self.fetch("jobs", schedd, f"{query} && {id_window(first, last)}", ask, 0, None, shape)

    # ---------------------------------------------------------------------- history file

    def _file_page(self, schedd: str | None, query: str, names: list[str] | None,
                   hidden: frozenset[str], size: int, position: dict[str, Any] | None,
                   since: str | None) -> Listing:
        """A page read straight from the history file: the cursor is the byte offset of the
        last record served, so a deep page costs what a first page does."""
        before = (position["f"], position["o"]) if position is not None else None
        keep = projection(names, JOB_ID_ATTRS)[1]
        rows, positions, more = self.call("schedd", "file_page", schedd, query, size, before, since,
                                          Shape(keep=keep, hide=hidden, ids=False, gzip=GZIP.get()))
        if not more or not positions:
            return Listing(rows.records)
        name, offset = positions[-1]
        return Listing(rows.records, next_page=next_page({"f": name, "o": offset}, "history", size))

    def file_stream(self, schedd: str | None, identity: str, query: str,
                    names: list[str] | None, hidden: frozenset[str], since: str | None) -> Listing:
        """A whole history straight from the file, RESTD_STREAM_BATCH records a worker call:
        memory holds a batch, and the file is read once (twice up to the cap, when
        RESTD_MAX_JOBS may cut it)."""
        cap = self.settings.max_jobs
        truncated = False
        if cap:
            truncated = self.call("schedd", "file_page", schedd, query, cap, None, since, IDS)[2]
        keep = projection(names, JOB_ID_ATTRS)[1]
        shape = Shape(keep=keep, hide=hidden, ids=False, gzip=GZIP.get())
        tag = _digest(query, self.where, names, hidden, cap, since, identity)

        def batches() -> Iterator[RecordBlock]:
            before, served = None, 0
            while True:
                size = min(self.settings.stream_batch, cap - served) if cap else self.settings.stream_batch
                if size <= 0:
                    return
                rows, positions, more = self.call("schedd", "file_page", schedd, query, size, before,
                                                  since, shape)
                yield rows.records
                served += len(positions)
                if not more or not positions:
                    return
                before = positions[-1]

        return Listing(batches(), truncated=truncated, stream_tag=f'W/"{tag}"')

    # ------------------------------------------------------------------- history, remote

    def history_stream(self, schedd: str | None, query: str, names: list[str] | None,
                       hidden: frozenset[str], since: str | None) -> Listing:
        """All of a big history, fetched in batches and sent as they come, so that memory holds
        one batch (and the ids, as small ads while they arrive), not the result.

        A first small query (ids only) finds whether RESTD_MAX_JOBS cuts the result short, and
        gives the answer its ETag: history records never change once written, so the same ids
        mean the same answer (with no cap, the newest match and the newest record of all). A
        first batch of STREAM_FIRST_BATCH, fetched as a page is, gives a quick first byte; then
        the ids of the rest come in one query, and each later batch (up to RESTD_STREAM_BATCH) in
        one query for its clusters that stops at the record after it."""
        identity = self.call("schedd", "history_file", schedd)
        if identity is not None:
            return self.file_stream(schedd, identity, query, names, hidden, since)
        cap = self.settings.max_jobs
        marks = Shape(records="none", group="GlobalJobId")
        probe = self.fetch("history", schedd, query, ["GlobalJobId", *JOB_ID_ATTRS],
                           cap + 1 if cap else 1, since, marks)
        truncated = bool(cap) and probe.count > cap
        seen = list(probe.groups)
        if not cap and query != "true":
            # the probe saw the newest match alone; the oldest records go when the schedd rotates
            # its history, which it does only as it writes a record: the newest of all
            seen += self.fetch("history", schedd, "true", ["GlobalJobId"], 1, None, marks).groups
        tag = _digest(query, self.where, names, hidden, cap, since, *map(str, seen[:cap or None]))

        def batches() -> Iterator[Any]:
            most = self.settings.stream_batch
            first = self._history_page(schedd, query, names, hidden,
                                       min(STREAM_FIRST_BATCH, most, cap or most), None, since)
            yield from _blocks(first.records)
            served = len(first.records)
            if not first.next_page or (cap and served >= cap):
                return
            # then the ids of the rest (small ads), and each batch by its window alone
            anchor = decode_cursor(first.next_page["cursor"], "history")["a"]
            newer = self.fetch("history", schedd, query, list(JOB_ID_ATTRS), 0, anchor, IDS).count
            ahead = max(1, self.settings.query_workers // 2)

            def ids_after(limit: int) -> list[tuple[int, int]]:
                found = self.fetch("history", schedd, query, list(JOB_ID_ATTRS), limit, since, IDS).ids
                if found[newer:newer + 1] != [_job(anchor)]:
                    raise Unavailable("the schedd's history changed under a stream; try again")
                del found[:newer + served]
                del found[cap - served if cap else len(found):]
                return found

            whole_limit = newer + cap + 1 if cap else 0
            head = HEAD_BATCHES * most
            if self.settings.query_workers <= ahead or (cap and cap - served <= head):
                windows: Iterable[Window] = self._plan(ids_after(whole_limit), since, ahead)[0]
            else:
                # a worker to spare: the ids of all the rest come in one query (a whole pass
                # over the history) while the next few batches, found by a short one, stream
                whole = _started(ids_after, whole_limit)
                first_ids = ids_after(newer + served + head + 1)
                if len(first_ids) <= head:  # that was all of it
                    windows = self._plan(first_ids, since, ahead)[0]
                else:
                    windows = self._head_then_rest(first_ids, head, whole, since, ahead)
            ask, keep = projection(names, JOB_ID_ATTRS)
            yield from self._windows_ahead(schedd, query, ask, keep, hidden, windows, ahead)

        return Listing(batches(), truncated=truncated, stream_tag=f'W/"{tag}"')

    def _plan(self, ids: list[tuple[int, int]], stop: str | None, ahead: int,
              batch: int = 2 * STREAM_FIRST_BATCH, most: int = 0) -> tuple[list[Window], int]:
        """History windows over `ids` (the record after the last: `stop`), from `batch` records
        doubling up to `most`, and the size the next would have. Each window makes the schedd
        re-read every newer record: for a long history fewer, bigger windows, `ahead` of them
        holding at most a fifth of what one call would (most = 0)."""
        most = most or max(self.settings.stream_batch, -(-len(ids) // (WINDOW_SHARE * ahead)))
        batch = min(batch, most)
        windows = []
        while ids:
            wanted, rest = ids[:batch], ids[batch:batch + 1]
            windows.append((wanted, "%s.%s" % rest[0] if rest else stop))
            del ids[:batch]
            batch = min(2 * batch, most)
        return windows, batch

    def _head_then_rest(self, first_ids: list[tuple[int, int]], head: int,
                        whole: Future[list[tuple[int, int]]], since: str | None,
                        ahead: int) -> Iterator[Window]:
        """The windows of the first `head` ids, then, once their query is in, of all the rest."""
        windows, batch = self._plan(first_ids[:head], "%s.%s" % first_ids[head], ahead,
                                    most=self.settings.stream_batch)
        yield from windows
        rest = whole.result()
        if rest[:head + 1] != first_ids[:head + 1]:
            raise Unavailable("the schedd's history changed under a stream; try again")
        most = max(self.settings.stream_batch, -(-len(rest) // (WINDOW_SHARE * ahead)))
        yield from self._plan(rest[head:], since, ahead, batch, most)[0]

    def _windows_ahead(self, schedd: str | None, query: str, ask: list[str],
                       keep: frozenset[str] | None, hidden: frozenset[str],
                       windows: Iterable[Window], ahead: int) -> Iterator[RecordBlock]:
        """The windows' records in order (in blocks), `ahead` windows fetched at once by as many
        workers: the schedd reads them side by side (each history query is a helper process of
        its own there) while the client takes the one before. A window fetched ahead that failed
        (every worker busy, say) is asked for again when its turn comes."""
        def fetch(window: tuple[list[tuple[int, int]], str | None]) -> list[bytes]:
            return self._history_window(schedd, query, ask, keep, hidden, *window)

        if ahead <= 1:
            for window in windows:
                yield from _blocks(fetch(window))
            return
        pending: collections.deque[tuple[Any, Future[list[bytes]]]] = collections.deque()
        with ThreadPoolExecutor(ahead, thread_name_prefix="restd-ahead") as pool:
            try:
                for window in windows:
                    pending.append((window, pool.submit(fetch, window)))
                    if len(pending) < ahead:
                        continue
                    yield from _blocks(self._taken(pending.popleft(), fetch))
                while pending:
                    yield from _blocks(self._taken(pending.popleft(), fetch))
            finally:
                for _, future in pending:
                    future.cancel()

    @staticmethod
    def _taken(entry: tuple[Any, Future[list[bytes]]],
               fetch: Callable[[Any], list[bytes]]) -> list[bytes]:
        window, future = entry
        try:
            return future.result()
        except RestdError:
            return fetch(window)

    def _history_page(self, schedd: str | None, query: str, names: list[str] | None,
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
            skip = served + self.fetch("history", schedd, query, list(JOB_ID_ATTRS), 0, anchor,
                                       IDS).count
        ids = self.fetch("history", schedd, query, list(JOB_ID_ATTRS), skip + size + 1, since,
                         IDS).ids
        if anchor is not None and ids[skip - served:skip - served + 1] != [_job(anchor)]:
            # the anchor is no record this query matches (gone by rotation, another user's job,
            # another schedd's): all the same, an empty page, which tells nothing of that job
            return Listing([])
        if anchor is None and ids:
            anchor = "%s.%s" % ids[0]
        wanted = ids[skip:skip + size]
        more = len(ids) > skip + size
        ask, keep = projection(names, JOB_ID_ATTRS)
        stop = "%s.%s" % ids[skip + size] if more else since
        records = self._history_window(schedd, query, ask, keep, hidden, wanted, stop)
        if not more or anchor is None:
            return Listing(records)
        return Listing(records, next_page=next_page({"a": anchor, "n": served + len(wanted)},
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
        rows = self.fetch("history", schedd, window, ask, 0, stop, Shape(keep=keep, hide=hidden))
        found = dict(zip(rows.ids, rows.records))
        return [found[job] for job in wanted if job in found]


class _Replayable:
    """An answer's batches, fetched again each time it is iterated (a cached answer is sent
    once per request)."""

    def __init__(self, produce: Callable[[], Iterator[Any]]) -> None:
        self.produce = produce

    def __iter__(self) -> Iterator[Any]:
        return self.produce()


def _blocks(records: list[bytes]) -> Iterator[RecordBlock]:
    """History records in blocks of BLOCK_RECORDS: a chunk of the body each, not one a record."""
    for start in range(0, len(records), BLOCK_RECORDS):
        yield RecordBlock(*block(records[start:start + BLOCK_RECORDS]))


def _in_order(ids: list[tuple[int, int]], cap: int) -> None:
    """Sort the ids and keep the first `cap` (0: all)."""
    ids.sort()
    del ids[cap or len(ids):]


def _started(call: Callable[..., T], *args: Any) -> Future[T]:
    """`call(*args)` running in a thread of its own: its value, or its error, when asked."""
    future: Future[T] = Future()

    def run() -> None:
        try:
            future.set_result(call(*args))
        except BaseException as exc:  # handed to whoever takes the result
            future.set_exception(exc)

    threading.Thread(target=run, name="restd-ids", daemon=True).start()
    return future


def _job(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def id_window(first: tuple[int, int], last: tuple[int, int]) -> str:
    """A constraint for the job ids from `first` to `last`, both included."""
    (c0, p0), (c1, p1) = first, last
    return (f"(ClusterId > {c0} || (ClusterId == {c0} && ProcId >= {p0})) && "
            f"(ClusterId < {c1} || (ClusterId == {c1} && ProcId <= {p1}))")


def _digest(*parts: Any) -> str:
    return hashlib.blake2b(repr(parts).encode(), digest_size=16).hexdigest()
