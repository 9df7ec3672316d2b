"""ClassAd helpers over the real ClassAd library: parse, quote, evaluate, project, read values."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .errors import BadRequest

try:  # classad2 first; sites on older bindings fall back to the version 1 module
    import classad2 as classad
except ImportError:  # pragma: no cover - exercised only where the old bindings are installed
    import classad  # type: ignore[no-redef,unused-ignore]

Ad = Any  # a classad2.ClassAd (or classad.ClassAd): opaque outside the adapter

CLASSAD_ERRORS: tuple[type[BaseException], ...] = tuple(
    e for e in (getattr(classad, "ClassAdException", None),
                getattr(classad, "ClassAdParseError", None)) if isinstance(e, type))
VALUE_TYPES: tuple[type, ...] = tuple(
    v for v in (getattr(classad, "Value", None),) if isinstance(v, type))
PARSE_ERRORS: tuple[type[BaseException], ...] = (*CLASSAD_ERRORS, ValueError, SyntaxError)


def quote(text: str) -> str:
    """`text` as a ClassAd string literal."""
    try:
        return str(classad.quote(text))
    except PARSE_ERRORS as exc:
        raise BadRequest(f"{text!r} cannot be used as a ClassAd string: {exc}") from None


def unparse(text: str) -> str:
    """An expression as the ClassAd library writes it back (normalized spacing and case)."""
    return str(check_expression(text))


def check_expression(text: str) -> Any:
    """Parse `text` as a ClassAd expression, or raise BadRequest."""
    try:
        return classad.ExprTree(text)
    except PARSE_ERRORS as exc:
        shown = text if len(text) <= 200 else text[:200] + "..."
        raise BadRequest(f"constraint is not a valid ClassAd expression: {shown!r}",
                         detail=str(exc)) from None


def referenced_attributes(text: str) -> list[str]:
    """The attribute names an expression refers to (MY./TARGET. kept), as the ClassAd library sees them."""
    expr = check_expression(text)
    return [str(name) for name in classad.ClassAd().externalRefs(expr)]


def parse_ads(text: str) -> list[Ad]:
    """Ads in HTCondor's long (old ClassAd) format, separated by blank lines. The library's time
    grows with the square of its input's length, so a long text goes to it a piece at a time,
    each cut at a blank line."""
    ads: list[Ad] = []
    start = 0
    while start < len(text):
        cut = text.find("\n\n", start + PARSE_PIECE)
        end = len(text) if cut < 0 else cut + 2
        ads.extend(ad for ad in classad.parseAds(text[start:end]) if len(ad))
        start = end
    return ads


PARSE_PIECE = 1 << 20  # characters of ad text handed to the ClassAd parser at a time


def matches(constraint: Any, ad: Ad) -> bool:
    """Whether `ad` satisfies a parsed constraint, as a schedd or collector decides it."""
    value = constraint.eval(ad)
    if isinstance(value, VALUE_TYPES):  # Undefined and Error are IntEnum members: never a match
        return False
    if isinstance(value, bool):
        return value
    return isinstance(value, (int, float)) and value != 0


def project(ad: Ad, names: Sequence[str]) -> Ad:
    """A new ad holding only `names` (case-insensitively) of `ad`."""
    out = classad.ClassAd()
    for name in names:
        if name in ad:
            out[name] = ad.lookup(name)
    return out


def value_of(ad: Ad, name: str) -> Any:
    """The literal value of an attribute; None when it is missing or undefined."""
    value = ad.get(name)
    if value is None or isinstance(value, VALUE_TYPES):
        return None
    return value


def group_key(ad: Ad, name: str) -> str | None:
    """The text an ad is grouped under by attribute `name`; None leaves the ad out."""
    value = value_of(ad, name)
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, classad.ExprTree):
        return f"/Expr({value})/"
    return str(value)
