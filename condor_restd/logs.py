"""The daemon log: HTCondor's daemon log format, written to RESTD_LOG and rotated at MAX_RESTD_LOG."""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import TextIO

from .settings import Settings

TIME_FORMAT = "%m/%d/%y %H:%M:%S"  # HTCondor's default DEBUG_TIME_FORMAT
ROTATED_STAMP = "%Y%m%dT%H%M%S"  # the suffix HTCondor gives rotated logs when it keeps several
# The loggers that end up in the daemon log: ours, and CherryPy's access and error logs.
LOGGERS = ("condor_restd", "cherrypy.access", "cherrypy.error")
_CHERRYPY_TIME = re.compile(r"^\[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d\]\s+")
_LEVEL_WORDS = {logging.WARNING: "WARNING: ", logging.ERROR: "ERROR: ", logging.CRITICAL: "ERROR: "}


class CondorFormatter(logging.Formatter):
    """`MM/DD/YY HH:MM:SS message`, the time on every line (tracebacks too) so that each line parses."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.name.startswith("cherrypy.error"):
            text = _CHERRYPY_TIME.sub("", text)  # CherryPy stamps its own time; ours is enough
        text = _LEVEL_WORDS.get(record.levelno, "") + text
        if record.exc_info:
            text = f"{text}\n{self.formatException(record.exc_info)}"
        stamp = time.strftime(TIME_FORMAT, time.localtime(record.created))
        return "\n".join(f"{stamp} {line}" for line in text.splitlines() or [""])


class CondorLogHandler(logging.Handler):
    """Appends to one file; past `max_bytes` renames it as HTCondor does and starts a new one.

    With `max_num` 1 the old log is `<path>.old`; with more, `<path>.<YYYYMMDDTHHMMSS>`, and the
    oldest beyond `max_num` are removed. A path that is not a regular file is never rotated.
    """

    def __init__(self, path: str, max_bytes: int = 0, max_num: int = 1) -> None:
        super().__init__()
        self.path = path
        self.max_bytes = max_bytes
        self.max_num = max_num
        self.stream: TextIO = self._open()  # raises OSError: the caller decides what that means

    def _open(self) -> TextIO:
        return open(self.path, "a", encoding="utf-8", errors="backslashreplace")

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
            if self.max_bytes and self._size() + len(line) > self.max_bytes:
                self._rotate()
            self.stream.write(line)
            self.stream.flush()
        except Exception:
            self.handleError(record)

    def _size(self) -> int:
        try:
            return self.stream.tell()
        except OSError:
            return 0

    def _rotate(self) -> None:
        if not os.path.isfile(self.path) or self._size() == 0:
            return
        suffix = "old" if self.max_num <= 1 else time.strftime(ROTATED_STAMP)
        target = f"{self.path}.{suffix}"
        stamp = time.strftime(TIME_FORMAT)
        self.stream.write(f"{stamp} Saving log file to \"{target}\"\n")
        self.stream.close()
        try:
            os.replace(self.path, target)
        except OSError as exc:
            self.stream = self._open()
            self.max_bytes = 0  # not again on every line; a SIGHUP re-reads MAX_RESTD_LOG
            self.stream.write(f"{stamp} ERROR: cannot rotate the log, it will grow: {exc}\n")
            return
        self.stream = self._open()
        self._remove_old()

    def _remove_old(self) -> None:
        path = Path(self.path)
        stamp = re.compile(re.escape(path.name) + r"\.(old|\d{8}T\d{6})")
        rotated = sorted((p for p in path.parent.iterdir() if stamp.fullmatch(p.name)),
                         key=lambda p: (not p.name.endswith(".old"), p.name))
        for old in rotated[:max(len(rotated) - self.max_num, 0)]:
            try:
                old.unlink()
            except OSError:
                pass

    def close(self) -> None:
        self.acquire()
        try:
            self.stream.close()
        finally:
            self.release()
        super().close()


class DaemonLog:
    """The handler the daemon's loggers share, and the levels RESTD_DEBUG asks for; follows SIGHUP."""

    def __init__(self, handler: logging.Handler) -> None:
        self.handler = handler
        self.handler.setFormatter(CondorFormatter())
        for name in LOGGERS:
            logging.getLogger(name).addHandler(handler)

    @classmethod
    def open(cls, settings: Settings, stream: TextIO | None = None) -> DaemonLog:
        """The daemon log `settings` ask for (standard error when RESTD_LOG is empty); OSError if not."""
        log = cls(_handler(settings, stream))
        log.set_level(settings)
        return log

    @property
    def path(self) -> str:
        return self.handler.path if isinstance(self.handler, CondorLogHandler) else ""

    def set_level(self, settings: Settings) -> None:
        logging.getLogger("condor_restd").setLevel(logging.DEBUG if settings.full_debug else logging.INFO)

    def apply(self, settings: Settings) -> None:
        """Follow changed settings: another file, size or count, or RESTD_DEBUG. OSError keeps the old."""
        if settings.log != self.path:
            new = _handler(settings, None)
            new.setFormatter(self.handler.formatter)
            old, self.handler = self.handler, new
            for name in LOGGERS:
                logger = logging.getLogger(name)
                logger.addHandler(new)
                logger.removeHandler(old)
            old.close()
        elif isinstance(self.handler, CondorLogHandler):
            self.handler.max_bytes = settings.max_log
            self.handler.max_num = settings.max_num_log
        self.set_level(settings)

    def close(self) -> None:
        for name in LOGGERS:
            logging.getLogger(name).removeHandler(self.handler)
        self.handler.close()


def append_error(path: str, message: str) -> bool:
    """One ERROR line in the daemon log's format, appended to `path`, for a daemon that stops
    before its log is set up; whether it could be written."""
    record = logging.LogRecord("condor_restd", logging.ERROR, __file__, 0, message, None, None)
    try:
        with open(path, "a", encoding="utf-8", errors="backslashreplace") as file:
            file.write(CondorFormatter().format(record) + "\n")
    except OSError:
        return False
    return True


def _handler(settings: Settings, stream: TextIO | None) -> logging.Handler:
    if settings.log:
        return CondorLogHandler(settings.log, settings.max_log, settings.max_num_log)
    return logging.StreamHandler(stream if stream is not None else sys.stderr)
