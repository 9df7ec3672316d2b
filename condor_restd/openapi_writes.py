"""The OpenAPI description of acting on jobs: POST and PATCH on /v1/jobs, their bodies and answers."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]
JSON = "application/json"
ACTIONS = ("hold", "release", "remove", "vacate")
OUTCOMES = ("success", "not_found", "permission_denied", "bad_status", "already_done", "error")
JOB_ID = "^[0-9]+\\.[0-9]+$"


def _ref(kind: str, name: str) -> Schema:
    return {"$ref": f"#/components/{kind}/{name}"}


def _body(name: str, description: str) -> Schema:
    return {"required": True, "description": description,
            "content": {JSON: {"schema": _ref("schemas", name)}}}


def schemas() -> dict[str, Schema]:
    count = {"type": "integer", "minimum": 0}
    constraint = {"type": "string", "minLength": 1,
                  "description": "A ClassAd expression; the jobs it matches (with the URL's "
                                 "cluster, of that cluster)."}
    confirm = {"type": "integer", "minimum": 0,
               "description": "The most jobs you agree to touch: needed when more than "
                              "RESTD_ACTION_CONFIRM_ABOVE match (else 409 with `matched`)."}
    outcome = {"type": "object", "required": list(OUTCOMES), "additionalProperties": False,
               "properties": {name: count for name in OUTCOMES},
               "description": "What the schedd reported for the matched jobs."}
    written = {"schedd": {"type": "string"}, "user": {"type": "string",
               "description": "Who HTCondor said the token is for (user@domain)."},
               "status": {"type": "integer"}}
    return {
        "ActionRequest": {
            "type": "object", "additionalProperties": False,
            "properties": {"reason": {"type": "string", "maxLength": 1000,
                                      "description": "For hold and remove: recorded by the "
                                                     "schedd (HoldReason, RemoveReason)."},
                           "constraint": constraint, "confirm": confirm}},
        "ActionResult": {
            "type": "object", "required": ["action", "matched", "outcome", "jobs", *written],
            "properties": {"action": {"type": "string", "enum": list(ACTIONS)},
                           "matched": count, "outcome": outcome,
                           "jobs": {"type": "array", "items": {"type": "string", "pattern": JOB_ID}},
                           **written}},
        "EditRequest": {
            "type": "object", "additionalProperties": False, "required": ["attributes"],
            "properties": {
                "attributes": {"type": "object", "minProperties": 1, "maxProperties": 50,
                               "additionalProperties": {"type": ["string", "number", "boolean"]},
                               "description": "Attribute names (from RESTD_EDIT_ATTRIBUTES) "
                                              "and their new values: a ClassAd expression in a "
                                              "string, or a number or boolean."},
                "constraint": constraint, "confirm": confirm}},
        "EditResult": {
            "type": "object", "required": ["action", "matched", "edited", "attributes", *written],
            "properties": {"action": {"const": "edit"}, "matched": count, "edited": count,
                           "attributes": {"type": "object",
                                          "additionalProperties": {"type": "string"}},
                           **written}},
        "SubmitRequest": {
            "type": "object", "additionalProperties": False, "required": ["description"],
            "properties": {
                "description": {"type": "object", "minProperties": 1, "maxProperties": 200,
                                "additionalProperties": {"type": ["string", "number", "boolean"]},
                                "description": "Submit commands, as in a submit file "
                                               "(executable, arguments, +Attribute, ...)."},
                "count": {"type": "integer", "minimum": 0, "maximum": 10000,
                          "description": "Jobs to make (per itemdata row); 0 is one."},
                "itemdata": {"type": "array", "items": {
                    "type": "object", "additionalProperties": {"type": ["string", "number",
                                                                        "boolean"]}},
                    "description": "One job per row; its keys are submit variables, $(name)."}}},
        "SubmitResult": {
            "type": "object", "required": ["cluster", "jobs", *written],
            "properties": {"cluster": count,
                           "jobs": {"type": "array", "items": {"type": "string", "pattern": JOB_ID}},
                           **written}},
    }


def _write(operation_id: str, summary: str, description: str, params: list[Schema],
           body: Schema, results: dict[str, Schema]) -> Schema:
    responses = dict(results)
    for code, name in (("400", "BadRequest"), ("401", "Unauthorized"), ("403", "Forbidden"),
                       ("404", "NotFound"), ("405", "MethodNotAllowed"), ("409", "Conflict"),
                       ("413", "TooLarge"), ("414", "URITooLong"), ("415", "UnsupportedMediaType"),
                       ("422", "Unprocessable"), ("503", "Unavailable"), ("504", "Timeout")):
        responses.setdefault(code, _ref("responses", name))
    idempotency = {"name": "Idempotency-Key", "in": "header", "required": False,
                   "schema": {"type": "string", "pattern": "^[!-~]{1,255}$"},
                   "description": "A retry with the same key and body gets the first answer "
                                  "(Idempotent-Replayed: true) and does nothing again."}
    return {"operationId": operation_id, "tags": ["actions"], "summary": summary,
            "description": description + " Needs RESTD_ACTIONS = true (else 405) and a bearer "
                                         "token HTCondor accepts; the schedd decides.",
            "parameters": [*params, idempotency], "requestBody": body,
            "responses": responses, "security": [{"bearerAuth": []}]}


def _acted(status: str, description: str) -> Schema:
    return {"description": description,
            "content": {JSON: {"schema": _ref("schemas", "ActionResult")}}}


ACTED = {"200": _acted("200", "Every job was done, or already was."),
         "207": _acted("207", "A mix of outcomes: read `outcome`."),
         "403": _acted("403", "The schedd denied every job (or the token's user may not act)."),
         "409": _acted("409", "No job was in a state for the action; or (an error body with "
                              "`matched`) a big constraint waits for `confirm`.")}


def paths(param: dict[str, Schema]) -> dict[str, dict[str, Schema]]:
    """Method -> operation, by path: actions at literal paths, edit and submit beside the reads."""
    found: dict[str, dict[str, Schema]] = {}
    scopes = {"": ([param["schedd"]], "the jobs a constraint matches", "Constraint"),
              "/{clusterid}": ([param["schedd"], param["clusterid"]], "a cluster's jobs", "Cluster"),
              "/{clusterid}/{procid}": ([param["schedd"], param["clusterid"], param["procid"]],
                                        "one job", "Job")}
    for action in ACTIONS:
        for scope, (params, what, name) in scopes.items():
            found[f"/v1/jobs/{{schedd}}{scope}/{action}"] = {"post": _write(
                f"{action}{name}", f"{action.title()} {what}",
                f"{action.title()} {what}, as the token's user.", params,
                _body("ActionRequest", "A reason (hold, remove), a constraint, a confirmation."),
                ACTED)}
    edited = {"200": {"description": "Every matched job was edited.",
                      "content": {JSON: {"schema": _ref("schemas", "EditResult")}}},
              "207": {"description": "Some of the matched jobs were edited.",
                      "content": {JSON: {"schema": _ref("schemas", "EditResult")}}}}
    for scope, (params, what, name) in scopes.items():
        found.setdefault(f"/v1/jobs/{{schedd}}{scope}", {})["patch"] = _write(
            f"edit{name}", f"Edit {what}", f"Set attributes of {what} (condor_qedit).", params,
            _body("EditRequest", "The attributes and their ClassAd expressions."), edited)
    found["/v1/jobs/{schedd}"]["post"] = _write(
        "submitJobs", "Submit jobs", "Submit jobs from a description in the submit language.",
        [param["schedd"]], _body("SubmitRequest", "The description, and how many jobs."),
        {"201": {"description": "Submitted: the cluster and its jobs.",
                 "headers": {"Location": {"description": "Where to read the new cluster.",
                                          "required": True, "schema": {"type": "string"}}},
                 "content": {JSON: {"schema": _ref("schemas", "SubmitResult")}}}})
    return found
