"""The HTTP server: cheroot, with strict request framing, its own errors in the API's JSON shape,
and worker threads that never wait for a slow client's request head.

- A request is read by a worker thread only once its whole head (request line and headers) has
  arrived: until then the connection waits in cheroot's selector, like an idle keep-alive one,
  and costs no thread. A head that takes longer than RESTD_HEADER_TIMEOUT gets a 408.
- A request with a body (Content-Length above 0, or any Transfer-Encoding), a header that may
  come once given twice (Content-Length, Host, Authorization, ...), folded header lines or a
  space before a header's colon get a 400, and the connection is closed: nothing of such a
  request is left to be read as the next one. POST and PATCH (acting on jobs) may carry a body
  of a known length, up to MAX_BODY (413 above); the app reads it whole.
- What cheroot answers by itself (a malformed request line, oversized headers, an HTTP version
  it does not speak, a full queue) has the JSON body {"message": ..., "status": N}, with
  Retry-After on a 503.
"""

from __future__ import annotations

import importlib
import json
import logging
import resource
import socket
import ssl
import time
from typing import Any, cast

from cheroot import errors as cheroot_errors
from cheroot import server as cheroot_server
from cheroot import wsgi
from cheroot.makefile import StreamReader
from cheroot.ssl.builtin import BuiltinSSLAdapter

log = logging.getLogger("condor_restd.server")
_pyio: Any = importlib.import_module("_pyio")  # cheroot's socket files are its pure-Python kind
STOPPING: Any = vars(cheroot_server)["_STOPPING_FOR_INTERRUPT"]  # what stop() queues to end a loop

SINGLE_HEADERS = frozenset({b"Content-Length", b"Host", b"Authorization", b"Proxy-Authorization",
                            b"Content-Type", b"Origin", b"If-Modified-Since", b"Range"})
TOKEN_CHARS = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
LISTEN_BACKLOG = 1024  # connections the kernel completes before they are accepted (they are, at once)
MAX_BODY = 1 << 20  # bytes of a POST or PATCH body (acting on jobs); no other request has one
READ_CHUNK = 65536  # bytes read at a time from a connection whose head is not complete

def _open_files() -> int:
    try:
        return int(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    except (OSError, ValueError):
        return 1024


# Connections kept between requests or while their heads arrive, half the descriptors at most:
# past that, answers close theirs, and a new connection without a complete head gets a 503.
KEEPALIVE_CONNECTIONS = max(16, min(1000, _open_files() // 2))
RETRY_AFTER = 5  # seconds, on the server's own 503
MESSAGES = {
    400: "bad request",
    408: "the request head did not arrive in time (RESTD_HEADER_TIMEOUT)",
    500: "internal error; the daemon log has the details",
    503: "the daemon is busy; try again shortly",
    505: "this server speaks HTTP/1.0 and HTTP/1.1 only",
}


class HeaderReader(cheroot_server.HeaderReader):
    """Request headers, read strictly: what two servers on a request's way could read two ways
    (and so hide a second request in the first) is refused with a ValueError, a 400."""

    def __call__(self, rfile: Any, hdict: dict[bytes, bytes] | None = None) -> dict[bytes, bytes]:
        headers: dict[bytes, bytes] = {} if hdict is None else hdict
        while True:
            line = rfile.readline()
            if not line:
                raise ValueError("the request headers end early")
            if line == b"\r\n":
                break
            if not line.endswith(b"\r\n"):
                raise ValueError("HTTP requires CRLF line ends")
            if line[:1] in (b" ", b"\t"):
                raise ValueError("a header line starts with white space (obsolete line folding)")
            name, colon, value = line[:-2].partition(b":")
            if not colon or not name or not set(name) <= TOKEN_CHARS:
                raise ValueError("a header line is not a name, a colon and a value")
            key = name.title()
            value = value.strip(b" \t")
            if key in headers:
                if key in SINGLE_HEADERS:
                    raise ValueError(f"more than one {key.decode('ascii')} header")
                value = headers[key] + b", " + value  # a list, however many lines it takes
            headers[key] = value
        self.refuse_a_body(headers)
        return headers

    most_body = 0  # bytes of body a request may carry: none, but for the writes (BodyReader)

    def refuse_a_body(self, headers: dict[bytes, bytes]) -> None:
        if b"Transfer-Encoding" in headers:
            raise ValueError("this API takes no chunked request body (Transfer-Encoding); "
                             "send a Content-Length")
        length = headers.get(b"Content-Length")
        if length is not None:
            if not length.isdigit():
                raise ValueError("Content-Length is not a number")
            if not self.most_body and int(length):
                raise ValueError("this API takes no request body (Content-Length above 0)")


class BodyReader(HeaderReader):
    """The heads of POST and PATCH, which carry a JSON body of a known length (the app reads
    it whole, and cheroot answers 413 above MAX_BODY)."""

    most_body = MAX_BODY


REASONS = {400: "Bad Request", 405: "Method Not Allowed", 408: "Request Timeout",
           413: "Request Entity Too Large", 414: "Request-URI Too Long", 500: "Internal Server Error",
           501: "Not Implemented", 503: "Service Unavailable", 505: "HTTP Version Not Supported"}


def json_error(protocol: str, status: int, message: str) -> bytes:
    """A whole response: the status, the JSON error body, and Connection: close."""
    reason = REASONS.get(status, "Error")
    body = json.dumps({"message": message, "status": status}, ensure_ascii=False).encode("utf-8") + b"\n"
    head = [f"{protocol} {status} {reason}", "Content-Type: application/json; charset=utf-8",
            f"Content-Length: {len(body)}", "Connection: close"]
    if status == 503:
        head.append(f"Retry-After: {RETRY_AFTER}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class TLSAdapter(BuiltinSSLAdapter):
    """cheroot's TLS adapter, but the handshake is left to the connection, which does it without
    waiting as it reads the request head: a client slow to shake hands holds neither the
    selector (which accepts every connection) nor a thread, and RESTD_HEADER_TIMEOUT ends it."""

    def wrap(self, sock: Any) -> tuple[Any, dict[str, Any]]:
        try:
            wrapped = self.context.wrap_socket(sock, do_handshake_on_connect=False, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            raise cheroot_errors.FatalSSLAlert(*exc.args) from exc
        return wrapped, {}  # the environ once the handshake is done (Connection.read_ahead)


class Request(cheroot_server.HTTPRequest):
    """cheroot's request, with strict headers and errors in the API's JSON shape."""

    header_reader = HeaderReader()
    body_reader = BodyReader()

    def read_request_headers(self) -> Any:
        if self.method in (b"POST", b"PATCH"):
            self.header_reader = self.body_reader
        return super().read_request_headers()  # type: ignore[no-untyped-call]

    def simple_response(self, status: Any, msg: Any = "") -> None:
        code = int(str(status)[:3])
        text = msg.decode("latin-1") if isinstance(msg, bytes) else str(msg or "")
        self.close_connection = True  # cheroot closes after any answer of its own
        try:
            self.conn.wfile.write(json_error(self.server.protocol, code,
                                             text or MESSAGES.get(code, str(status)[4:].lower())))
        except OSError as exc:
            if exc.args[0] not in cheroot_errors.socket_errors_to_ignore:
                raise


class _Gate(socket.SocketIO):
    """A connection's reading end: what the selector read ahead (while the head was not yet
    complete) comes first, then the socket."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock, "rb")
        self.early = bytearray()
        self.handshaken = not isinstance(sock, ssl.SSLSocket)
        self.scanned = 0  # how much of `early` has been looked at for the head's end
        self.waiting_since: float | None = None  # when the head began to be awaited

    def readinto(self, buffer: Any) -> int | None:
        if self.early:
            count = min(len(buffer), len(self.early))
            buffer[:count] = self.early[:count]
            del self.early[:count]
            self.scanned = max(0, self.scanned - count)
            return count
        return super().readinto(buffer)


class _Reader(StreamReader):
    def __init__(self, sock: socket.socket, bufsize: int = 8192) -> None:
        _pyio.BufferedReader.__init__(self, _Gate(sock), bufsize)
        self.bytes_read = 0

    @property
    def gate(self) -> _Gate:
        return cast(_Gate, self.raw)

    def buffered(self) -> bool:
        """Whether bytes are buffered here (read from the socket, not yet by the request)."""
        return bool(StreamReader.has_data(self))  # type: ignore[no-untyped-call]

    def has_data(self) -> bool:
        """Whether a request can be read without waiting: bytes buffered, or read ahead and not
        still awaiting the rest of their head (those wait in the selector)."""
        gate = self.gate
        return self.buffered() or bool(gate.early and gate.waiting_since is None)


class Connection(cheroot_server.HTTPConnection):
    """A connection whose request heads are read ahead by the selector, and which answers 408
    when it is closed waiting for one."""

    RequestHandlerClass = Request

    def __init__(self, server: Any, sock: Any, makefile: Any = None) -> None:
        def files(sock: Any, mode: str = "r", bufsize: int = 8192) -> Any:
            return _Reader(sock, bufsize) if "r" in mode else makefile(sock, mode, bufsize)
        super().__init__(server, sock, files)

    @property
    def reader(self) -> _Reader:
        return cast(_Reader, self.rfile)

    @property
    def gate(self) -> _Gate:
        return self.reader.gate

    def read_ahead(self) -> bool | None:
        """Read what has arrived, without waiting: True when the head is complete (or cannot
        be: too long, or cut short), False when more is awaited, None when the client left
        without a byte."""
        gate = self.gate
        if self.reader.buffered():  # a pipelined request, read with the last one
            gate.early[:0] = self.reader.read1(READ_CHUNK)
            gate.scanned = 0
        hung_up = False
        limit = (self.server.max_request_header_size or READ_CHUNK) + READ_CHUNK
        timeout = self.socket.gettimeout()
        try:
            self.socket.settimeout(0.0)
            if not gate.handshaken:  # TLS: as far as the client's messages so far allow
                self.socket.do_handshake()
                gate.handshaken = True
                self.ssl_env = self.server.ssl_adapter.get_environ(self.socket)
            while len(gate.early) < limit:
                chunk = self.socket.recv(READ_CHUNK)
                if not chunk:
                    hung_up = True
                    break
                gate.early += chunk
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass
        except OSError:
            hung_up = True
        finally:
            try:
                self.socket.settimeout(timeout)
            except OSError:
                hung_up = True
        start = max(0, gate.scanned - 3)
        complete = (gate.early.find(b"\r\n\r\n", start) >= 0 or gate.early.find(b"\n\n", start) >= 0
                    or len(gate.early) >= limit - READ_CHUNK)
        gate.scanned = len(gate.early)
        if complete or (hung_up and gate.early):  # a head cut short is cheroot's to answer (400)
            return True
        return None if hung_up else False

    def close(self) -> None:
        gate = self.gate
        if gate.waiting_since is not None and gate.early and self.socket is not None:
            gate.waiting_since = None  # timed out waiting for the head: say so, if it can be said now
            try:
                self.socket.settimeout(0.0)
                self.socket.send(json_error(self.server.protocol, 408, MESSAGES[408]))
            except OSError:
                pass
        super().close()


class Server(wsgi.Server):
    """cheroot's WSGI server with the connections above; RESTD_HEADER_TIMEOUT in `header_timeout`."""

    ConnectionClass = Connection
    keep_alive_conn_limit = KEEPALIVE_CONNECTIONS
    max_request_body_size = MAX_BODY  # 413 above it (only POST and PATCH carry a body at all)
    header_timeout = 10.0
    bind_error: OSError | None = None  # the last bind's own error; cheroot's keeps only its text

    def bind(self, family: Any, type: Any, proto: int = 0) -> None:
        try:
            super().bind(family, type, proto)
        except OSError as exc:
            self.bind_error = exc
            raise

    def error_log(self, msg: str = "", level: int = logging.INFO, traceback: bool = False) -> None:
        # cheroot writes these to stderr; they are mostly clients hanging up early: debug detail
        log.log(level if level >= logging.WARNING else logging.DEBUG, "%s", msg, exc_info=traceback)

    def process_conn(self, conn: Any) -> None:
        """Hand a connection to a worker thread once its request head is all there; until then
        it waits in the selector (from its first byte, or its accept, RESTD_HEADER_TIMEOUT at most)."""
        if not isinstance(conn, Connection):
            super().process_conn(conn)
            return
        gate = conn.gate
        now = time.monotonic()
        if gate.waiting_since is None:
            gate.waiting_since = now
        ready = conn.read_ahead()
        if ready is None:
            gate.waiting_since = None
            conn.close()
        elif ready:
            gate.waiting_since = None
            super().process_conn(conn)
        elif now - gate.waiting_since >= self.header_timeout:
            conn.close()  # a 408
        elif not self.can_add_keepalive_connection:  # too many waiting already
            gate.waiting_since = None
            try:
                conn.socket.settimeout(0.0)
                conn.socket.send(json_error(self.protocol, 503, MESSAGES[503]))
            except OSError:
                pass
            conn.close()
        else:
            self.put_conn(conn)  # back to the selector, until more arrives or the deadline
            # cheroot's selector closes a connection idle for `timeout`: make that the deadline
            conn.last_used = time.time() - self.timeout + (gate.waiting_since + self.header_timeout - now)

    def _serve_unservicable(self) -> None:
        """A connection the full queue cannot take gets a 503 in the JSON shape, then is closed."""
        while self.ready:
            conn = vars(self)["_unservicable_conns"].get()
            if conn is STOPPING:
                return
            try:
                conn.socket.settimeout(1.0)
                conn.wfile.write(json_error(self.protocol, 503, MESSAGES[503]))
                # the end of the answer; the socket itself is left to linger, so that the
                # request it did not read cannot reset the connection before the client reads
                conn.socket.shutdown(socket.SHUT_WR)
            except (OSError, cheroot_errors.FatalSSLAlert):
                pass
            except Exception as exc:  # this thread must go on
                self.error_log(repr(exc), level=logging.ERROR, traceback=True)
            if isinstance(conn, Connection):
                conn.gate.waiting_since = None
            conn.linger = True
            conn.close()
