"""ClassAd to JSON: HTCondor's printJson() text, names lowercased, records and whole listings as bytes."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import compress
from .classads import Ad, group_key, value_of
from .responses import Rows

_speedups: Any
try:  # the compiled helper (condor_restd/_speedups.c); the same work is done in Python without it
    from . import _speedups
except ImportError:  # pragma: no cover - exercised where the package was installed without a compiler
    _speedups = None

REDACTED = '"<REDACTED>"'

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
    """job_id(ad)[0] for each ad, two lookups an ad and no text (quicker than reading them from
    printJson(), even for small id-only ads: 100k of those took 0.17 s against 0.28 s)."""
    keys = []
    for ad in ads:
        cluster, proc = ad.get("ClusterId"), ad.get("ProcId")
        if type(cluster) is int and type(proc) is int:  # not a bool, nor Undefined (an IntEnum)
            keys.append((cluster, proc))
        else:
            keys.append(job_id(ad)[0])
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


# ---------------------------------------------------------------------------- encoded rows

@dataclass(frozen=True)
class Shape:
    """How a worker encodes a query's ads before they leave it.

    `records`: "job" ({"jobid", "classad"}), "status" ({"name", "type", "classad"}) or "none"
    (ids and group keys only). `keep` (lowercase names) and `hide` as for ad_json(); `group` an
    attribute whose group key comes back with each record; `sort` puts jobs in id order (status
    ads by type and name); `cap` keeps the first that many after sorting (0: all); `ids` whether
    the job ids must come back. `where`: a client's constraint the worker evaluates itself, on
    a copy of each ad without the `hide` attributes (RESTD_HIDE_JOB_ATTRS), so that nothing it
    computes can depend on a hidden value; the source is then asked for every ad the query
    matches, whole, and the limit applies after this filter."""

    records: str = "job"
    keep: frozenset[str] | None = None
    hide: frozenset[str] = frozenset()
    group: str | None = None
    sort: bool = False
    cap: int = 0
    ids: bool = True
    gzip: bool = False  # a big body goes back deflated (compress.segment), for a gzipped answer
    where: str | None = None


IDS = Shape(records="none")


def status_record(ad: Ad, keep: frozenset[str] | None = None) -> bytes:
    """A collector ad's API record, {"name": ..., "type": ..., "classad": ...}, in UTF-8."""
    return ('{"name": %s, "type": %s, "classad": %s}' % (
        _json_text(value_of(ad, "Name")), _json_text(value_of(ad, "MyType")),
        ad_json(ad, keep))).encode("utf-8")


def _json_text(value: Any) -> str:
    return json.dumps(value)


def status_sort_key(ad: Ad) -> tuple[str, str]:
    return (str(value_of(ad, "MyType") or ""), str(value_of(ad, "Name") or ""))


def block(records: Sequence[bytes]) -> tuple[bytes, list[int]]:
    """Records joined into one JSON array, and where each ends in it (as RecordBlock reads it)."""
    if not records:
        return b"[]\n", []
    ends, at = [], 0
    for record in records:
        at += 2 + len(record)  # "[\n" or ",\n", then the record
        ends.append(at)
    return b"[\n" + b",\n".join(records) + b"\n]\n", ends


def encode_rows(ads: Sequence[Ad], shape: Shape) -> Rows:
    """The Rows a worker hands back for `ads`: everything the front needs, nothing it cannot pickle."""
    count = len(ads)
    if shape.records == "status":
        ordered = sorted(ads, key=status_sort_key) if shape.sort else list(ads)
        ordered = ordered[:shape.cap or None]
        body, ends = block([status_record(ad, shape.keep) for ad in ordered])
        return _packed(Rows(count, body, ends, [], _groups(ordered, shape.group)), shape)
    whole = shape.records == "job" and shape.keep is None and not shape.hide
    if whole and not shape.ids and not shape.group:  # the hot path: one pass in the helper
        listing = job_listing(ads, shape.sort, shape.cap)
        if listing is not None:
            return _packed(Rows(count, listing[0], listing[1]), shape)
    keys = job_keys(ads)
    ordered = list(ads)
    if shape.sort:
        order = sorted(range(count), key=keys.__getitem__)
        ordered, keys = [ordered[i] for i in order], [keys[i] for i in order]
    if shape.cap:
        del ordered[shape.cap:], keys[shape.cap:]
    groups = _groups(ordered, shape.group)
    if shape.records == "none":
        return Rows(count, ids=keys, groups=groups)
    listing = job_listing(ordered, False, 0) if whole else None
    if listing is not None:
        body, ends = listing
    else:
        body, ends = block([record for _, record in job_records(ordered, shape.keep, shape.hide)])
    return _packed(Rows(count, body, ends, keys if shape.ids else [], groups), shape)


def _packed(rows: Rows, shape: Shape) -> Rows:
    """With `shape.gzip`, a big body's records deflated in its place (the front frames them)."""
    if shape.gzip and len(rows.body) > compress.ABOVE:
        rows.packed = compress.segment(rows.body[2:-3])
        rows.body = b""
    return rows


def _groups(ads: Sequence[Ad], name: str | None) -> list[str | None]:
    return [group_key(ad, name) for ad in ads] if name else []
