"""The exceptions condor_restd raises, each carrying its HTTP status."""

from __future__ import annotations

from typing import Any


class RestdError(Exception):
    """An error a client is told about: a status code and a human sentence."""

    status = 500

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra
        self.headers: dict[str, str] = {}

    def body(self) -> dict[str, Any]:
        return {"message": self.message, "status": self.status, **self.extra}


class BadRequest(RestdError):
    status = 400


class NotFound(RestdError):
    status = 404


class MethodNotAllowed(RestdError):
    status = 405


class NotAcceptable(RestdError):
    status = 406


class Forbidden(RestdError):
    """403: the requester may not do this (the schedd refused, or the daemon's policy)."""

    status = 403


class Conflict(RestdError):
    """409: the jobs are not in a state for this, or a confirmation is needed first."""

    status = 409


class TooLarge(RestdError):
    status = 413


class UnsupportedMediaType(RestdError):
    status = 415


class Unprocessable(RestdError):
    """422: well-formed, but not something this request may do (a reused Idempotency-Key)."""

    status = 422


class Unavailable(RestdError):
    """The collector or a schedd cannot be reached, or the daemon is saturated."""

    status = 503

    def __init__(self, message: str, retry_after: int = 5, **extra: Any) -> None:
        super().__init__(message, **extra)
        self.headers["Retry-After"] = str(retry_after)


class Timeout(RestdError):
    status = 504


class ConfigError(Exception):
    """A RESTD_* setting has a value the daemon cannot use."""

    def __init__(self, knob: str, value: object, reason: str) -> None:
        super().__init__(f"{knob} = {value!r}: {reason}")
        self.knob = knob
        self.value = value
        self.reason = reason
