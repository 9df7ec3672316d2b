"""A schedd's history files, read straight from disk newest record first, a page at a time."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, Callable

from .classads import PARSE_ERRORS, Ad, parse_ads, value_of
from .errors import BadRequest

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


CURSOR_REFUSED = "cursor is not one this daemon gave out for this URL; start again without it"
BANNER_MOST = 512  # bytes a banner line ("*** Offset = ... ClusterId = ...") takes at the most
RECORD_MOST = 16 << 20  # bytes of one record, at the most, read to check a cursor


def check_position(history: HistoryFile, before: tuple[str, int],
                   wanted: Callable[[Ad], bool] = lambda ad: True) -> None:
    """Refuse (BadRequest, one message for every case) a position that no page of this query
    could have ended at: past the end of its file, not at the start of a record, or at a record
    the query does not match (a job of another user: whether it is there, and where, is not
    told). Reading back from any of these would scan bytes that are not there, parse half a
    record, or tell what the requester may not see."""
    name, offset = before
    if name not in history.files():
        return  # rotated away since the cursor was given out: an empty page, as for any old cursor
    path = os.path.join(os.path.dirname(history.path), name)
    refused = BadRequest(CURSOR_REFUSED)
    try:
        with open(path, "rb") as file:
            size = file.seek(0, os.SEEK_END)
            if offset >= size:
                raise refused  # a page ends at a record, which has bytes after it
            if offset > 0:
                file.seek(max(0, offset - BANNER_MOST))
                tail = file.read(offset - max(0, offset - BANNER_MOST))
                line_start = tail.rfind(b"\n", 0, len(tail) - 1) + 1
                if not tail.endswith(b"\n") or not tail.startswith(BANNER[1:], line_start):
                    raise refused
            file.seek(offset)
            text, end = b"", -1
            while end < 0 and len(text) < RECORD_MOST:
                block = file.read(READ_BLOCK)
                if not block:
                    break
                end = (text[-len(BANNER):] + block).find(BANNER)
                end += len(text) - len(text[-len(BANNER):]) if end >= 0 else 0
                text += block
    except FileNotFoundError:
        return
    if end < 0:
        raise refused
    try:
        ads = parse_ads(text[:end + 1].decode("utf-8", "replace"))
    except PARSE_ERRORS:
        raise refused from None
    if not ads or not wanted(ads[0]):
        raise refused


def read_page(history: HistoryFile, matches: Callable[[Ad], bool], size: int,
              before: tuple[str, int] | None = None,
              stop: tuple[int, ...] | None = None) -> tuple[list[tuple[tuple[str, int], Ad]], bool]:
    """Up to `size` matching records before `before` (or from the newest), newest first, ending
    at the job `stop` names (cluster, or cluster and proc); and whether more follow. `before`
    must be a record that `matches` (check_position)."""
    if before is not None:
        check_position(history, before, matches)
    picked: list[tuple[tuple[str, int], Ad]] = []
    for position, ad in history.records(before):
        if stop is not None and _job_key(ad)[:len(stop)] == stop:
            break
        if matches(ad):
            if len(picked) == size:
                return picked, True
            picked.append((position, ad))
    return picked, False


def _job_key(ad: Ad) -> tuple[int, int]:
    cluster, proc = value_of(ad, "ClusterId"), value_of(ad, "ProcId")
    return (cluster if isinstance(cluster, int) else -1, proc if isinstance(proc, int) else -1)
