"""The values that pass between the layers: encoded rows from the pool, and the results handlers return."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from .compress import Segment

# Whether the current request's answer goes out gzipped (the client accepts gzip and it is a
# JSON list): the workers then compress the records they encode.
GZIP: ContextVar[bool] = ContextVar("restd_gzip", default=False)


class RawJSON(str):
    """A fragment that is already JSON text; the encoder writes it as it is. (A `bytes` value
    in a result is such a fragment too, already in UTF-8: job records come that way.)"""


class RecordBlock:
    """A list's whole JSON array, written once (by the compiled helper); its records, JSON in
    UTF-8, are slices of it. Answering in JSON then copies nothing, and the ETag is kept."""

    def __init__(self, body: bytes, ends: Sequence[int], packed: Segment | None = None) -> None:
        self.body = body  # b"[\n" record ",\n" record ... "\n]\n" (empty when packed)
        self.ends = ends  # where each record ends in body
        self.packed = packed  # the records, without brackets, deflated by the worker
        self.etag: str | None = None

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, index: int) -> bytes:
        if not -len(self.ends) <= index < len(self.ends):
            raise IndexError(index)
        index %= len(self.ends)
        start = self.ends[index - 1] + 2 if index else 2
        return self.body[start:self.ends[index]]

    def __iter__(self) -> Iterator[bytes]:
        start = 2
        for end in self.ends:
            yield self.body[start:end]
            start = end + 2


class Listing:
    """A list result: its records, whether RESTD_MAX_JOBS cut it short, and the next page's
    query parameters (announced in a Link header) if there is one."""

    def __init__(self, records: Any, truncated: bool = False,
                 next_page: Mapping[str, str] | None = None, stream_tag: str | None = None,
                 stream: bool = False) -> None:
        self.records = records
        self.truncated = truncated
        self.next_page = next_page
        # A streamed listing: `records` is an iterator, produced while the body is sent; its
        # ETag comes from the daemon (it cannot hash a body it has not produced yet).
        self.stream_tag = stream_tag
        # Streamed with no ETag at all: nothing cheap stands for the whole answer (a big queue).
        self.stream = stream or stream_tag is not None


class Reply:
    """The answer to an action: a JSON object with a status of its own (201, 207, 403, ...) and
    headers (Location); never cached, never compressed."""

    def __init__(self, body: Mapping[str, Any], status: int = 200,
                 headers: Mapping[str, str] | None = None) -> None:
        self.body = dict(body)
        self.status = status
        self.headers = dict(headers or {})


class Page:
    """A finished body in a media type of its own (an HTML page, Prometheus text)."""

    def __init__(self, body: str | bytes, content_type: str) -> None:
        self.body = body.encode("utf-8") if isinstance(body, str) else body
        self.content_type = content_type


@dataclass
class Rows:
    """A pool query's answer as it leaves a worker: encoded records, never ClassAd objects.

    `body` is a JSON array of the records (`b"[\n" rec ",\n" rec ... "\n]\n"`) and `ends` where
    each record ends in it, as a RecordBlock has them. `ids` are the job ids (cluster, proc) of
    the records, `groups` the group key of each record when one was asked for, and `count` how
    many ads the query returned before any cap."""

    count: int
    body: bytes = b"[]\n"
    ends: list[int] = field(default_factory=list)
    ids: list[tuple[int, int]] = field(default_factory=list)
    groups: list[str | None] = field(default_factory=list)
    packed: Segment | None = None  # with a gzipped answer: the records deflated, and no body

    def __len__(self) -> int:
        return max(len(self.ends), len(self.ids))

    @property
    def records(self) -> RecordBlock:
        return RecordBlock(self.body, self.ends, self.packed)
