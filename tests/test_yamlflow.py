"""YAML answers: any record reads back equal with PyYAML's safe_load, and a big list costs about
what its JSON costs (it took 30 times the CPU and ten times the memory, record by record in PyYAML)."""

from __future__ import annotations

import json
import math
import time
import tracemalloc
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from condor_restd import bodies, render, yamlflow
from condor_restd.render import JSON, YAML, Listing, RecordBlock

from .conftest import Client

TRICKY_TEXT = ["", "yes", "No", "on", "null", "~", "1e5", "1.5E+3", "0x1F", "0o17", "1_000", "2026-01-01",
               "12:30:00", ".inf", "-.nan", "#", "- x", "? x", "a: b", "a #b", "{", "[", "'", '"', "\\",
               "\\\"", "\x7f", "\x85", "\u2028", "\u2029", "\ufeff", "\ufffd", "\t", "\n", "\x00", "\x1b",
               "\U0001f600", "é", "\u00a0", " lead", "trail ", "!!python/object", "&a", "*a", "%TAG", "@x", "`"]
TRICKY_FLOATS = [1e20, 1e-7, 5e300, -2.5e-300, 1.0, -0.0, 0.1, 123456789.125, 1e16, 2.5e15]
KEYS = st.one_of(st.sampled_from(TRICKY_TEXT), st.text(max_size=12), st.sampled_from(TRICKY_TEXT),
                 st.text(max_size=12), st.builds(lambda c, n: c * n, st.sampled_from(["a", "\\", '"', "é", "\U0001f600", ":"]),
                           st.sampled_from([999, 1000, 1023, 1024, 1500])))
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                    st.sampled_from(TRICKY_FLOATS), st.floats(allow_nan=False, allow_infinity=False),
                    st.sampled_from(TRICKY_TEXT), st.text())
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(KEYS, inner, max_size=4)),
                      max_leaves=12)
RECORDS = st.lists(st.dictionaries(KEYS, VALUES, max_size=5), max_size=4)
# printJson's layout (a line break and indent between tokens), ASCII escapes or raw text
LAYOUTS = st.sampled_from([{}, {"ensure_ascii": True}, {"indent": 2}, {"indent": 1, "ensure_ascii": True}])
PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))


def same(a: Any, b: Any) -> bool:
    """Equal, with -0.0 and 0.0 told apart (YAML must not lose a sign JSON keeps)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


@PROPERTY
@given(records=RECORDS, layout=LAYOUTS)
def test_any_list_of_records_reads_back_equal(records: list[Any], layout: dict[str, Any]) -> None:
    as_bytes = [json.dumps(r, **layout).encode("utf-8") for r in records]  # job records come so
    expected = [json.loads(b) for b in as_bytes]
    for value in (Listing(as_bytes), Listing(iter(as_bytes), stream_tag='W/"x"'), expected):
        text = render.encode(value, YAML).decode("utf-8")
        assert same(yaml.safe_load(text), expected), text
        assert text.endswith("\n")


@PROPERTY
@given(value=st.dictionaries(KEYS, VALUES, min_size=1, max_size=6))
def test_any_big_object_reads_back_equal(monkeypatch: pytest.MonkeyPatch, value: dict[str, Any]) -> None:
    monkeypatch.setattr(bodies, "PRETTY_YAML", 0)  # every object is "big"
    text = render.encode(value, YAML).decode("utf-8")
    assert same(yaml.safe_load(text), json.loads(json.dumps(value))), text


@pytest.mark.parametrize("text", [
    '{"a": 1e5, "b": 1E-7, "c": 2.5e+300, "d": "1e5", "e": "x\\"1e5\\"", "f": [1e1, -3E3]}',
    '{"k": "\\ud83d\\ude00", "l": "\\\\ud83d\\\\ude00", "m": "\\ud800", "n": "\\\\\\ud83d\\ude00"}',
    '{"%s": 1, "%s": {"%s": 2}}' % ("a" * 1200, "b\\\"" * 600, "c" * 1024),
    '{"a": "%s", "b": 1}' % ("x" * 3000),  # a long value is no key
    '{"\u2028": "\x85\x7f\ufeff", "x": "\U0001f600"}',
])
def test_what_yaml_1_1_reads_differently_is_rewritten(text: str) -> None:
    expected = json.loads(text)
    # PyYAML's own loader, and libyaml's (which refuses a lone surrogate, as YAML itself does)
    libyaml = yaml.__with_libyaml__ and "\\ud800" not in text
    for loader in [yaml.SafeLoader] + ([yaml.CSafeLoader] if libyaml else []):
        assert same(yaml.load(yamlflow.item(text), Loader=loader), [expected])
        assert same(yaml.load(yamlflow.entry('"key"', text), Loader=loader), {"key": expected})


def test_small_objects_stay_in_block_style(client: Client) -> None:
    text = client.get("/v1/jobs/DEFAULT/2/0", {"format": "yaml"}).text
    assert text.startswith("jobid: '2.0'\nclassad:\n")
    assert client.get("/v1/openapi.yaml").text.startswith("openapi: ")


def big_listing(count: int) -> list[bytes]:
    """`count` job records as the compiled helper gives them: JSON text in UTF-8, laid out."""
    from condor_restd.demo import DemoPool
    from condor_restd.settings import Settings
    from condor_restd.web import make_app

    app = make_app(Settings(cache_ttl=0), DemoPool())
    try:
        jobs = Client(app).get("/v1/history/DEFAULT").json() + Client(app).get("/v1/jobs/DEFAULT").json()
    finally:
        app.queries.close()
    return [json.dumps(jobs[n % len(jobs)], indent=1, ensure_ascii=False).encode("utf-8")
            for n in range(count)]


def cost(value: Any, media: str) -> tuple[float, int]:
    started = time.process_time()
    size = len(render.encode(value, media))
    return time.process_time() - started, size


def test_a_big_yaml_list_costs_about_what_its_json_costs() -> None:
    records = big_listing(4000)
    json_seconds, json_size = cost(Listing(records), JSON)
    yaml_seconds, yaml_size = cost(Listing(records), YAML)
    assert json_size > 8_000_000 and yaml_size > 0.8 * json_size
    # PyYAML's emitter took about 100 times the JSON encoder's time here; the flow lines, 3 to 5
    assert yaml_seconds < 10 * json_seconds + 0.5, (yaml_seconds, json_seconds)


def test_a_big_yaml_list_is_written_a_record_at_a_time() -> None:
    records = big_listing(600)
    block = RecordBlock(b"[\n" + b",\n".join(records) + b"\n]\n", [])  # only its size matters here
    size = len(block.body)
    tracemalloc.start()
    try:
        chunks = render._chunks(iter(records), YAML)
        tracemalloc.reset_peak()
        for _ in chunks:  # as a stream is sent: a chunk at a time
            pass
        streamed = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        render.encode(Listing(records), YAML)
        whole = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert streamed < size / 20, (streamed, size)  # a record or two at a time
    assert whole < 3 * size, (whole, size)  # the body, and what a record needs
