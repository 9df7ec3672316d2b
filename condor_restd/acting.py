"""Acting on jobs as a user: a fresh interpreter per call, holding nothing but the user's token."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import Timeout, Unavailable

log = logging.getLogger("condor_restd.acting")

CHILD_MODULE = "condor_restd.acting"  # what `python -m` runs in the child (tests swap it)
IDTOKEN_ALGS = frozenset({"HS256", "HS384", "HS512"})
KEEP = ("PATH", "CONDOR_CONFIG", "HOME", "LANG", "PYTHONPATH")
ERRORS = frozenset({"unauthenticated", "mismatch", "permission_denied", "not_found", "refused",
                    "unavailable", "bad_request"})
MAX_TOKEN = 16384  # bytes; IDTOKENs and SciTokens are well under 2 KiB
MAX_REQUEST = 1 << 20  # bytes of request JSON a child reads
JWT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")


# --------------------------------------------------------------------------- the front's side

def token_alg(token: str) -> str | None:
    """The `alg` of a JWT's header, or None when `token` is not a JWT."""
    if len(token) > MAX_TOKEN or not JWT.fullmatch(token):
        return None
    head = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (binascii.Error, ValueError):
        return None
    alg = header.get("alg") if isinstance(header, dict) else None
    return alg if isinstance(alg, str) else None


def child_environ(environ: Mapping[str, str], directory: str, alg: str) -> dict[str, str]:
    """The acting child's whole environment, built from scratch: where HTCondor is, and the
    token in `directory` as the only credential its client may offer. No security setting of
    the daemon's, no bearer token of its own, and no pool key: the child can mint nothing."""
    env = {name: environ[name] for name in KEEP if name in environ}
    env.update({name: value for name, value in environ.items()
                if name.upper().startswith("_CONDOR_")
                and not name.upper().startswith(("_CONDOR_SEC_", "_CONDOR_SCITOKENS_"))})
    token, nothing = os.path.join(directory, "token"), os.path.join(directory, "none")
    if alg in IDTOKEN_ALGS:
        env.update({"_CONDOR_SEC_TOKEN_DIRECTORY": directory,
                    "_CONDOR_SEC_TOKEN_SYSTEM_DIRECTORY": directory,
                    "_CONDOR_SEC_CLIENT_AUTHENTICATION_METHODS": "IDTOKENS",
                    "_CONDOR_SCITOKENS_FILE": nothing})
    else:
        env.update({"BEARER_TOKEN_FILE": token, "_CONDOR_SCITOKENS_FILE": token,
                    "_CONDOR_SEC_TOKEN_DIRECTORY": nothing,
                    "_CONDOR_SEC_TOKEN_SYSTEM_DIRECTORY": nothing,
                    "_CONDOR_SEC_CLIENT_AUTHENTICATION_METHODS": "SCITOKENS"})
    env.update({"_CONDOR_SEC_PASSWORD_DIRECTORY": nothing,
                "_CONDOR_SEC_TOKEN_POOL_SIGNING_KEY_FILE": nothing,
                "_CONDOR_SEC_PASSWORD_FILE": nothing})
    return env


def run(argv: Sequence[str], token: str, request: Mapping[str, Any],
        timeout: float) -> dict[str, Any]:
    """Do `request` as the token's user in a new child process started with `argv` (a
    backend's acting_argv()), and return its answer: a result, or {"error", "message"}.
    Raises Timeout when it takes longer than `timeout` s (it is killed), Unavailable when it
    crashes or answers nonsense."""
    alg = token_alg(token)
    if alg is None:
        return {"error": "unauthenticated", "message": "the bearer token is not a JWT"}
    directory = tempfile.mkdtemp(prefix="restd-act-")
    try:
        os.chmod(directory, 0o700)
        fd = os.open(os.path.join(directory, "token"),
                     os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(token + "\n")
        return _launch([sys.executable, "-m", CHILD_MODULE, *argv],
                       child_environ(os.environ, directory, alg), directory,
                       json.dumps(dict(request)), timeout, token)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _launch(command: list[str], env: dict[str, str], cwd: str, request: str, timeout: float,
            token: str) -> dict[str, Any]:
    kind = _kind(request)
    try:
        child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, env=env, cwd=cwd, close_fds=True,
                                 start_new_session=True)
    except OSError as exc:
        log.error("cannot start an acting process: %s", exc)
        raise Unavailable("the daemon cannot start a process to act with") from None
    try:
        out, err = child.communicate(request.encode("utf-8"), timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(child)
        log.warning("acting process %d (%s) killed after %g s", child.pid, kind, timeout)
        raise Timeout(f"the schedd did not answer within {timeout:g} s; the attempt was "
                      "stopped (it may or may not have taken effect)") from None
    text = scrub(out.decode("utf-8", "replace"), token)
    try:
        answer = json.loads(text) if child.returncode == 0 else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or not _valid(answer):
        tail = scrub(err.decode("utf-8", "replace"), token).strip()[-800:]
        log.error("acting process %d (%s) failed (exit status %s): %s", child.pid, kind,
                  child.returncode, tail or text.strip()[-200:] or "no output")
        raise Unavailable("the process acting for the user failed; see the daemon log")
    log.debug("acting process %d (%s) answered", child.pid, kind)
    return dict(answer)


def _kill(child: subprocess.Popen[bytes]) -> None:
    """Kill the child and whatever it started (its own session), and reap it."""
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except OSError:
        child.kill()
    try:
        child.communicate(timeout=5)
    except subprocess.TimeoutExpired:  # pragma: no cover - a SIGKILLed process always ends
        child.wait()


def _kind(request: str) -> str:
    try:
        return str(json.loads(request).get("kind"))[:20]
    except (ValueError, AttributeError):
        return "?"


def _valid(answer: Any) -> bool:
    if not isinstance(answer, dict):
        return False
    if "error" in answer:
        return answer["error"] in ERRORS and isinstance(answer.get("message"), str)
    return True


def scrub(text: str, token: str) -> str:
    """`text` without the token, or any long part of it."""
    for part in sorted({token, *token.split(".")}, key=len, reverse=True):
        if len(part) >= 8:
            text = text.replace(part, "[token]")
    return text


# --------------------------------------------------------------------------- the child's side

def main(argv: Sequence[str] | None = None) -> int:
    """python -m condor_restd.acting --pool NAME | --demo JOURNAL: read one request on standard
    input, do it as the token in the environment maps, write one JSON object."""
    args = list(sys.argv[1:] if argv is None else argv)
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # whatever else prints (the bindings, warnings) goes to standard error
    if len(args) != 2 or args[0] not in ("--pool", "--demo"):
        print("usage: python -m condor_restd.acting --pool NAME | --demo JOURNAL", file=sys.stderr)
        return 2
    result = answer(args[0], args[1], sys.stdin.read(MAX_REQUEST + 1))
    out.write(json.dumps(result) + "\n")
    out.flush()
    return 0


def answer(mode: str, where: str, text: str) -> dict[str, Any]:
    """The child's answer to the request `text`, from the real pool or the demo journal."""
    try:
        request = json.loads(text) if len(text) <= MAX_REQUEST else None
    except ValueError:
        request = None
    if not isinstance(request, dict):
        return {"error": "bad_request", "message": "the request is not a JSON object"}
    if mode == "--demo":
        from . import demoacts
        return demoacts.serve(where, request, os.environ)
    from . import actor
    return actor.serve(where or None, request)


if __name__ == "__main__":
    sys.exit(main())
