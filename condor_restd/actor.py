"""The acting child on a real pool: ping the schedd with the user's token, then act as HTCondor lets it."""

from __future__ import annotations

import importlib
import os
import re
import warnings
from collections.abc import Mapping
from typing import Any

TOKEN_METHODS = frozenset({"IDTOKENS", "SCITOKENS"})
ACTIONS = {"hold": "Hold", "release": "Release", "remove": "Remove", "vacate": "Vacate"}
OUTCOMES = {"success": "TotalSuccess", "not_found": "TotalNotFound",
            "permission_denied": "TotalPermissionDenied", "bad_status": "TotalBadStatus",
            "already_done": "TotalAlreadyDone", "error": "TotalError"}
JOB_ID = re.compile(r"[0-9]+(\.[0-9]+)?")


class Refused(Exception):
    """The child stops: an error kind of the acting contract and a sentence."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def bindings() -> tuple[Any, Any]:
    """htcondor2 and classad2, else the version 1 modules: imported only when needed."""
    try:
        return importlib.import_module("htcondor2"), importlib.import_module("classad2")
    except ImportError:
        return importlib.import_module("htcondor"), importlib.import_module("classad")


def serve(pool: str | None, request: Mapping[str, Any]) -> dict[str, Any]:
    """Do `request` on `pool`'s schedd as the token in the environment maps; never raises."""
    try:
        htcondor, classad = bindings()
    except ImportError as exc:
        return {"error": "unavailable", "message": f"HTCondor's Python bindings: {exc}"}
    try:
        return Actor(htcondor, classad, pool).do(request)
    except Refused as exc:
        return {"error": exc.kind, "message": exc.message}
    except Exception as exc:  # whatever the bindings raise, as a kind
        return {"error": error_kind(htcondor, classad, exc), "message": _sentence(exc)}


def error_kind(htcondor: Any, classad: Any, exc: BaseException) -> str:
    """The contract's error kind for an exception the bindings raised."""
    classad_errors = tuple(e for e in (getattr(classad, "ClassAdException", None),
                                       getattr(classad, "ClassAdParseError", None))
                           if isinstance(e, type))
    condor_errors = tuple(e for e in (getattr(htcondor, "HTCondorException", None),)
                          if isinstance(e, type))
    if classad_errors and isinstance(exc, classad_errors):
        return "bad_request"
    if condor_errors and isinstance(exc, condor_errors):
        text = str(exc).lower()
        if "authenticat" in text:
            return "unauthenticated"
        if "permission" in text or "denied" in text or "not authorized" in text:
            return "permission_denied"
        return "unavailable"
    if isinstance(exc, (ValueError, TypeError)):
        return "bad_request"
    if isinstance(exc, KeyError):
        return "not_found"
    return "unavailable"


def _sentence(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"HTCondor said: {text[:500]}"


class Actor:
    """One request, with the bindings given (tests give a fake htcondor2)."""

    def __init__(self, htcondor: Any, classad: Any, pool: str | None) -> None:
        self.htcondor, self.classad, self.pool = htcondor, classad, pool

    def do(self, request: Mapping[str, Any]) -> dict[str, Any]:
        kind = request.get("kind")
        if kind not in ("whoami", "act", "edit", "submit"):
            raise Refused("bad_request", f"unknown request kind {kind!r}")
        location = self.locate(request.get("schedd"))
        user, method = self.whoami(location, "READ" if kind == "whoami" else "WRITE")
        if kind == "whoami":
            return {"user": user, "method": method}
        claimed = request.get("user")
        if claimed and claimed != user:
            raise Refused("mismatch", f"the token maps to {user}, not to {claimed}")
        schedd = self.htcondor.Schedd(location)
        if kind == "submit":
            return {"user": user, **self.submit(schedd, request)}
        spec = job_spec(request)
        if kind == "act":
            return {"user": user, **self.act(schedd, spec, request)}
        matched, owned = self.count(schedd, spec, user)  # to tell a refusal's kind
        return {"user": user, "matched": matched, **self.edit(schedd, spec, request, matched, owned)}

    def locate(self, name: Any) -> Any:
        if name is not None and not isinstance(name, str):
            raise Refused("bad_request", "the schedd's name must be a string")
        types = getattr(self.htcondor, "DaemonType", None) or self.htcondor.DaemonTypes
        location = self.htcondor.Collector(self.pool).locate(types.Schedd, name)
        if location is None:
            raise Refused("not_found", f"no schedd named {name!r} is known to the collector"
                          if name else "there is no local schedd")
        return location

    def whoami(self, location: Any, level: str) -> tuple[str, str]:
        """Who the schedd says the token is, and how it authenticated it (a ping)."""
        ping = getattr(self.htcondor, "ping", None) or self.htcondor.SecMan().ping
        ad = ping(location, level)
        user = str(ad.get("MyRemoteUserName") or "")
        method = str(ad.get("AuthMethods") or ad.get("AuthenticationMethod") or "")
        if not user or user.lower().startswith("unauthenticated") or "@" not in user:
            raise Refused("unauthenticated", "the schedd did not map the token to a user "
                          f"({user or 'no mapping'})")
        if method and method.upper() not in TOKEN_METHODS:
            raise Refused("unauthenticated", f"the schedd authenticated with {method}, not a token")
        if ad.get("AuthorizationSucceeded") is False:
            raise Refused("permission_denied", f"the schedd does not allow {user} {level} access")
        offered = os.environ.get("_CONDOR_SEC_CLIENT_AUTHENTICATION_METHODS", "")
        return user, method.upper() or offered.upper() or "unknown"

    def act(self, schedd: Any, spec: Any, request: Mapping[str, Any]) -> dict[str, Any]:
        action = ACTIONS.get(str(request.get("action")))
        if action is None:
            raise Refused("bad_request", f"unknown action {request.get('action')!r}")
        reason = request.get("reason")
        result = schedd.act(getattr(self.htcondor.JobAction, action), spec,
                            str(reason) if reason else None)
        return outcome(result)

    def count(self, schedd: Any, spec: Any, user: str) -> tuple[int, int]:
        """How many queued jobs `spec` names, and how many of them `user` owns."""
        constraint = spec if isinstance(spec, str) else ids_constraint(spec)
        ads = schedd.query(constraint=constraint, projection=["ClusterId", "ProcId", "Owner", "User"])
        owner = user.split("@", 1)[0]
        owned = sum(1 for ad in ads if ad.get("User") == user
                    or (ad.get("User") is None and ad.get("Owner") == owner))
        return len(ads), owned

    def edit(self, schedd: Any, spec: Any, request: Mapping[str, Any], matched: int,
             owned: int) -> dict[str, Any]:
        attributes = request.get("attributes")
        if not isinstance(attributes, dict) or not attributes:
            raise Refused("bad_request", "give the attributes to edit, each with an expression")
        values = {str(name): self.classad.ExprTree(str(text))  # parsed before the schedd sees it
                  for name, text in attributes.items()}
        edited = 0
        for name, value in values.items():
            if matched == 0:
                break
            try:
                edited = int(schedd.edit(spec, name, value) or 0)
            except Exception as exc:
                if owned == 0:
                    raise Refused("permission_denied", _sentence(exc)) from None
                raise Refused("refused", _sentence(exc)) from None
        return {"edited": edited}

    def submit(self, schedd: Any, request: Mapping[str, Any]) -> dict[str, Any]:
        description, count, items = submit_parts(request)
        job = self.htcondor.Submit({str(k): str(v) for k, v in description.items()})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if items:
                result = schedd.submit(job, count=count, itemdata=iter(items))
            else:
                result = schedd.submit(job, count=count)
        first, many = int(result.first_proc()), int(result.num_procs())
        return {"cluster": int(result.cluster()), "procs": list(range(first, first + many))}


def submit_parts(request: Mapping[str, Any]) -> tuple[dict[str, Any], int, list[dict[str, str]] | None]:
    """A submit request's description, count and item data, checked (Refused otherwise)."""
    description, count, items = (request.get("description"), request.get("count") or 0,
                                 request.get("itemdata"))
    if not isinstance(description, dict) or not description:
        raise Refused("bad_request", "the submit description must be a non-empty object")
    if not isinstance(count, int) or count < 0:
        raise Refused("bad_request", "count must be a whole number")
    if items is not None and (not isinstance(items, list) or not all(
            isinstance(i, dict) and all(isinstance(v, str) for v in i.values()) for i in items)):
        raise Refused("bad_request", "itemdata must be a list of objects of strings")
    return description, count, items


def job_spec(request: Mapping[str, Any]) -> Any:
    """The bindings' job_spec: a list of "c" / "c.p" strings, or a constraint string."""
    ids, constraint = request.get("jobs"), request.get("constraint")
    if (ids is None) == (constraint is None):
        raise Refused("bad_request", "give either job ids or a constraint")
    if constraint is not None:
        if not isinstance(constraint, str) or not constraint.strip():
            raise Refused("bad_request", "the constraint must be a non-empty string")
        return constraint
    if not isinstance(ids, list) or not ids or not all(
            isinstance(i, str) and JOB_ID.fullmatch(i) for i in ids):
        raise Refused("bad_request", "job ids are strings such as \"5\" or \"5.0\"")
    return list(ids)


def ids_constraint(ids: list[str]) -> str:
    parts = []
    for job in ids:
        cluster, _, proc = job.partition(".")
        parts.append(f"(ClusterId == {int(cluster)} && ProcId == {int(proc)})" if proc
                     else f"(ClusterId == {int(cluster)})")
    return " || ".join(parts)


def outcome(result: Any) -> dict[str, Any]:
    """The act result ad's totals, as the contract's outcome counts."""
    def total(name: str) -> int:
        value = result.get(name) if result is not None else None
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0

    return {"matched": total("TotalJobAds"),
            "outcome": {key: total(name) for key, name in OUTCOMES.items()}}
