"""The demo pool acting as a schedd would: its journal of changes, demo tokens, and the acting child."""

from __future__ import annotations

import copy
import fcntl
import json
import os
import re
import time
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from typing import Any

from .actor import Refused, submit_parts

# Demo tokens: HS256 JWTs shaped like HTCondor IDTOKENs, signed with a key only the demo pool
# trusts. It is no secret: the demo pool serves captured ads, never a real pool's.
DEMO_KEY = "condor_restd demo pool signing key (public: trusted by the demo pool only)"
ISSUER = "demo.condor_restd"
UID_DOMAIN = "localhost"
USERS = ("alice", "bob", "condoruser")
SCOPE = "condor:/READ condor:/WRITE"
MAX_PROCS = 1000  # the most jobs one demo submit makes
STATUS = {"idle": 1, "running": 2, "removed": 3, "completed": 4, "held": 5}
# Attributes a schedd sets itself; a job's owner may not set or edit them.
IMMUTABLE = frozenset(name.lower() for name in (
    "Owner", "User", "ClusterId", "ProcId", "MyType", "TargetType", "GlobalJobId", "QDate",
    "JobStatus", "OsUser", "AcctGroupUser"))
# Submit keys the demo schedd understands, and the job attribute each one sets.
SUBMIT_KEYS = {
    "executable": ("Cmd", "string"), "arguments": ("Args", "string"),
    "input": ("In", "string"), "output": ("Out", "string"), "error": ("Err", "string"),
    "log": ("UserLog", "string"), "initialdir": ("Iwd", "string"),
    "batch_name": ("JobBatchName", "string"), "accounting_group": ("AcctGroup", "string"),
    "request_cpus": ("RequestCpus", "expr"), "request_memory": ("RequestMemory", "expr"),
    "request_disk": ("RequestDisk", "expr"), "requirements": ("Requirements", "expr"),
    "priority": ("JobPrio", "expr"),
}
# What a captured job ad that ran carries, and a new one must not.
RUN_ATTRS = ("JobBatchName", "JobSubmitFile", "UserLog", "AutoClusterId", "ServerTime",
             "LastRejMatchTime", "LastRejMatchReason", "LastRejMatchNegotiator")


# ------------------------------------------------------------------------------- tokens

def token(user: str, lifetime: float = 86400.0) -> str:
    """A demo token for `user` ("alice" or "alice@localhost"), valid for `lifetime` seconds."""
    import jwt

    sub = user if "@" in user else f"{user}@{UID_DOMAIN}"
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": sub, "iat": now, "exp": now + int(lifetime), "scope": SCOPE}
    return jwt.encode(claims, DEMO_KEY, algorithm="HS256", headers={"kid": "POOL"})


def verify(text: str) -> dict[str, Any] | None:
    """The claims of a demo token this pool issued and that has not expired, else None."""
    import jwt

    try:
        claims: dict[str, Any] = jwt.decode(
            text.strip(), DEMO_KEY, algorithms=["HS256"], issuer=ISSUER,
            options={"require": ["exp", "iat", "iss", "sub"]})
    except jwt.PyJWTError:
        return None
    return claims if isinstance(claims.get("sub"), str) and claims["sub"] else None


def _candidates(environ: Mapping[str, str]) -> Iterable[tuple[str, str]]:
    """The tokens HTCondor's client would offer, with their method, as it finds them."""
    methods = {m.strip().upper() for m in
               re.split(r"[\s,]+", environ.get("_CONDOR_SEC_CLIENT_AUTHENTICATION_METHODS", ""))}
    if "IDTOKENS" in methods:
        for key in ("_CONDOR_SEC_TOKEN_DIRECTORY", "_CONDOR_SEC_TOKEN_SYSTEM_DIRECTORY"):
            directory = environ.get(key)
            if directory and os.path.isdir(directory):
                for name in sorted(os.listdir(directory)):
                    yield "IDTOKENS", _read_small(os.path.join(directory, name))
    if "SCITOKENS" in methods:
        if environ.get("BEARER_TOKEN"):
            yield "SCITOKENS", environ["BEARER_TOKEN"]
        if environ.get("BEARER_TOKEN_FILE"):
            yield "SCITOKENS", _read_small(environ["BEARER_TOKEN_FILE"])


def _read_small(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read(65536)
    except OSError:
        return ""


def authenticate(environ: Mapping[str, str]) -> tuple[str, str, str]:
    """Who the demo schedd maps the token in the environment to: (user, method, scope)."""
    for method, text in _candidates(environ):
        claims = verify(text) if text else None
        if claims is not None:
            return str(claims["sub"]), method, str(claims.get("scope") or SCOPE)
    raise Refused("unauthenticated", "the demo schedd could not authenticate the token: it is "
                  "not a demo token, or it has expired, or it was not signed by the demo pool")


# ------------------------------------------------------------------------------ the journal

def read_ops(path: str, offset: int, locked: bool = False) -> tuple[list[dict[str, Any]], int]:
    """The complete journal lines after `offset`, as ops, and the offset after the last one."""
    with open(path, "rb") as handle:
        if not locked:
            fcntl.flock(handle, fcntl.LOCK_SH)
        try:
            handle.seek(offset)
            data = handle.read()
        finally:
            if not locked:
                fcntl.flock(handle, fcntl.LOCK_UN)
    end = data.rfind(b"\n") + 1
    ops = [json.loads(line) for line in data[:end].splitlines() if line.strip()]
    return ops, offset + end


def apply_op(queues: MutableMapping[str, Sequence[Any]],
             histories: MutableMapping[str, Sequence[Any]],
             op: Mapping[str, Any]) -> None:
    """Change the pool's queues and histories as one journal line says (ads are replaced by
    changed copies, never changed in place: callers may hold the old ones)."""
    from .classads import check_expression

    def changed(ad: Any, attrs: Mapping[str, str | None]) -> Any:
        new = copy.copy(ad)
        for name, text in attrs.items():
            if text is None:
                if name in new:
                    del new[name]
            else:
                new[name] = check_expression(text)
        return new

    schedd = op["schedd"]
    if op["op"] == "add":
        added = [changed(template(), attrs) for attrs in op["ads"]]
        queues[schedd] = [*reversed(added), *queues[schedd]]  # newest cluster first
        return
    queue = list(queues[schedd])
    index = next((i for i, ad in enumerate(queue) if _id(ad) == op["id"]), None)
    if index is None:
        return
    ad = changed(queue[index], op["attrs"])
    if op["op"] == "set":
        queue[index] = ad
    else:  # "leave": the job goes to the history, newest first
        queue = queue[:index] + queue[index + 1:]
        histories[schedd] = [ad, *histories[schedd]]
    queues[schedd] = queue


_TEMPLATE: list[Any] = []


def template() -> Any:
    """The job ad new demo jobs start from: a real idle job captured from a real schedd."""
    if not _TEMPLATE:
        from .classads import parse_ads
        from .demo import DATA

        ads = parse_ads((DATA / "jobs-default.ads").read_text(encoding="utf-8"))
        _TEMPLATE.append(([ad for ad in ads if ad.get("JobStatus") == 1] or ads)[-1])
    return _TEMPLATE[0]


def _id(ad: Any) -> str:
    return f"{ad.get('ClusterId')}.{ad.get('ProcId')}"


# ------------------------------------------------------------------------ the demo schedd

def serve(journal: str, request: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """The acting child's work on the demo pool: authenticate, then do what `request` asks,
    with the journal locked, and append the changes it made."""
    try:
        user, method, scope = authenticate(environ)
        kind = request.get("kind")
        if kind == "whoami":
            from .demo import SCHEDD_FILES
            if request.get("schedd") not in (None, *SCHEDD_FILES):
                raise Refused("not_found", f"no schedd named {request.get('schedd')!r} is known")
            return {"user": user, "method": method}
        if kind not in ("act", "edit", "submit"):
            raise Refused("bad_request", f"unknown request kind {kind!r}")
        claimed = request.get("user")
        if claimed and claimed != user:
            raise Refused("mismatch", f"the token maps to {user}, not to {claimed}")
        if "condor:/WRITE" not in scope.split():
            raise Refused("permission_denied", "the token's scope does not allow WRITE")
        return _locked(journal, user, request)
    except Refused as exc:
        return {"error": exc.kind, "message": exc.message}


def _locked(journal: str, user: str, request: Mapping[str, Any]) -> dict[str, Any]:
    from .demo import DemoPool

    with open(journal, "ab") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            pool = DemoPool(journal=journal)
            pool.catch_up(locked=True)
            schedd = request.get("schedd")
            if schedd is not None and (not isinstance(schedd, str) or schedd not in pool.queues):
                raise Refused("not_found", f"no schedd named {schedd!r} is known to the collector")
            name = schedd or pool.default_schedd
            schedd_ = DemoSchedd(pool.queues[name], pool.histories[name], user)
            result, ops = schedd_.do(request)
            if ops:
                lines = "".join(json.dumps({**op, "schedd": name}) + "\n" for op in ops)
                handle.write(lines.encode("utf-8"))
                handle.flush()
            return {"user": user, **result}
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class DemoSchedd:
    """One schedd's queue as `user` sees it: what each request does, as journal ops."""

    def __init__(self, queue: Sequence[Any], history: Sequence[Any], user: str) -> None:
        self.queue, self.history, self.user = queue, history, user
        self.owner = user.split("@", 1)[0]

    def do(self, request: Mapping[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        kind = request["kind"]
        if kind == "submit":
            return self.submit(request)
        jobs, not_found = self.select(request)
        if kind == "edit":
            return self.edit(jobs, request.get("attributes"))
        return self.act(jobs, not_found, request.get("action"), request.get("reason"))

    def owns(self, ad: Any) -> bool:
        return bool(ad.get("Owner") == self.owner)

    def select(self, request: Mapping[str, Any]) -> tuple[list[Any], int]:
        """The queued jobs the request names (ids or constraint), and how many ids matched none."""
        from . import classads
        from .errors import BadRequest

        ids, constraint = request.get("jobs"), request.get("constraint")
        if (ids is None) == (constraint is None):
            raise Refused("bad_request", "give either job ids or a constraint")
        if constraint is not None:
            if not isinstance(constraint, str):
                raise Refused("bad_request", "the constraint must be a string")
            try:
                expr = classads.check_expression(constraint)
            except BadRequest as exc:
                raise Refused("bad_request", exc.message) from None
            return [ad for ad in self.queue if classads.matches(expr, ad)], 0
        if not isinstance(ids, list) or not all(
                isinstance(i, str) and re.fullmatch(r"[0-9]+(\.[0-9]+)?", i) for i in ids):
            raise Refused("bad_request", "job ids are strings such as \"5\" or \"5.0\"")
        jobs: list[Any] = []
        missing = 0
        for job in dict.fromkeys(ids):
            found = [ad for ad in self.queue
                     if (_id(ad) == job if "." in job else str(ad.get("ClusterId")) == job)]
            jobs.extend(ad for ad in found if all(ad is not j for j in jobs))
            missing += not found
        return jobs, missing

    def act(self, jobs: Sequence[Any], not_found: int, action: Any,
            reason: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        if action not in ("hold", "release", "remove", "vacate"):
            raise Refused("bad_request", f"unknown action {action!r}")
        outcome = dict.fromkeys(("success", "not_found", "permission_denied", "bad_status",
                                 "already_done", "error"), 0)
        outcome["not_found"] = not_found
        now = str(int(time.time()))
        why = json.dumps(str(reason or "by the restd (demo pool)"))
        ops = []
        change: dict[str, str | None] = {}
        for ad in jobs:
            status = ad.get("JobStatus")
            if not self.owns(ad):
                result = "permission_denied"
            elif action == "hold":
                result = ("already_done" if status == 5 else "bad_status" if status in (3, 4)
                          else "success")
                change = {"JobStatus": "5", "LastJobStatus": str(status), "HoldReason": why,
                          "HoldReasonCode": "1", "EnteredCurrentStatus": now}
            elif action == "release":
                result = "success" if status == 5 else "bad_status"
                change = {"JobStatus": "1", "LastJobStatus": "5", "ReleaseReason": why,
                          "HoldReason": None, "HoldReasonCode": None,
                          "EnteredCurrentStatus": now}
            elif action == "remove":
                result = "already_done" if status == 3 else "success"
                change = {"JobStatus": "3", "LastJobStatus": str(status), "RemoveReason": why,
                          "EnteredCurrentStatus": now, "CompletionDate": now}
            else:  # vacate
                result = "success" if status == 2 else "bad_status"
                change = {"JobStatus": "1", "LastJobStatus": "2", "EnteredCurrentStatus": now}
            outcome[result] += 1
            if result == "success":
                ops.append({"op": "leave" if action == "remove" else "set", "id": _id(ad),
                            "attrs": change})
        return {"matched": len(jobs), "outcome": outcome}, ops

    def edit(self, jobs: Sequence[Any],
             attributes: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        if not isinstance(attributes, dict) or not attributes:
            raise Refused("bad_request", "give the attributes to edit, each with an expression")
        texts = {}
        for name, text in attributes.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(name)) or not isinstance(text, str):
                raise Refused("bad_request", f"{name!r} = {text!r} is not an attribute assignment")
            texts[name] = _expression(text)
            if name.lower() in IMMUTABLE:
                raise Refused("permission_denied", f"the schedd does not let jobs' {name} be edited")
        if jobs and not any(self.owns(ad) for ad in jobs):
            raise Refused("permission_denied", f"{self.user} owns none of the jobs to edit")
        ops = [{"op": "set", "id": _id(ad), "attrs": texts} for ad in jobs if self.owns(ad)]
        return {"matched": len(jobs), "edited": len(ops)}, ops

    def submit(self, request: Mapping[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        description, count, items = submit_parts(request)
        rows: list[dict[str, str]] = [dict(i) for i in items] if items else [{}]
        procs = max(count, 1) * len(rows)
        if procs > MAX_PROCS:
            raise Refused("refused", f"the demo schedd takes at most {MAX_PROCS} jobs a submit")
        cluster = 1 + max((int(ad.get("ClusterId") or 0) for ad in (*self.queue, *self.history)),
                          default=0)
        now = str(int(time.time()))
        ads = []
        for proc in range(procs):
            macros = {"cluster": str(cluster), "clusterid": str(cluster), "process": str(proc),
                      "procid": str(proc), **{k.lower(): v for k, v in rows[proc % len(rows)].items()}}
            attrs = self._job(description, macros)
            attrs.update({"ClusterId": str(cluster), "ProcId": str(proc), "JobStatus": "1",
                          "Owner": json.dumps(self.owner), "User": json.dumps(self.user),
                          "QDate": now, "EnteredCurrentStatus": now, "TotalSubmitProcs": str(procs),
                          "GlobalJobId": json.dumps(f"vm#{cluster}.{proc}#{now}")})
            ads.append(attrs)
        return {"cluster": cluster, "procs": list(range(procs))}, [{"op": "add", "ads": ads}]

    def _job(self, description: Mapping[str, Any], macros: Mapping[str, str]) -> dict[str, str | None]:
        """A job ad's attributes: a captured job ad's, then the description's."""
        attrs: dict[str, str | None] = {name: None for name in RUN_ATTRS}
        attrs["Iwd"] = json.dumps(f"/home/{self.owner}")
        for key, raw in description.items():
            if not isinstance(raw, (str, int, float)) or isinstance(raw, bool):
                raise Refused("bad_request", f"submit key {key!r} needs a string value")
            value = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                           lambda m: macros.get(m.group(1).lower(), m.group(0)), str(raw))
            lower = str(key).lower()
            if lower.startswith("+") or lower.startswith("my."):
                name = str(key)[1:] if lower.startswith("+") else str(key)[3:]
                if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                    raise Refused("bad_request", f"{key!r} does not name a job attribute")
                if name.lower() in IMMUTABLE:
                    raise Refused("permission_denied", f"the schedd sets {name} itself")
                attrs[name] = _expression(value)
            elif lower == "accounting_group_user" and value != self.owner:
                raise Refused("permission_denied",
                              f"{self.user} may not account jobs to another user ({value})")
            elif lower in SUBMIT_KEYS:
                name, how = SUBMIT_KEYS[lower]
                attrs[name] = json.dumps(value) if how == "string" else _expression(value)
            if lower == "executable" and not value:
                raise Refused("bad_request", "executable is empty")
        if "Cmd" not in attrs:
            raise Refused("bad_request", "the submit description has no executable")
        return attrs


def _expression(text: str) -> str:
    from . import classads
    from .errors import BadRequest

    try:
        return str(classads.check_expression(text))
    except BadRequest:
        raise Refused("bad_request", f"{text!r} is not a ClassAd expression") from None
