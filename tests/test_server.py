"""The HTTP server itself, over raw sockets on 127.0.0.1: request framing (bodies, repeated
headers: nothing of a refused request is read as the next one), cheroot's own errors in the JSON
shape, slow clients that hold no thread, and fair service between many keep-alive connections."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from condor_restd.daemon import Listener
from condor_restd.demo import DemoPool
from condor_restd.server import Server
from condor_restd.settings import Settings
from condor_restd.web import make_app

GET = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
SMUGGLED = b"GET /v1/config HTTP/1.1\r\nHost: x\r\n\r\n"  # a second request hidden in a body


class Served:
    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.address = listener.address

    def connect(self, timeout: float = 5.0) -> socket.socket:
        return socket.create_connection(self.address, timeout=timeout)


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    started: list[tuple[Listener, Any]] = []

    def start(**changes: Any) -> Served:
        current = Settings(port=0, cache_ttl=0).replace(**changes)
        app = make_app(current, DemoPool())
        listener = Listener(current, app)
        listener.start()
        started.append((listener, app))
        return Served(listener)

    yield start
    for listener, app in started:
        listener.stop(1).join(5)
        app.queries.close()


@pytest.fixture
def served(serve: Callable[..., Served]) -> Served:
    return serve()


Answer = tuple[int, dict[str, str], bytes]


def parse(data: bytes, head: bool = False) -> list[Answer]:
    """The complete responses at the start of `data` (answers to HEAD, with `head`: no bodies)."""
    answers = []
    while data.startswith(b"HTTP/1.1 ") and b"\r\n\r\n" in data:
        top, _, rest = data.partition(b"\r\n\r\n")
        lines = top.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        # the app sends no body to HEAD; the server's own errors (sent with no Server header) do
        bodiless = head and "server" in headers
        length = 0 if bodiless else int(headers.get("content-length", "0"))
        if len(rest) < length:
            break
        answers.append((int(lines[0].split()[1]), headers, rest[:length]))
        data = rest[length:]
    return answers


def read_answers(sock: socket.socket, deadline: float = 5.0, expect: int | None = None,
                 head: bool = False) -> tuple[list[Answer], bool]:
    """The responses on the connection until it closes (or, with `expect`, until that many have
    come; without, until it is quiet for half a second), and whether it closed."""
    data, closed = b"", False
    sock.settimeout(0.5)
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            if data and expect is None:
                break
            continue
        except ConnectionResetError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        data += chunk
        if expect is not None and len([a for a in parse(data, head) if a[0] != 100]) >= expect:
            break
    return parse(data, head), closed


def exchange(served: Served, raw: bytes) -> tuple[list[Answer], bool]:
    with served.connect() as sock:
        sock.sendall(raw)
        return read_answers(sock)


def assert_json_error(answer: Answer, status: int) -> dict[str, Any]:
    code, headers, body = answer
    assert code == status, answer
    assert headers["content-type"] == "application/json; charset=utf-8", answer
    document: dict[str, Any] = json.loads(body)
    assert document["status"] == status and isinstance(document["message"], str) and document["message"]
    return document


# ----------------------------------------------------------------------------------- framing

BODIES = {
    "chunked": b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED),
    "content-length": b"Content-Length: %d\r\n\r\n%s" % (len(SMUGGLED), SMUGGLED),
    "both": b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (
        len(SMUGGLED), SMUGGLED),
    "two lengths": b"Content-Length: 0\r\nContent-Length: %d\r\n\r\n%s" % (len(SMUGGLED), SMUGGLED),
    "two equal lengths": b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n%s" % (
        len(SMUGGLED), len(SMUGGLED), SMUGGLED),
    "identity": b"Transfer-Encoding: identity\r\nContent-Length: %d\r\n\r\n%s" % (len(SMUGGLED), SMUGGLED),
    "spaced name": b"Content-Length : %d\r\n\r\n%s" % (len(SMUGGLED), SMUGGLED),
    "folded": b"X-A: 1\r\n Content-Length: %d\r\n\r\n%s" % (len(SMUGGLED), SMUGGLED),
    "signed length": b"Content-Length: +%d\r\n\r\n%s" % (len(SMUGGLED), SMUGGLED),
}


@pytest.mark.parametrize(("method", "body"), [
    (method, body) for method in ("GET", "HEAD", "OPTIONS", "POST") for body in BODIES
    if (method, body) != ("POST", "content-length")])  # a POST's known length: the next test
def test_a_request_with_a_body_is_400_and_the_connection_closes(served: Served, method: str,
                                                                 body: str) -> None:
    raw = f"{method} /healthz HTTP/1.1\r\nHost: x\r\n".encode() + BODIES[body] + GET
    answers, closed = exchange(served, raw)
    assert len(answers) == 1, answers  # neither the smuggled request nor the next one is answered
    assert_json_error(answers[0], 400)
    assert answers[0][1]["connection"] == "close" and closed


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_a_write_body_is_read_whole_so_nothing_is_left_for_a_next_request(served: Served,
                                                                          method: str) -> None:
    """POST and PATCH carry a body of a known length (acting on jobs). It is read whole, even by
    a URL that takes no write, so what follows it on the connection is the next request."""
    raw = f"{method} /healthz HTTP/1.1\r\nHost: x\r\n".encode() + BODIES["content-length"] + GET
    answers, _ = exchange(served, raw)
    assert [answer[0] for answer in answers] == [405, 200], answers  # the smuggled bytes were body
    assert_json_error(answers[0], 405)


def test_a_write_body_above_the_limit_is_413_and_closes(served: Served) -> None:
    from condor_restd.server import MAX_BODY
    raw = f"POST /v1/jobs/DEFAULT HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_BODY + 1}\r\n\r\n".encode()
    answers, closed = exchange(served, raw + b"x" * 1000)
    assert len(answers) == 1 and answers[0][0] == 413 and closed


@pytest.mark.parametrize("header", ["Host", "Authorization", "Content-Type", "Origin"])
def test_a_header_that_comes_once_given_twice_is_400(served: Served, header: str) -> None:
    raw = f"GET /healthz HTTP/1.1\r\nHost: x\r\n{header}: a\r\n{header}: b\r\n\r\n".encode()
    if header == "Host":
        raw = b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"
    answers, closed = exchange(served, raw + GET)
    assert len(answers) == 1 and closed
    assert header in assert_json_error(answers[0], 400)["message"]


def test_an_empty_body_and_lists_are_fine_and_the_connection_stays(served: Served) -> None:
    raw = (b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nAccept: text/html\r\n"
           b"Accept: application/json\r\n\r\n" + GET + GET)
    with served.connect() as sock:
        sock.sendall(raw)
        answers, closed = read_answers(sock, deadline=2)
        assert [a[0] for a in answers] == [200, 200, 200] and not closed
        sock.sendall(GET)  # and the connection is still good
        assert [a[0] for a in read_answers(sock, deadline=2, expect=1)[0]] == [200]


def test_a_pipelined_head_split_across_packets_is_answered(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(GET + GET[:10])
        first, _ = read_answers(sock, deadline=2, expect=1)
        assert [a[0] for a in first] == [200]
        time.sleep(0.3)
        sock.sendall(GET[10:])
        assert [a[0] for a in read_answers(sock, deadline=2, expect=1)[0]] == [200]


# --------------------------------------------------------------- cheroot's own errors, in JSON

@pytest.mark.parametrize("raw,status", [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    (b"GET /healthz HTTP/3.1\r\nHost: x\r\n\r\n", 505),
    (b"GET /healthz FTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\nHost: x\n\n", 400),
    (b"get /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /healthz#frag HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n", 413),
    (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n", 400),  # the client stops short
])
def test_the_servers_own_errors_are_json(served: Served, raw: bytes, status: int) -> None:
    with served.connect() as sock:
        sock.sendall(raw)
        if raw.endswith(b"X-A: 1\r\n"):
            sock.shutdown(socket.SHUT_WR)
        answers, closed = read_answers(sock)
    assert len(answers) == 1 and closed, answers
    assert_json_error(answers[0], status)
    assert answers[0][1]["connection"] == "close"


def test_a_full_queue_is_a_json_503_with_retry_after() -> None:
    release = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        release.wait(10)
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    server = Server(("127.0.0.1", 0), app, numthreads=1, accepted_queue_size=1,
                    accepted_queue_timeout=0.01)  # type: ignore[arg-type]
    server.prepare()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        address = server.bind_addr
        held = [socket.create_connection(address, timeout=5) for _ in range(2)]
        for sock in held:  # one in the thread, one in the queue
            sock.sendall(GET)
            time.sleep(0.3)
        with socket.create_connection(address, timeout=5) as sock:
            sock.sendall(GET)
            answers, closed = read_answers(sock)
        assert len(answers) == 1 and closed
        assert_json_error(answers[0], 503)
        assert answers[0][1]["retry-after"].isdigit() and answers[0][1]["connection"] == "close"
        release.set()
        for sock in held:
            assert [a[0] for a in read_answers(sock, deadline=3, expect=1)[0]] == [200]
            sock.close()
    finally:
        release.set()
        server.stop()


# ------------------------------------------------------------------------------ slow clients

def test_slow_clients_hold_no_thread_and_time_out_with_a_408(serve: Callable[..., Served]) -> None:
    served = serve(threads=4, header_timeout=3.0)
    slow = [served.connect() for _ in range(30)]
    try:
        for sock in slow:
            sock.sendall(b"G")
        took = []
        started = time.monotonic()
        for _ in range(6):  # while they send their heads a byte at a time, for 1.5 s
            for sock in slow:
                sock.sendall(b"E")
            t = time.monotonic()
            with served.connect() as sock:
                sock.sendall(GET)
                answers, _ = read_answers(sock, expect=1)
            took.append(time.monotonic() - t)
            assert [a[0] for a in answers] == [200]
            time.sleep(max(0.0, 0.25 - (time.monotonic() - t)))
        assert max(took) < 1.0, took
        time.sleep(max(0.0, started + 3.5 - time.monotonic()))  # past RESTD_HEADER_TIMEOUT: a 408
        for sock in slow:
            answers, closed = read_answers(sock, deadline=2)
            assert closed and len(answers) == 1
            assert_json_error(answers[0], 408)
    finally:
        for sock in slow:
            sock.close()


def test_a_silent_connection_is_closed_at_the_header_deadline(serve: Callable[..., Served]) -> None:
    served = serve(header_timeout=1.0)
    with served.connect() as sock:
        started = time.monotonic()
        answers, closed = read_answers(sock, deadline=4)
        assert closed and answers == [] and time.monotonic() - started < 3


def test_connections_waiting_for_their_heads_are_bounded(serve: Callable[..., Served],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Server, "keep_alive_conn_limit", 20)
    served = serve(threads=2)
    waiting = [served.connect() for _ in range(20)]
    try:
        for sock in waiting:
            sock.sendall(b"GET /he")
        time.sleep(0.3)
        with served.connect() as sock:  # one too many: a 503 at once, not a descriptor held
            sock.sendall(b"GET /he")
            answers, closed = read_answers(sock, deadline=3)
        assert closed and len(answers) == 1
        assert_json_error(answers[0], 503)
        for sock in waiting[:5]:  # those already waiting are still served
            sock.sendall(b"althz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert [a[0] for a in read_answers(sock, deadline=3, expect=1)[0]] == [200]
    finally:
        for sock in waiting:
            sock.close()


def test_idle_keep_alive_connections_hold_no_thread(serve: Callable[..., Served]) -> None:
    served = serve(threads=2)
    idle = [served.connect() for _ in range(60)]
    try:
        for sock in idle:
            sock.sendall(GET)
        for sock in idle:  # answered, and kept open (no Connection: close)
            answers, closed = read_answers(sock, deadline=3, expect=1)
            assert [a[0] for a in answers] == [200] and "connection" not in answers[0][1] and not closed, (idle.index(sock), answers, closed)
        t = time.monotonic()
        with served.connect() as sock:
            sock.sendall(GET)
            assert [a[0] for a in read_answers(sock, expect=1)[0]] == [200]
        assert time.monotonic() - t < 1.0
        for sock in idle[::7]:  # and each of them can still ask again
            sock.sendall(GET)
            assert [a[0] for a in read_answers(sock, deadline=3, expect=1)[0]] == [200]
    finally:
        for sock in idle:
            sock.close()


def test_many_keep_alive_clients_are_served_fairly(serve: Callable[..., Served]) -> None:
    served = serve(threads=4)
    clients = [served.connect(timeout=10) for _ in range(100)]
    waits: list[float] = []
    try:
        for _ in range(5):  # rounds: every client asks, then every answer is read
            sent = time.monotonic()
            for sock in clients:
                sock.sendall(GET)
            for sock in clients:
                answers, _ = read_answers(sock, deadline=10, expect=1)
                assert [a[0] for a in answers] == [200]
                waits.append(time.monotonic() - sent)
        assert max(waits) < 3.0, max(waits)
    finally:
        for sock in clients:
            sock.close()


# ------------------------------------------------------------------ any request shape, property

HEADER_LINES = st.sampled_from([
    b"Content-Length: 0", b"Content-Length: 5", b"Content-Length: 1_0", b"Content-Length: -1",
    b"Content-Length: 99999999999999999999", b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip",
    b"Transfer-Encoding: chunked, identity", b"Authorization: Bearer a", b"Host: y", b" folded",
    b"\tfolded", b"X-Empty:", b"X-Bad Name: 1", b"X-A:\x00b", b"Expect: 100-continue",
    b"Connection: close", b"Connection: keep-alive", b"Accept: application/yaml", b":nameless",
])


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(method=st.sampled_from([b"GET", b"HEAD", b"OPTIONS", b"POST", b"PUT", b"DELETE"]),
       headers=st.lists(HEADER_LINES, max_size=4), body=st.sampled_from([b"", b"hello", SMUGGLED]))
def test_any_request_shape_gets_a_clean_answer_and_smuggles_nothing(
        served: Served, method: bytes, headers: list[bytes], body: bytes) -> None:
    raw = b"%s /healthz HTTP/1.1\r\nHost: x\r\n%s\r\n%s" % (method, b"".join(h + b"\r\n" for h in headers), body)
    with served.connect() as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        answers, closed = read_answers(sock, deadline=3, head=method == b"HEAD")
    final = [a for a in answers if a[0] != 100]
    assert final, raw
    for code, answer_headers, content in final:
        assert 200 <= code < 500, (raw, answers)
        if code >= 400 and content:  # (no body to HEAD; errors in the format asked for)
            assert yaml.safe_load(content)["status"] == code, (raw, answers)
            assert answer_headers["content-type"].startswith(("application/json", "application/yaml"))
    framing = [h for h in headers if h.startswith((b"Transfer-Encoding", b" ", b"\t"))
               or (h.startswith(b"Content-Length") and h != b"Content-Length: 0")]
    if framing and method == b"POST":  # a write: a body of a known length is read whole
        assert final[0][0] in (400, 405, 413), (raw, answers)
        if final[0][0] != 405:  # refused framing: nothing more is read
            assert len(final) == 1 and closed, (raw, answers)
    elif framing:  # a body is refused, never read as a request: one answer, then the end
        assert len(final) == 1 and final[0][0] == 400 and closed, (raw, answers)
    elif body and final[0][0] < 400:  # bytes past a head with no body are the next request
        assert len(final) == 2 or closed, (raw, answers)
