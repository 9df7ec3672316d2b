"""What acting on jobs means: who acts, on which jobs, what the schedd said, and the audit log.

The schedd decides, never this daemon: every action runs in a fresh process holding only the
requesting user's token (`run`, the adapter's), so the schedd authenticates that user and applies
its own authorization. The daemon's part is to check the request, find the jobs it names as a
read would (hidden attributes and RESTD_USER_JOB_SCOPE apply, and a constraint matching more
than RESTD_ACTION_CONFIRM_ABOVE jobs waits for confirm), hand over the job ids, report what the
schedd answered, log it, and drop its cached answers.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Callable
from urllib.parse import quote

from . import condor, hiding, submits
from .auth import Identity, Unauthorized, token_required
from .errors import (
    BadRequest,
    Conflict,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    RestdError,
    Timeout,
    Unavailable,
)
from .htctokens import TokenUsers
from .idempotency import Replays
from .queries import Queries
from .responses import Reply
from .settings import Settings

audit = logging.getLogger("condor_restd.audit")

Run = Callable[[Sequence[str], str, Mapping[str, Any], float], dict[str, Any]]

ACTIONS = ("hold", "release", "remove", "vacate")
OUTCOMES = ("success", "not_found", "permission_denied", "bad_status", "already_done", "error")
MAX_REASON = 1000
MAX_ACTION_JOBS = 10000  # jobs one action or edit may touch; more: narrow it, or several requests
MAX_EDITS = 50  # attributes one edit may set
MAX_EDIT_VALUE = 10000
AUDITED_IDS = 20  # job ids the audit line names; the rest are counted


class NotImplementedHere(RestdError):
    status = 501


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _where(schedd: str | None) -> str:
    return schedd or "DEFAULT"


def _jobs_text(ids: Sequence[tuple[int, int]]) -> str:
    shown = ", ".join("%d.%d" % job for job in ids[:AUDITED_IDS])
    return shown + (f" and {len(ids) - AUDITED_IDS} more" if len(ids) > AUDITED_IDS else "")


def status_of(outcome: Mapping[str, int]) -> int:
    """200 when every job was done (or already was), 403 when the schedd denied them all, 404
    when none was found, 409 when none was in a state for it, 207 for a mix."""
    total = sum(outcome.values())
    if total == 0 or outcome.get("not_found", 0) == total:
        return 404
    if outcome.get("success", 0) + outcome.get("already_done", 0) == total:
        return 200
    for kind, status in (("permission_denied", 403), ("bad_status", 409)):
        if outcome.get(kind, 0) == total:
            return status
    return 207


class Actions:
    """Hold, release, remove, vacate, edit and submit, each with the requester's own token."""

    def __init__(self, settings: Settings, queries: Queries, argv: Sequence[str] | None,
                 run: Run, users: TokenUsers | None = None, replays: Replays | None = None) -> None:
        self.settings, self.queries, self.argv, self.run = settings, queries, argv, run
        self.users = users if users is not None else TokenUsers(self.whoami)
        self.replays = replays if replays is not None else Replays()

    # ----------------------------------------------------------------------- plumbing

    def whoami(self, token: str) -> str:
        """Who HTCondor says the token's user is (a ping to the default schedd with it)."""
        answer = self._child(token, {"kind": "whoami", "schedd": None}, "check a token")
        user = answer.get("user")
        if not isinstance(user, str) or "@" not in user:
            raise Unauthorized("HTCondor does not map this token to a user")
        return user

    def _child(self, token: str, request: Mapping[str, Any], what: str) -> dict[str, Any]:
        """One request run in a fresh process with the token; the schedd's refusals as errors."""
        if self.argv is None:
            raise NotImplementedHere("this pool cannot act on jobs")
        answer = self.run(self.argv, token, request, self.settings.query_timeout)
        kind = answer.get("error")
        if kind is None:
            return answer
        message = str(answer.get("message") or kind)
        if kind in ("unauthenticated", "mismatch"):
            self.users.forget(token)
            raise Unauthorized(f"HTCondor did not accept the token to {what}: {message}")
        if kind in ("permission_denied", "refused"):
            raise Forbidden(f"the schedd refused to {what}: {message}")
        if kind == "not_found":
            raise NotFound(message)
        if kind == "bad_request":
            raise BadRequest(f"cannot {what}: {message}")
        raise Unavailable(f"could not {what}: {message}")

    def _changing(self, token: str, request: Mapping[str, Any], what: str) -> dict[str, Any]:
        """A request that may change jobs: whatever comes of it, cached answers are dropped."""
        try:
            return self._child(token, request, what)
        finally:
            self.queries.forget()

    def require(self, token: str | None) -> str:
        """The request's token; 405 when actions are off, 401 when there is none (both before
        anything else is looked at)."""
        if not self.settings.actions:
            raise MethodNotAllowed("acting on jobs is turned off (RESTD_ACTIONS)")
        if token is None:
            raise token_required()
        return token

    def _begin(self, token: str | None) -> tuple[str, Identity]:
        user = self.users.user(self.require(token))
        return user, Identity(user, user in self.settings.admin_users)

    def _keyed(self, user: str, key: str | None, fingerprint: str,
               attempt: Callable[[], Reply]) -> Reply:
        if key is None:
            return attempt()
        reply, replayed = self.replays.once(user, key, fingerprint, attempt)
        if replayed:
            return Reply(reply.body, reply.status, {**reply.headers, "Idempotent-Replayed": "true"})
        return reply

    def _targets(self, schedd: str | None, cluster: int | None, proc: int | None,
                 body: Mapping[str, Any], who: Identity) -> list[tuple[int, int]]:
        """The jobs the request names; 404 for none, 409 to confirm many."""
        constraint = body.get("constraint")
        if constraint is not None and (not isinstance(constraint, str) or not constraint.strip()):
            raise BadRequest("constraint must be a ClassAd expression in a string")
        if cluster is None and constraint is None:
            raise BadRequest("name the jobs: /{clusterid}[/{procid}] in the URL, or a constraint "
                             "in the body")
        confirm = body.get("confirm")
        if confirm is not None and (isinstance(confirm, bool) or not isinstance(confirm, int)
                                    or confirm < 0):
            raise BadRequest("confirm is the number of jobs you agree to act on")
        ids = self.queries.job_ids(schedd, cluster, proc, constraint, who)
        if not ids:
            raise NotFound("no job in the queue matches" + (" (or none you may see)" if
                           self.settings.user_job_scope == "OWN" else ""))
        if len(ids) > MAX_ACTION_JOBS:
            raise BadRequest(f"{len(ids)} jobs match; one request acts on at most "
                             f"{MAX_ACTION_JOBS}: narrow the constraint")
        if proc is None and len(ids) > self.settings.action_confirm_above and (
                confirm is None or confirm < len(ids)):
            raise Conflict(f"{len(ids)} jobs match; send the request again with confirm: "
                           f"{len(ids)} to act on them all", matched=len(ids))
        return ids

    def _audit(self, what: str, user: str, schedd: str | None, detail: str, result: str) -> None:
        audit.info("ACTION %s by %s on schedd %s: %s: %s", what, user, _where(schedd),
                   detail, result)

    def _failed(self, what: str, user: str, schedd: str | None, detail: str,
                error: RestdError) -> None:
        self._audit(what, user, schedd, detail, f"refused ({error.status}): {error.message!r}")

    # ------------------------------------------------------------------------ actions

    def act(self, token: str | None, schedd: str | None, action: str, cluster: int | None,
            proc: int | None, body: Mapping[str, Any], key: str | None = None) -> Reply:
        """Hold, release, remove or vacate a job, a cluster, or the jobs a constraint matches."""
        if action not in ACTIONS:
            raise NotFound(f"no action {action!r}; the actions are {', '.join(ACTIONS)}")
        unknown = sorted(set(body) - {"reason", "constraint", "confirm"})
        if unknown:
            raise BadRequest(f"an action takes reason, constraint and confirm, not {', '.join(unknown)}")
        reason = body.get("reason")
        if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON
                                   or not reason.isprintable()):
            raise BadRequest(f"reason must be one line of text, at most {MAX_REASON} characters")
        user, who = self._begin(token)
        fingerprint = _fingerprint("act", schedd, action, cluster, proc, body)
        return self._keyed(user, key, fingerprint,
                           lambda: self._act(token or "", user, who, schedd, action, cluster,
                                             proc, body, reason))

    def _act(self, token: str, user: str, who: Identity, schedd: str | None, action: str,
             cluster: int | None, proc: int | None, body: Mapping[str, Any],
             reason: str | None) -> Reply:
        detail = f"cluster {cluster}" + (f" proc {proc}" if proc is not None else "") \
            if cluster is not None else ""
        if body.get("constraint") is not None:
            detail += (" and " if detail else "") + f"constraint {body['constraint']!r}"
        try:
            ids = self._targets(schedd, cluster, proc, body, who)
            detail += f" ({len(ids)} jobs: {_jobs_text(ids)})"
            answer = self._changing(token, {
                "kind": "act", "schedd": schedd, "action": action, "reason": reason,
                "jobs": ["%d.%d" % job for job in ids], "constraint": None, "user": user,
            }, action + " jobs")
        except RestdError as error:
            self._failed(action, user, schedd, detail, error)
            raise
        outcome = {kind: int(answer.get("outcome", {}).get(kind, 0)) for kind in OUTCOMES}
        status = status_of(outcome)
        reasons = answer.get("reasons") or []
        counts = ", ".join(f"{k} {v}" for k, v in outcome.items() if v) or "nothing done"
        self._audit(action, user, schedd, detail,
                    counts + (f"; the schedd said: {reasons!r}" if reasons else ""))
        return Reply({"action": action, "schedd": _where(schedd), "user": user,
                      "matched": len(ids), "outcome": outcome,
                      "jobs": ["%d.%d" % job for job in ids][:MAX_ACTION_JOBS],
                      "status": status}, status)

    # --------------------------------------------------------------------------- edit

    def edit(self, token: str | None, schedd: str | None, cluster: int | None,
             proc: int | None, body: Mapping[str, Any], key: str | None = None) -> Reply:
        """Set job attributes (those RESTD_EDIT_ATTRIBUTES lists) to ClassAd expressions."""
        unknown = sorted(set(body) - {"attributes", "constraint", "confirm"})
        if unknown:
            raise BadRequest(f"an edit takes attributes, constraint and confirm, not {', '.join(unknown)}")
        user, who = self._begin(token)
        values = self._edits(body.get("attributes"))
        fingerprint = _fingerprint("edit", schedd, cluster, proc, body)

        def attempt() -> Reply:
            detail = ", ".join(f"{name} = {value}" for name, value in values.items())
            try:
                ids = self._targets(schedd, cluster, proc, body, who)
                detail += f" on {len(ids)} jobs: {_jobs_text(ids)}"
                answer = self._changing(token or "", {
                    "kind": "edit", "schedd": schedd, "jobs": ["%d.%d" % job for job in ids],
                    "constraint": None, "attributes": values, "user": user}, "edit jobs")
            except RestdError as error:
                self._failed("edit", user, schedd, detail, error)
                raise
            edited = int(answer.get("edited", 0))
            self._audit("edit", user, schedd, detail, f"edited {edited}")
            status = 200 if edited == len(ids) else 207 if edited else 404
            return Reply({"action": "edit", "schedd": _where(schedd), "user": user,
                          "matched": len(ids), "edited": edited, "attributes": values,
                          "status": status}, status)

        return self._keyed(user, key, fingerprint, attempt)

    def _edits(self, given: Any) -> dict[str, str]:
        if not isinstance(given, dict) or not given:
            raise BadRequest('attributes must be an object of attribute names and ClassAd '
                             'expressions, like {"JobPrio": "5"}')
        if len(given) > MAX_EDITS:
            raise BadRequest(f"one edit sets at most {MAX_EDITS} attributes")
        if not self.settings.edit_attributes:
            raise Forbidden("no job attribute may be edited here (RESTD_EDIT_ATTRIBUTES is empty)")
        hidden = self.settings.hide_job_attrs
        values = {}
        for name, value in given.items():
            if name.lower() not in self.settings.edit_attributes:
                raise Forbidden(f"{name!r} may not be edited here; RESTD_EDIT_ATTRIBUTES lists "
                                f"{', '.join(sorted(self.settings.edit_attributes))}")
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, (int, float)):
                text = repr(value)
            elif isinstance(value, str) and value.strip() and len(value) <= MAX_EDIT_VALUE:
                text = value
            else:
                raise BadRequest(f"{name}'s value must be a ClassAd expression in a string (at "
                                 f"most {MAX_EDIT_VALUE} characters), a number or a boolean")
            condor.check_size(text, f"{name}'s value")
            if hidden:
                hiding.refuse_hidden_refs(text, hidden)
            values[name] = condor.unparse(text)  # as the ClassAd library writes it: one expression
        return values

    # ------------------------------------------------------------------------- submit

    def submit(self, token: str | None, schedd: str | None, body: Mapping[str, Any],
               key: str | None = None) -> Reply:
        """Submit jobs from a description; 201 with the cluster and a Location."""
        user, _ = self._begin(token)
        submission = submits.check(body, user)
        fingerprint = _fingerprint("submit", schedd, body)

        def attempt() -> Reply:
            detail = (f"{submission.jobs()} jobs, executable "
                      f"{submission.description.get('executable', '(none)')!r}")
            try:
                answer = self._changing(token or "", {
                    "kind": "submit", "schedd": schedd, "description": submission.description,
                    "count": submission.count, "itemdata": submission.itemdata or None,
                    "user": user}, "submit jobs")
            except Timeout as error:
                # the schedd may have made the jobs: the key keeps this answer, so that a retry
                # does not submit them again
                self._failed("submit", user, schedd, detail, error)
                return Reply({"message": "the schedd did not answer in time; the jobs may have "
                              "been submitted: look in the queue before submitting again",
                              "status": 504}, 504)
            except RestdError as error:
                self._failed("submit", user, schedd, detail, error)
                raise
            cluster = int(answer["cluster"])
            jobs = [f"{cluster}.{int(proc)}" for proc in answer.get("procs", [])]
            self._audit("submit", user, schedd, detail, f"cluster {cluster}, {len(jobs)} jobs")
            return Reply({"schedd": _where(schedd), "user": user, "cluster": cluster,
                          "jobs": jobs, "status": 201}, 201,
                         {"Location": f"/v1/jobs/{quote(_where(schedd), safe='@')}/{cluster}"})

        return self._keyed(user, key, fingerprint, attempt)
