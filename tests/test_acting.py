"""acting.run: a fresh child per call, in a scratch environment holding only the user's token."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest

from condor_restd import acting
from condor_restd.errors import Timeout, Unavailable

ROOT = Path(__file__).resolve().parent.parent


def jwt_like(alg: str, sub: str = "alice@localhost") -> str:
    """A token shaped like a JWT with the given alg (its signature is not checked here)."""
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': alg, 'kid': 'POOL'})}.{part({'sub': sub, 'n': os.urandom(8).hex()})}." \
           f"{base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip('=')}"


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """Children run tests/acting_probe.py; the parent's environment holds things that must not leak."""
    monkeypatch.setattr(acting, "CHILD_MODULE", "tests.acting_probe")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    for name, value in {"_CONDOR_SEC_CLIENT_AUTHENTICATION_METHODS": "FS,IDTOKENS",
                        "_condor_SEC_TOKEN_DIRECTORY": "/etc/condor/tokens.d",
                        "_CONDOR_SEC_PASSWORD_FILE": "/etc/condor/passwords.d/POOL",
                        "_CONDOR_SCITOKENS_FILE": "/tmp/parent-scitoken",
                        "BEARER_TOKEN": "parent-bearer-token", "BEARER_TOKEN_FILE": "/tmp/parent",
                        "XDG_RUNTIME_DIR": "/run/user/1000", "CONDOR_INHERIT": "parent inherit",
                        "SOME_SECRET": "x", "_CONDOR_TOOL_DEBUG": "D_ALL",
                        "CONDOR_CONFIG": "/etc/condor/condor_config"}.items():
        monkeypatch.setenv(name, value)


def call(token: str, **request: Any) -> dict[str, Any]:
    return acting.run(["--pool", ""], token, {"kind": "whoami", **request}, 20)


def test_idtoken_gets_a_private_token_directory_and_nothing_of_the_parent(probe: None) -> None:
    token = jwt_like("HS256")
    seen = call(token)
    env, directory = seen["env"], seen["dir"]
    assert seen["dir_mode"] == 0o700 and seen["file_mode"] == 0o600 and seen["files"] == ["token"]
    assert seen["token_sha256"] == hashlib.sha256(token.encode()).hexdigest()
    assert env["_CONDOR_SEC_TOKEN_DIRECTORY"] == directory
    assert env["_CONDOR_SEC_TOKEN_SYSTEM_DIRECTORY"] == directory
    assert env["_CONDOR_SEC_CLIENT_AUTHENTICATION_METHODS"] == "IDTOKENS"
    assert "BEARER_TOKEN" not in env and "BEARER_TOKEN_FILE" not in env
    for name in ("_CONDOR_SEC_PASSWORD_DIRECTORY", "_CONDOR_SEC_TOKEN_POOL_SIGNING_KEY_FILE",
                 "_CONDOR_SEC_PASSWORD_FILE", "_CONDOR_SCITOKENS_FILE"):
        assert env[name].startswith(directory + "/") and not os.path.exists(env[name])
    assert not os.path.exists(directory)  # gone after the call


def test_any_other_jwt_is_a_scitoken_in_bearer_token_file(probe: None) -> None:
    token = jwt_like("ES256")
    seen = call(token)
    env, directory = seen["env"], seen["dir"]
    assert env["BEARER_TOKEN_FILE"] == os.path.join(directory, "token")
    assert env["_CONDOR_SEC_CLIENT_AUTHENTICATION_METHODS"] == "SCITOKENS"
    assert seen["token_sha256"] == hashlib.sha256(token.encode()).hexdigest()
    assert "BEARER_TOKEN" not in env
    assert not os.path.exists(env["_CONDOR_SEC_TOKEN_DIRECTORY"])
    assert not os.path.exists(env["_CONDOR_SEC_TOKEN_POOL_SIGNING_KEY_FILE"])
    assert not os.path.exists(directory)


@pytest.mark.parametrize("alg", ["HS256", "RS256"])
def test_the_environment_is_built_from_scratch(probe: None, alg: str) -> None:
    env = call(jwt_like(alg))["env"]
    kept = {"PATH", "CONDOR_CONFIG", "PYTHONPATH", "HOME", "LANG", "_CONDOR_TOOL_DEBUG"}
    assert env["CONDOR_CONFIG"] == "/etc/condor/condor_config" and env["_CONDOR_TOOL_DEBUG"] == "D_ALL"
    for name in ("SOME_SECRET", "XDG_RUNTIME_DIR", "CONDOR_INHERIT", "BEARER_TOKEN",
                 "_condor_SEC_TOKEN_DIRECTORY"):
        assert name not in env
    assert "/etc/condor" not in json.dumps({k: v for k, v in env.items() if "SEC_" in k})
    assert "parent" not in json.dumps(env)
    extra = {n for n in env if n not in kept and not n.startswith("_CONDOR_SEC_")}
    assert extra <= {"BEARER_TOKEN_FILE", "_CONDOR_SCITOKENS_FILE", "LC_CTYPE"}


def test_every_call_is_a_fresh_process_whoever_the_user(probe: None) -> None:
    alice, bob = jwt_like("HS256", "alice@localhost"), jwt_like("HS256", "bob@localhost")
    pids = [call(token)["pid"] for token in (alice, bob, alice, bob)]
    assert len(set(pids)) == 4 and os.getpid() not in pids


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_a_slow_child_is_killed_with_what_it_started(probe: None, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    started = time.monotonic()
    with pytest.raises(Timeout) as caught:
        acting.run([], jwt_like("HS256"), {"kind": "sleep", "report": str(report)}, 1.5)
    assert time.monotonic() - started < 10 and caught.value.status == 504
    seen = json.loads(report.read_text())
    assert not alive(seen["pid"])
    for _ in range(50):  # the grandchild, in the child's session, is killed too
        if not alive(seen["grandchild"]):
            break
        time.sleep(0.1)
    assert not alive(seen["grandchild"])
    assert not os.path.exists(seen["dir"])


@pytest.mark.parametrize("kind", ["crash", "garbage", "bad_kind"])
def test_a_crash_or_nonsense_is_unavailable_and_the_token_is_never_logged(
        probe: None, kind: str, caplog: pytest.LogCaptureFixture) -> None:
    token = jwt_like("HS256")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(Unavailable) as caught:
        acting.run([], token, {"kind": kind}, 20)
    assert caught.value.status == 503
    assert "acting process" in caplog.text
    for part in [token, *token.split(".")]:
        assert part not in caplog.text and part not in str(caught.value.body())


def test_the_token_never_comes_back_in_a_message(probe: None, caplog: pytest.LogCaptureFixture) -> None:
    token = jwt_like("HS256")
    caplog.set_level(logging.DEBUG)
    answer = acting.run([], token, {"kind": "leak"}, 20)
    assert answer["error"] == "unavailable" and "[token]" in answer["message"]
    assert token not in json.dumps(answer) and token not in caplog.text


@pytest.mark.parametrize("token", ["", "not a token", "a.b", "x" * 20000, "a.b.c\nd",
                                   "eyJub3QiOiJqc29u.e30.x"])
def test_what_is_not_a_jwt_is_refused_without_a_child(probe: None, token: str) -> None:
    assert acting.run([], token, {"kind": "whoami"}, 5)["error"] == "unauthenticated"


def test_token_alg() -> None:
    assert acting.token_alg(jwt_like("HS384")) == "HS384"
    assert acting.token_alg(jwt_like("none")) == "none"
    assert acting.token_alg("e30.e30.") is None  # no alg


def test_the_child_refuses_a_request_that_is_not_an_object() -> None:
    assert acting.answer("--demo", "/nonexistent", "[1, 2]")["error"] == "bad_request"
    assert acting.answer("--demo", "/nonexistent", "{")["error"] == "bad_request"
    assert acting.answer("--demo", "/x", " " * (acting.MAX_REQUEST + 1))["error"] == "bad_request"


def test_the_real_child_without_a_pool_answers_an_error_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    """No HTCondor pool runs here: the child must say so as an error kind, quickly."""
    monkeypatch.setenv("_CONDOR_COLLECTOR_HOST", "127.0.0.1:1")
    answer = acting.run(["--pool", "127.0.0.1:1"], jwt_like("HS256"), {"kind": "whoami", "schedd": None}, 30)
    assert answer["error"] in ("unavailable", "not_found", "unauthenticated"), answer
