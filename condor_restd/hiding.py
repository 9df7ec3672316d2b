"""Hidden job attributes: the constraints refused on their text, and the pager that filters in the worker."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, Callable

from . import condor
from .encoding import Shape
from .errors import BadRequest
from .responses import Rows
from .settings import Settings
from .streams import Fetch, Pager

# ClassAd functions that turn a string into an attribute reference or expression at run time.
INDIRECT_FUNCTIONS = ("eval",)
# References that reach a whole ad (MY["Env" + "ironment"]) or build a name at run time (eval):
# with hidden attributes, a constraint may use none of them.
WHOLE_AD_REFS = frozenset({"my", "target", "parent", "super"})
WHOLE_AD = re.compile(r"(?<![\w.])(my|target|parent|super)\b(?!\s*\.\s*[A-Za-z_])", re.I)
REF_STEP = re.compile(r"'(?:[^'\\]|\\.)*'|[A-Za-z_][A-Za-z0-9_]*")  # the names in `MY.A.b`


def refuse_hidden_refs(constraint: str, hidden: frozenset[str]) -> None:
    """Refuse (BadRequest), on its text alone, a constraint that names a hidden attribute (at
    any step of a reference: `Hidden.field`, `MY.Hidden`), a whole ad, or eval(). What it cannot
    name still cannot reach a hidden value: such constraints are evaluated on ads without them
    (filtering_pager, condor.Encoded)."""
    for ref in condor.referenced_attributes(constraint) or ():
        steps = [step.strip("'").lower() for step in REF_STEP.findall(ref)]
        for step in steps:
            if step in hidden:
                raise BadRequest(f"constraint refers to hidden attribute {ref!r}")
        if len(steps) == 1 and steps[0] in WHOLE_AD_REFS:
            raise BadRequest("constraint may not use eval() or refer to a whole ad "
                             f"({ref}) while job attributes are hidden")
    # the library leaves MY out of the references (MY["A"], unparse(MY)) once htcondor2 is loaded
    whole = WHOLE_AD.search(condor.skeleton(constraint))
    if whole:
        raise BadRequest("constraint may not use eval() or refer to a whole ad "
                         f"({whole.group(1)}) while job attributes are hidden")
    normalized = re.sub(r"\s+", "", condor.unparse(constraint)).lower()
    for function in INDIRECT_FUNCTIONS:
        if function + "(" in normalized:
            raise BadRequest(f"constraint may not call {function}() while job "
                             "attributes are hidden")


def names_an_attribute(constraint: str) -> bool:
    """Whether a (validated) constraint refers to any attribute: `false` or `1` does not, and
    cannot depend on a hidden value; the schedd may evaluate it."""
    return condor.referenced_attributes(constraint) != []


def filtering_pager(settings: Settings, fetch: Fetch, call: Callable[..., Any], where: str,
                    hidden: frozenset[str]) -> Pager:
    """A pager whose every job query carries `where`, the client's constraint, to the worker,
    which evaluates it on copies of the ads without the `hidden` attributes."""

    def filtered(source: str, schedd: str | None, query: str, ask: list[str], limit: int,
                 since: str | None, shape: Shape) -> Rows:
        return fetch(source, schedd, query, ask, limit, since, replace(shape, where=where, hide=hidden))

    def filtered_call(daemon: str, method: str, *args: Any) -> Any:
        if method == "file_page":  # its last argument is the Shape
            args = (*args[:-1], replace(args[-1], where=where, hide=hidden))
        return call(daemon, method, *args)

    return Pager(settings, filtered, filtered_call, where)
