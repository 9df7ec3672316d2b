"""The bodies of answers: results and lists as JSON, YAML and NDJSON, whole or a record at a time,
and gzip bodies framed from the pieces the workers deflated."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

import yaml

from . import yamlflow
from .compress import Gzip, Segment
from .responses import Listing, RawJSON, RecordBlock

JSON = "application/json"
YAML = "application/yaml"
NDJSON = "application/x-ndjson"


def to_json(value: Any) -> str:
    """Encode a result, splicing RawJSON fragments in without re-encoding them."""
    if isinstance(value, RawJSON):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, dict):
        if not any(isinstance(v, (RawJSON, bytes, dict, list)) for v in value.values()):
            return json.dumps(value, ensure_ascii=False)
        items = [f"{json.dumps(str(k), ensure_ascii=False)}: {to_json(v)}" for k, v in value.items()]
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list):
        if not value:
            return "[]"
        return "[\n" + ",\n".join(to_json(v) for v in value) + "\n]"
    return json.dumps(value, ensure_ascii=False)


def to_python(value: Any) -> Any:
    """The plain Python form of a result (RawJSON decoded), for encoders other than JSON."""
    if isinstance(value, Listing):
        return to_python(value.records)
    if isinstance(value, RecordBlock):
        return json.loads(value.body)
    if isinstance(value, (RawJSON, bytes)):
        return json.loads(value)
    if isinstance(value, dict):
        return {str(k): to_python(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_python(v) for v in value]
    return value


_LAYOUT = re.compile(r"\n *")


def _line(item: Any) -> str:
    """One compact JSON text. printJson breaks lines (and indents) only between tokens, since a
    JSON string never holds a raw line break: the layout can simply go."""
    return _LAYOUT.sub("", to_json(item)) + "\n"


def _ndjson(value: Any) -> str:
    items = value.records if isinstance(value, Listing) else value if isinstance(value, list) else [value]
    return "".join(map(_line, items))


PRETTY_YAML = 256 << 10  # JSON characters up to which an object is YAML in block style throughout


def _yaml(value: Any) -> str:
    """YAML of a result. A list (of any length) is a block sequence of one flow line per record,
    written from its JSON at about the cost of NDJSON; an object is PyYAML's block style, or,
    above PRETTY_YAML, a block mapping of one flow line per key (PyYAML's emitter, in Python,
    takes some 30 times as long as the JSON encoder, and ten times its memory)."""
    listing = isinstance(value, Listing)
    if listing:
        value = value.records  # a list, its records as they come, or groups (an object)
    if isinstance(value, list) or (listing and not isinstance(value, dict)):
        return b"".join(bytes(c) for c in _chunks(value, YAML) if not isinstance(c, Segment)).decode("utf-8")
    if isinstance(value, dict) and value and len(to_json(value)) > PRETTY_YAML:
        return "".join(yamlflow.entry(json.dumps(str(k), ensure_ascii=False), _line(v)[:-1])
                       for k, v in value.items())
    return yaml.safe_dump(to_python(value), default_flow_style=False, sort_keys=False,
                          allow_unicode=True)


def encode(value: Any, media: str) -> bytes:
    if isinstance(value, Listing) and media == JSON:
        value = value.records
        if isinstance(value, RecordBlock):
            return value.body
        if value and all(isinstance(v, bytes) for v in value):  # job records, spliced as they are
            return b"".join(bytes(c) for c in _chunks(value, JSON) if not isinstance(c, Segment))
    if media == NDJSON:
        return _ndjson(value).encode("utf-8")
    if media == YAML:
        text = _yaml(value)
    else:
        text = to_json(value)
    if not text.endswith("\n"):
        text += "\n"
    return text.encode("utf-8")


def _chunks(records: Iterable[Any], media: str) -> Iterator[bytes | memoryview | Segment]:
    """A list body, a record at a time, in the same bytes encode() gives for the whole list.
    A RecordBlock among the records stands for its records (in JSON: one chunk for them all,
    or the Segment a worker deflated them into)."""
    if media != JSON:
        records = _flat(records)
    first = True
    for record in records:
        if isinstance(record, RecordBlock):
            if len(record):
                yield b"[\n" if first else b",\n"
                # its records, without the brackets
                yield record.packed if record.packed is not None else memoryview(record.body)[2:-3]
                first = False
            continue
        if media == NDJSON:
            yield _line(record).encode("utf-8")
        elif media == YAML:
            yield yamlflow.item(_line(record)[:-1]).encode("utf-8")
        else:
            yield (b"[\n" if first else b",\n") + (
                record if isinstance(record, bytes) else to_json(record).encode("utf-8"))
        first = False
    if media == JSON:
        yield b"[]\n" if first else b"\n]\n"
    elif media == YAML and first:
        yield b"[]\n"


def _flat(records: Iterable[Any]) -> Iterator[Any]:
    for record in records:
        if isinstance(record, RecordBlock):
            yield from record
        else:
            yield record


def _gzipped(chunks: Iterable[bytes | memoryview | Segment]) -> Iterator[bytes]:
    """One gzip body of `chunks`: the workers' Segments as they are, the rest deflated here."""
    body = Gzip()
    yield body.start()
    for chunk in chunks:
        if isinstance(chunk, Segment):
            yield body.segment(chunk)
        else:
            yield body.text(bytes(chunk))
    yield body.end()
