"""YAML from JSON text, as cheaply as NDJSON: each record is one flow (JSON-like) line that any
YAML loader, PyYAML's YAML 1.1 safe_load included, reads back equal to the JSON.

JSON is YAML 1.2 flow style, nearly: a YAML 1.1 loader reads a few characters differently (NEL,
U+2028 and U+2029 are line breaks there, and most C1 controls may not appear raw), joins no
surrogate-pair escapes, takes 1e+5 for a string (its floats need a dot and a signed exponent),
and limits an implicit key to 1024 characters. Each of these is rewritten with one regular
expression over the text, and only when the text holds it, so a record costs a few scans in C.
"""

from __future__ import annotations

import re

# Raw characters a YAML 1.1 reader refuses or takes for line breaks; only a JSON string can hold
# one (the layout between tokens is spaces and newlines), so each is written as a \u escape there.
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]")
# A surrogate pair written as two \u escapes: YAML makes two characters of it, JSON one.
_PAIR = re.compile(r"(?<!\\)((?:\\\\)*)\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})", re.IGNORECASE)
# A string (skipped whole), or a number with an exponent; scanned from a token's start only.
_STRING = r'"(?:[^"\\]|\\.)*"'
_ESCAPED = re.compile(r"\\.")
_EXPONENT = re.compile(r"[0-9][eE]")
_NUMBER = re.compile(_STRING + r"|(-?[0-9]+)(\.[0-9]+)?[eE]([+-]?)([0-9]+)")
LONG_KEY = 1000  # characters: YAML's implicit keys end within 1024
# A key that may be long: after "{" or "," a quote starts a token (in a string it is \"). It
# counts characters and escapes alike, and an escape takes up to 6 characters (\uXXXX).
_LONG_KEY = re.compile(r'([{,]\s*)("(?:[^"\\]|\\.){%d,}+"\s*:)' % (LONG_KEY // 6))


def _escape(match: re.Match[str]) -> str:
    return "\\u%04x" % ord(match.group())


def _join(match: re.Match[str]) -> str:
    high, low = int(match.group(2), 16), int(match.group(3), 16)
    return "%s\\U%08x" % (match.group(1), 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))


def _number(match: re.Match[str]) -> str:
    whole = match.group(1)
    if whole is None:
        return match.group()  # a string, as it is
    return f"{whole}{match.group(2) or '.0'}e{match.group(3) or '+'}{match.group(4)}"


def flow(text: str) -> str:
    """One JSON text, on one line, as a YAML flow node that YAML 1.1 and 1.2 loaders read
    back equal to what a JSON parser reads (the same text when nothing needs rewriting)."""
    if (not text.isascii() or "\x7f" in text) and _UNSAFE.search(text):
        text = _UNSAFE.sub(_escape, text)
    if "\\u" in text:
        text = _PAIR.sub(_join, text)
    # With each escape made two plain characters, every quote starts or ends a string: the
    # odd parts are the strings (as long as they are in the text), the even parts the rest.
    parts = (_ESCAPED.sub("__", text) if "\\" in text else text).split('"')
    numbers = _EXPONENT.search(" ".join(parts[0::2])) is not None
    long_key = len(text) > LONG_KEY and max(map(len, parts[1::2]), default=0) >= LONG_KEY
    if numbers and _EXPONENT.search(text):
        text = _NUMBER.sub(_number, text)
    if long_key and _LONG_KEY.search(text):
        text = _LONG_KEY.sub(r"\1? \2", text)  # an explicit key, whatever its length
    return text


def item(text: str) -> str:
    """A YAML block sequence entry for one JSON text (a record on one line)."""
    return f"- {flow(text)}\n"


def entry(key: str, value: str) -> str:
    """A YAML block mapping entry: `key` and `value` are JSON texts, each on one line."""
    key = flow(key)
    if len(key) > LONG_KEY:
        return f"? {key}\n: {flow(value)}\n"
    return f"{key}: {flow(value)}\n"
