"""ClassAd helpers over the real ClassAd library: parse, quote, evaluate, project, read values."""

from __future__ import annotations

import re
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
# what the library raises for an expression it cannot analyse or evaluate (not a daemon's fault)
EVAL_ERRORS: tuple[type[BaseException], ...] = (*CLASSAD_ERRORS, ValueError, RuntimeError)


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
        tree = classad.ExprTree(text)
        # the parser stops without a word at a ';' or a ']' and drops the rest: in brackets, the
        # whole text must be one expression (the line break ends a // comment before them)
        classad.ExprTree(f"({text}\n)")
        return tree
    except PARSE_ERRORS as exc:
        shown = text if len(text) <= 200 else text[:200] + "..."
        raise BadRequest(f"constraint is not a valid ClassAd expression: {shown!r}",
                         detail=str(exc)) from None


# The ClassAd library evaluates an expression recursively and gives up (an evaluation error)
# some 400 levels down; nested brackets cost it more than a level each. A client's expression
# is kept well inside that, so that no schedd or collector is asked to evaluate one it cannot.
MAX_NESTING = 64  # brackets, parentheses and braces open at once
MAX_OPERATORS = 256  # operators, in all (a chain `a || b || ...` nests one level per operator)
_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_OPERATOR = re.compile(r"=\?=|=!=|[=!<>]=|<<|>>>?|&&|\|\||[-+*/%<>!~^&|?:.]")


def skeleton(text: str) -> str:
    """An expression as the ClassAd library writes it back, each string literal and quoted
    attribute name replaced by `x`: what is left is operators, names and numbers."""
    return _LITERAL.sub("x", str(check_expression(text)))


def check_size(text: str, what: str = "constraint") -> None:
    """Refuse an expression nested deeper, or with more operators, than a daemon evaluates
    safely (BadRequest). Counted on the text as the ClassAd library writes it back, string
    literals and quoted names left out."""
    bare = skeleton(text)
    depth = most = 0
    for char in bare:
        if char in "([{":
            depth += 1
            most = max(most, depth)
        elif char in ")]}":
            depth -= 1
    if most > MAX_NESTING:
        raise BadRequest(f"{what} is nested {most} deep; at most {MAX_NESTING} levels")
    operators = len(_OPERATOR.findall(bare))
    if operators > MAX_OPERATORS:
        raise BadRequest(f"{what} has {operators} operators; at most {MAX_OPERATORS}")


def referenced_attributes(text: str) -> list[str] | None:
    """The attribute references of an expression (MY./TARGET. and selections kept: `MY.A.b`),
    as the ClassAd library sees them; None when the library cannot tell (a selection on a
    literal, `{}.x`)."""
    expr = check_expression(text)
    try:
        names = classad.ClassAd().externalRefs(expr)
    except EVAL_ERRORS:
        return None
    return [str(name) for name in names if str(name)]  # no reference at all comes back as ""


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


PARSE_PIECE = 1 << 16  # characters of ad text handed to the ClassAd parser at a time


def matches(constraint: Any, ad: Ad) -> bool:
    """Whether `ad` satisfies a parsed constraint, as a schedd or collector decides it: an
    evaluation that fails (`random(0)`, an expression nested too deep) matches nothing."""
    try:
        value = constraint.eval(ad)
    except EVAL_ERRORS:  # RecursionError is a RuntimeError
        return False
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


def scrubbed(ad: Ad, hide: frozenset[str], only: set[str] | None = None) -> Ad:
    """A copy of `ad` without the attributes in `hide` (lowercase names): an expression
    evaluated on it finds them undefined, however it reaches them (by name, MY., a selection
    inside them, or another attribute's expression that uses them). `only` (lowercase names):
    copy these alone."""
    out = classad.ClassAd()
    for name in (ad.keys() if only is None else [n for n in only if n in ad]):
        if str(name).lower() not in hide:
            out[name] = ad.lookup(name)
    return out


def scrubbed_matches(ads: Sequence[Ad], where: str, hide: frozenset[str], limit: int) -> list[Ad]:
    """The ads that match `where` once the `hide` attributes are gone from them (a client's
    constraint while job attributes are hidden), the first `limit` of them (0: all).

    Each is evaluated on a copy that holds only what `where` can reach (the attributes it names,
    and those their own expressions name, and so on), which is much cheaper than copying a whole
    job ad; when the library cannot tell what an expression names, on a copy of the whole ad."""
    expr = check_expression(where)
    names = _names(expr)
    out = []
    for ad in ads:
        reach = _reachable(ad, names) if names is not None else None
        if matches(expr, scrubbed(ad, hide, reach)):
            out.append(ad)
            if 0 < limit <= len(out):
                break
    return out


_STEP = re.compile(r"'(?:[^'\\]|\\.)*'|[A-Za-z_][A-Za-z0-9_]*")  # the names in `MY.A.b`


def _names(expr: Any) -> set[str] | None:
    """Every name in the references of an expression (MY.A.b: my, a, b); None when the library
    cannot list them, or may have left a reference to the whole ad out (it writes that as "")."""
    try:
        refs = [str(ref) for ref in classad.ClassAd().externalRefs(expr)]
    except EVAL_ERRORS:
        return None
    if "" in refs and not _LITERAL_ONLY.fullmatch(str(expr)):
        return None
    return {name.strip("'").lower() for ref in refs for name in _STEP.findall(ref)}


# an expression that may name nothing and still be sure to reach no attribute: a literal
_LITERAL_ONLY = re.compile(r'\s*(?:-?[0-9.eE+-]+|true|false|undefined|error|"(?:[^"\\]|\\.)*")\s*', re.I)


def _reachable(ad: Ad, names: set[str]) -> set[str] | None:
    """The names an evaluation of an expression naming `names` can reach in `ad`; None when
    one of the ad's expressions on the way cannot be analysed (then: the whole ad)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name not in ad:
            continue
        value = ad.lookup(name)
        if isinstance(value, classad.ExprTree) and not _LITERAL_ONLY.fullmatch(str(value)):
            more = _names(value)
            if more is None:
                return None
            todo.extend(more - seen)
    return seen


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
