"""gzip: deflated by the workers in pieces, framed by the front into one body any client reads."""

from __future__ import annotations

import gzip
import os
import zlib
from typing import Any

import pytest

from condor_restd import compress, render, streams
from condor_restd.demo import DemoPool
from condor_restd.encoding import Shape
from condor_restd.workers import Pool

GZIP = {"Accept-Encoding": "gzip, deflate, br"}


def test_crc32_combine_is_zlibs() -> None:
    for a, b in [(b"", b"x"), (b"abc", b""), (os.urandom(1000), os.urandom(70_001)), (b"a" * 5, b"b" * 3)]:
        assert compress.crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


def test_pieces_deflated_apart_make_one_gzip_body() -> None:
    parts = [os.urandom(300), b"x" * 100_000, b"", b'{"a": 1}' * 1000]
    body = compress.Gzip()
    out = body.start() + b"".join(body.segment(compress.segment(p)) for p in parts) + body.end()
    assert gzip.decompress(out) == b"".join(parts)


@pytest.mark.parametrize(("header", "takes"), [
    ("gzip", True), ("deflate, gzip;q=0.5", True), ("*", True), ("gzip;q=0", False),
    ("identity", False), ("", False), (None, False), ("GZIP; q=1.0", True), ("gzip;q=x", False)])
def test_accept_encoding(header: str | None, takes: bool) -> None:
    assert render.accepts_gzip(header) is takes


def test_the_worker_sends_the_records_deflated_and_not_twice(pool: DemoPool) -> None:
    workers = Pool(pool, workers=1, timeout=10)
    try:
        rows = workers.call("jobs", None, "true", [], 0, Shape(sort=True, ids=False, gzip=True))
        plain = workers.call("jobs", None, "true", [], 0, Shape(sort=True, ids=False))
    finally:
        workers.close()
    assert rows.body == b"" and rows.packed is not None and len(rows.packed.data) < len(plain.body) / 4
    assert zlib.decompressobj(-15).decompress(rows.packed.data) == plain.body[2:-3]


@pytest.mark.parametrize("path", ["/v1/jobs/DEFAULT", "/v1/history/DEFAULT", "/v1/jobs/DEFAULT?limit=5",
                                  "/v1/history/DEFAULT?projection=Owner,ExitCode,Cmd,Iwd,Out,Err"])
def test_a_client_taking_gzip_gets_the_same_answer_smaller(make_client: Any, path: str) -> None:
    client = make_client()
    route, _, query = path.partition("?")
    plain = client.get(route, query=query)
    packed = client.get(route, query=query, headers=GZIP)
    assert packed.headers["content-encoding"] == "gzip" and "Accept-Encoding" in packed.headers["vary"]
    assert gzip.decompress(packed.body) == plain.body and len(packed.body) < len(plain.body)
    assert packed.headers["etag"] != plain.headers["etag"]  # a representation of its own
    again = client.get(route, query=query, headers={**GZIP, "If-None-Match": packed.headers["etag"]})
    assert again.status == 304
    assert client.get(route, query=query, headers={"If-None-Match": packed.headers["etag"]}).status == 200


def test_streams_are_gzipped_too(make_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streams, "STREAM_ABOVE", 5)
    client = make_client(max_jobs=0, stream_batch=4)
    for path in ("/v1/jobs/DEFAULT", "/v1/history/DEFAULT"):
        plain = client.get(path)
        packed = client.get(path, headers=GZIP)
        assert packed.headers["content-encoding"] == "gzip"
        assert gzip.decompress(packed.body) == plain.body
        assert packed.headers.get("etag") != plain.headers.get("etag") or "etag" not in plain.headers


def test_small_answers_errors_and_other_formats_go_as_they_are(client: Any) -> None:
    for path, params in (("/v1/jobs/DEFAULT/2/0", {}), ("/v1/jobs/nosuch", {}),
                         ("/v1/jobs/DEFAULT", {"format": "yaml"}), ("/v1/jobs/DEFAULT", {"format": "ndjson"}),
                         ("/v1/jobs/DEFAULT", {"constraint": "false"})):
        r = client.get(path, params, headers=GZIP)
        assert "content-encoding" not in r.headers, path
