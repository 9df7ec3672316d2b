"""Bearer tokens, the issuers' keys, who sees which jobs, and what never reaches a log.

Keys are made here with cryptography; the issuer's discovery document and JWKS are served by
requests-mock, so nothing leaves the process. HTTP behaviour goes through the real app over
the demo pool (alice, bob and condoruser, UID_DOMAIN localhost).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from typing import Any, Callable

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from condor_restd import auth, condor
from condor_restd.auth import (
    ALGORITHMS,
    FETCH_TIMEOUT,
    Authenticator,
    Forbidden,
    Identity,
    Issuers,
    IssuerUnavailable,
    Unauthorized,
    map_user,
    redact,
)
from condor_restd.demo import DemoPool
from condor_restd.knobvalues import parse_user_map
from condor_restd.queries import Queries
from condor_restd.settings import Settings

from .conftest import Client

ISSUER = "https://issuer.example.org"
OTHER_ISSUER = "https://other.example.org/realms/x"
AUDIENCE = "https://restd.example.org"
DISCOVERY = ISSUER + "/.well-known/openid-configuration"
JWKS_URI = ISSUER + "/oauth2/certs"
ORIGIN = "https://dash.example.org"

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
FORGER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
NEW_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


# ------------------------------------------------------------------------------------ helpers

def b64int(value: int, size: int | None = None) -> str:
    return b64(value.to_bytes(size or (value.bit_length() + 7) // 8, "big"))


def jwk_of(key: Any, kid: str, **extra: Any) -> dict[str, Any]:
    """The public half of `key` as an issuer publishes it in its JWKS (RFC 7518)."""
    numbers = key.public_key().public_numbers()
    if isinstance(key, rsa.RSAPrivateKey):
        jwk: dict[str, Any] = {"kty": "RSA", "n": b64int(numbers.n), "e": b64int(numbers.e)}
    else:
        size = (key.curve.key_size + 7) // 8
        jwk = {"kty": "EC", "crv": {"secp256r1": "P-256", "secp384r1": "P-384"}[key.curve.name],
               "x": b64int(numbers.x, size), "y": b64int(numbers.y, size)}
    jwk.update(kid=kid, use="sig", **extra)
    return jwk


def private_jwk(key: rsa.RSAPrivateKey) -> dict[str, Any]:
    private = key.private_numbers()
    return {**jwk_of(key, "rsa1"), "d": b64int(private.d), "p": b64int(private.p), "q": b64int(private.q),
            "dp": b64int(private.dmp1), "dq": b64int(private.dmq1), "qi": b64int(private.iqmp)}


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    payload: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "sub": "bob", "iat": now, "nbf": now,
                               "exp": now + 600}
    payload.update(changes)
    return {k: v for k, v in payload.items() if v is not None}


def make_token(key: Any = RSA_KEY, kid: str = "rsa1", alg: str = "RS256", **changes: Any) -> str:
    return jwt.encode(claims(**changes), key, algorithm=alg, headers={"kid": kid})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def raw_token(header: dict[str, Any], payload: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    return f"{signing_input}.{b64(sign(signing_input.encode()))}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class IssuerMock:
    """One issuer's discovery document and JWKS, served by requests-mock."""

    def __init__(self, mocker: Any) -> None:
        self.mocker = mocker
        self.keys = [jwk_of(RSA_KEY, "rsa1"), jwk_of(EC_KEY, "ec1")]
        self.discovery = mocker.get(DISCOVERY, json={"issuer": ISSUER, "jwks_uri": JWKS_URI})
        self.jwks = mocker.get(JWKS_URI, json=lambda request, context: {"keys": self.keys})

    @property
    def fetches(self) -> int:
        return int(self.jwks.call_count)


@pytest.fixture
def issuer(requests_mock: Any) -> IssuerMock:
    return IssuerMock(requests_mock)


TOKEN_SETTINGS: dict[str, Any] = {
    "authentication": "TOKEN", "token_issuers": (ISSUER, OTHER_ISSUER), "token_audience": (AUDIENCE,),
    "uid_domain": "localhost", "cors_origins": (ORIGIN,), "admin_users": frozenset({"alice@localhost"}),
    "user_job_scope": "OWN",
}


@pytest.fixture
def api(make_client: Callable[..., Client], issuer: IssuerMock) -> Client:
    """The app with tokens on and OWN scope; alice is an admin, bob and condoruser are not."""
    return make_client(**TOKEN_SETTINGS)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def all_jobs(pool: DemoPool, schedd: str = "vm", source: str = "jobs") -> list[Any]:
    return list((pool.queues if source == "jobs" else pool.histories)[schedd])


def jobids_of(pool: DemoPool, user: str, schedd: str = "vm", source: str = "jobs") -> set[str]:
    return {f"{condor.value_of(ad, 'ClusterId')}.{condor.value_of(ad, 'ProcId')}"
            for ad in all_jobs(pool, schedd, source) if condor.value_of(ad, "User") == user}


def jobid_of_other(pool: DemoPool, user: str, source: str = "jobs") -> tuple[int, int]:
    for ad in all_jobs(pool, "vm", source):
        if condor.value_of(ad, "User") != user:
            return int(condor.value_of(ad, "ClusterId")), int(condor.value_of(ad, "ProcId"))
    raise AssertionError("the demo pool has no other user's job")


def ids(body: list[dict[str, Any]]) -> set[str]:
    return {job["jobid"] for job in body}


# ------------------------------------------------------------------------- without a token: 401

def test_no_token_is_401_with_a_bearer_challenge(api: Client) -> None:
    r = api.get("/v1/jobs/DEFAULT")
    assert r.status == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="condor_restd"'
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {"message": r.json()["message"], "status": 401}
    assert "Bearer" in r.json()["message"]


@pytest.mark.parametrize("path", ["/v1/jobs/DEFAULT", "/v1/history/DEFAULT/1/0", "/v1/jobs/DEFAULT/2/0/Cmd",
                                  "/v1/grouped_jobs/DEFAULT/Owner", "/v1/grouped_history/DEFAULT/Owner",
                                  "/v1/status", "/v1/grouped_status/MyType", "/v1/config",
                                  "/v1/config/NUM_CPUS", "/v1/nosuch", "/nosuch"])
def test_every_pool_endpoint_needs_a_token(api: Client, path: str) -> None:
    r = api.get(path)
    assert r.status == 401, path
    assert r.headers["www-authenticate"].startswith('Bearer realm="condor_restd"')


@pytest.mark.parametrize("authorization", ["Basic Ym9iOnNlY3JldA==", "Bearer", "Bearer ", "Token abc", "bob"])
def test_other_schemes_and_empty_bearer_are_401(api: Client, authorization: str) -> None:
    r = api.get("/v1/status", headers={"Authorization": authorization})
    assert r.status == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="condor_restd"'


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/", "/v1", "/v1/", "/v1/openapi.json",
                                  "/v1/openapi.yaml", "/favicon.ico"])
def test_probes_metrics_and_the_api_description_stay_open(api: Client, issuer: IssuerMock, path: str) -> None:
    r = api.get(path)
    assert r.status == 200, r
    # ... and they never depend on the issuer, not even with a token that cannot be checked
    assert api.get(path, headers=bearer("not-a-token")).status == 200
    assert issuer.fetches == 0


def test_the_front_page_shows_no_pool_overview_without_a_token(api: Client) -> None:
    r = api.get("/", headers={"Accept": "text/html"})
    assert r.status == 200
    assert "bearer token" in r.text


def test_a_scheme_is_case_insensitive(api: Client) -> None:
    r = api.get("/v1/status", headers={"Authorization": f"bearer {make_token()}"})
    assert r.status == 200


# ------------------------------------------------------------------------------- valid tokens

def test_a_valid_rsa_token_is_accepted(api: Client, issuer: IssuerMock) -> None:
    r = api.get("/v1/status", params={"query": "schedd"}, headers=bearer(make_token()))
    assert r.status == 200, r
    assert {ad["name"] for ad in r.json()} == {"vm", "schedd2@vm"}
    assert issuer.discovery.call_count == 1 and issuer.fetches == 1


def test_a_valid_ec_token_is_accepted(api: Client) -> None:
    assert api.get("/v1/status", headers=bearer(make_token(EC_KEY, "ec1", "ES256"))).status == 200


def test_keys_are_cached(api: Client, issuer: IssuerMock) -> None:
    for _ in range(5):
        assert api.get("/v1/status", headers=bearer(make_token())).status == 200
    assert issuer.fetches == 1


def test_requests_to_the_issuer_have_timeouts(api: Client, requests_mock: Any) -> None:
    api.get("/v1/status", headers=bearer(make_token()))
    assert requests_mock.call_count == 2
    assert all(request.timeout == FETCH_TIMEOUT for request in requests_mock.request_history)


def test_the_access_log_names_the_user(api: Client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="cherrypy"):
        api.get("/v1/status", headers=bearer(make_token(sub="bob")))
    assert any("bob@localhost" in r.getMessage() and "GET /v1/status" in r.getMessage()
               for r in caplog.records if r.name.startswith("cherrypy.access"))


# ------------------------------------------------------------------------- tokens that fail

def expect_invalid(api: Client, token: str, words: str) -> None:
    r = api.get("/v1/status", headers=bearer(token))
    assert r.status == 401, r
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="condor_restd", error="invalid_token", error_description="')
    assert words in r.json()["message"]
    assert r.json()["status"] == 401
    signature = token.split(".")[-1]
    assert token not in r.text and (not signature or signature not in r.text + challenge)


def test_a_forged_token_is_401(api: Client) -> None:
    # signed by another key, under the id of the issuer's key
    expect_invalid(api, make_token(FORGER_KEY, "rsa1"), "signature")


def test_a_tampered_token_is_401(api: Client) -> None:
    header, _, signature = make_token(sub="bob").split(".")
    payload = b64(json.dumps(claims(sub="alice")).encode())
    expect_invalid(api, f"{header}.{payload}.{signature}", "signature")


def test_an_expired_token_is_401(api: Client) -> None:
    expect_invalid(api, make_token(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200,
                                   nbf=int(time.time()) - 7200), "expired")


def test_expiry_has_a_small_leeway(api: Client) -> None:
    assert api.get("/v1/status", headers=bearer(make_token(exp=int(time.time()) - 10))).status == 200


def test_a_token_not_valid_yet_is_401(api: Client) -> None:
    expect_invalid(api, make_token(nbf=int(time.time()) + 3600), "not valid yet")


def test_a_token_without_exp_is_401(api: Client) -> None:
    expect_invalid(api, make_token(exp=None), "exp")


def test_a_token_for_another_audience_is_401(api: Client) -> None:
    expect_invalid(api, make_token(aud="https://other-service.example.org"), "aud")
    expect_invalid(api, make_token(aud=["https://a.example.org", "https://b.example.org"]), "aud")


def test_a_token_without_aud_is_401_when_an_audience_is_set(api: Client) -> None:
    expect_invalid(api, make_token(aud=None), "aud")


def test_one_of_several_audiences_is_enough(api: Client) -> None:
    token = make_token(aud=["https://other.example.org", AUDIENCE])
    assert api.get("/v1/status", headers=bearer(token)).status == 200


def test_without_an_audience_setting_aud_is_not_checked(make_client: Callable[..., Client],
                                                       issuer: IssuerMock) -> None:
    client = make_client(**{**TOKEN_SETTINGS, "token_audience": ()})
    assert client.get("/v1/status", headers=bearer(make_token(aud="anything"))).status == 200
    assert client.get("/v1/status", headers=bearer(make_token(aud=None))).status == 200


def test_an_untrusted_issuer_is_401_and_never_fetched(api: Client, requests_mock: Any) -> None:
    expect_invalid(api, make_token(iss="https://evil.example.org"), "issuer")
    expect_invalid(api, make_token(iss=ISSUER + "/"), "issuer")  # exactly as configured
    expect_invalid(api, make_token(iss=None), "issuer")
    assert requests_mock.call_count == 0


def test_alg_none_is_401_before_any_key_is_fetched(api: Client, requests_mock: Any) -> None:
    for alg in ("none", "None", "NONE"):
        token = raw_token({"alg": alg, "typ": "JWT", "kid": "rsa1"}, claims(), lambda data: b"")
        expect_invalid(api, token, "algorithm")
        expect_invalid(api, token.rsplit(".", 1)[0] + ".", "algorithm")
    assert requests_mock.call_count == 0


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_signed_with_the_public_key_is_401(api: Client, requests_mock: Any, alg: str) -> None:
    # The classic confusion: the issuer's public key, which anyone can fetch, used as an HMAC secret.
    pem = RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    for secret in (pem, json.dumps(jwk_of(RSA_KEY, "rsa1")).encode()):
        token = raw_token({"alg": alg, "typ": "JWT", "kid": "rsa1"}, claims(sub="alice"),
                          lambda data, s=secret: hmac.new(s, data, digest).digest())
        expect_invalid(api, token, "algorithm")
    assert requests_mock.call_count == 0


def test_an_algorithm_that_does_not_fit_the_key_is_401(api: Client, issuer: IssuerMock) -> None:
    # The RSA key's id on an EC signature, and the EC key's id on an RSA one
    expect_invalid(api, make_token(EC_KEY, "rsa1", "ES256"), "algorithm does not match")
    expect_invalid(api, make_token(RSA_KEY, "ec1", "RS256"), "algorithm does not match")
    # An EC P-256 key used for ES384
    expect_invalid(api, make_token(ec.generate_private_key(ec.SECP384R1()), "ec1", "ES384"),
                   "algorithm does not match")


def test_a_jwk_alg_narrows_but_never_widens(make_client: Callable[..., Client], issuer: IssuerMock) -> None:
    issuer.keys = [jwk_of(RSA_KEY, "rsa1", alg="RS256")]
    client = make_client(**TOKEN_SETTINGS)
    assert client.get("/v1/status", headers=bearer(make_token(alg="RS256"))).status == 200
    r = client.get("/v1/status", headers=bearer(make_token(alg="PS256")))
    assert r.status == 401 and "algorithm does not match" in r.json()["message"]
    issuer.keys = [jwk_of(RSA_KEY, "rsa1", alg="HS256")]  # a JWK cannot open the door to HMAC
    client = make_client(**TOKEN_SETTINGS)
    raw = raw_token({"alg": "HS256", "kid": "rsa1"}, claims(), lambda d: hmac.new(b"k", d, hashlib.sha256).digest())
    assert client.get("/v1/status", headers=bearer(raw)).status == 401


@pytest.mark.filterwarnings("ignore::UserWarning")  # PyJWT's, when the test signs with the short key
def test_a_short_rsa_key_is_refused(make_client: Callable[..., Client], issuer: IssuerMock) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    issuer.keys = [jwk_of(weak, "weak")]
    client = make_client(**TOKEN_SETTINGS)
    r = client.get("/v1/status", headers=bearer(make_token(weak, "weak")))
    assert r.status == 401 and "2048" in r.json()["message"]


@pytest.mark.parametrize("token", ["abc", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30", "x" * 20000,
                                   "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln"])
def test_malformed_tokens_are_401(api: Client, requests_mock: Any, token: str) -> None:
    r = api.get("/v1/status", headers=bearer(token))
    assert r.status == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]
    assert requests_mock.call_count == 0


def test_a_token_without_kid_is_401(api: Client) -> None:
    token = jwt.encode(claims(), RSA_KEY, algorithm="RS256")
    expect_invalid(api, token, "kid")


def rsa_signed(payload: dict[str, Any]) -> str:
    """A token signed by the issuer's key whose payload is written as it is (json.dumps writes
    Infinity and NaN, as some JSON encoders do)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    return raw_token({"alg": "RS256", "kid": "rsa1", "typ": "JWT"}, payload,
                     lambda data: RSA_KEY.sign(data, padding.PKCS1v15(), hashes.SHA256()))


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("value", ["99999999999", "0", "", True, None, [1], {"a": 1},
                                   float("inf"), float("nan")])
def test_a_time_claim_that_is_not_a_number_is_401(api: Client, claim: str, value: Any) -> None:
    future = int(time.time()) + 600
    payload = claims(**{claim: future})
    payload[claim] = value  # None stays: a JSON null is not a date either
    expect_invalid(api, rsa_signed(payload), claim)


def test_time_claims_may_be_fractional(api: Client) -> None:
    now = time.time()
    token = rsa_signed(claims(exp=now + 600.5, nbf=now - 0.5, iat=now - 0.25))
    assert api.get("/v1/status", headers=bearer(token)).status == 200


@pytest.mark.parametrize("sub", [42, 4.2, True, ["bob"], {"name": "bob"}, ""])
def test_a_token_whose_user_claim_is_not_a_name_is_403(api: Client, sub: Any) -> None:
    # a valid token (signature, issuer, audience, dates): the user claim alone is wrong (security.md)
    r = api.get("/v1/status", headers=bearer(make_token(sub=sub)))
    assert r.status == 403, r
    assert "sub" in r.json()["message"] and "www-authenticate" not in r.headers


def test_the_user_claim_type_does_not_matter_when_another_claim_names_the_user(
        make_client: Callable[..., Client], issuer: IssuerMock) -> None:
    client = make_client(**{**TOKEN_SETTINGS, "token_user_claim": "preferred_username"})
    token = make_token(sub=12345, jti=7, preferred_username="bob")
    assert client.get("/v1/status", headers=bearer(token)).status == 200


@pytest.mark.parametrize("path", ["/v1/status", "/v1/jobs/DEFAULT", "/healthz", "/v1"])
def test_two_credentials_are_400_not_a_guess(api: Client, requests_mock: Any, path: str) -> None:
    # two Authorization headers, as a server or proxy joins them: "the last one wins" is a guess
    good, other = make_token(sub="alice"), make_token(sub="bob")
    for value in (f"Bearer {good}, Bearer {other}", f"Bearer {good},Bearer {other}", "Bearer a,b"):
        r = api.get(path, headers={"Authorization": value})
        assert r.status == 400, (path, r)
        assert "Authorization" in r.json()["message"] and r.json()["status"] == 400
        assert good not in r.text and other not in r.text
    assert requests_mock.call_count == 0


def test_the_accepted_algorithms_are_asymmetric_only() -> None:
    assert not {a for a in ALGORITHMS if a.upper().startswith("HS") or a.lower() == "none"}


# ------------------------------------------------------------------- key ids, refresh, outages

def test_an_unknown_kid_fetches_the_keys_again(api: Client, issuer: IssuerMock) -> None:
    clock = Clock()
    api.app.auth.issuers.clock = clock  # type: ignore[attr-defined]
    assert api.get("/v1/status", headers=bearer(make_token())).status == 200
    assert issuer.fetches == 1
    issuer.keys = [*issuer.keys, jwk_of(NEW_KEY, "rsa2")]  # the issuer rotates in a new key
    clock.now += auth.MIN_REFRESH_SECONDS
    assert api.get("/v1/status", headers=bearer(make_token(NEW_KEY, "rsa2"))).status == 200
    assert issuer.fetches == 2
    assert api.get("/v1/status", headers=bearer(make_token())).status == 200  # the old one still works
    assert issuer.fetches == 2


def test_a_flood_of_unknown_kids_cannot_hammer_the_issuer(api: Client, issuer: IssuerMock) -> None:
    clock = Clock()
    api.app.auth.issuers.clock = clock  # type: ignore[attr-defined]
    assert api.get("/v1/status", headers=bearer(make_token())).status == 200
    for n in range(50):
        r = api.get("/v1/status", headers=bearer(make_token(FORGER_KEY, f"bogus{n}")))
        assert r.status == 401 and "key" in r.json()["message"]
    assert issuer.fetches == 1  # within MIN_REFRESH_SECONDS of the last fetch: no other
    clock.now += auth.MIN_REFRESH_SECONDS
    for n in range(50):
        assert api.get("/v1/status", headers=bearer(make_token(FORGER_KEY, f"more{n}"))).status == 401
    assert issuer.fetches == 2  # one more, then quiet again


def test_keys_are_fetched_again_when_the_cache_expires(api: Client, issuer: IssuerMock) -> None:
    clock = Clock()
    api.app.auth.issuers.clock = clock  # type: ignore[attr-defined]
    api.get("/v1/status", headers=bearer(make_token()))
    clock.now += auth.KEY_CACHE_SECONDS - 1
    api.get("/v1/status", headers=bearer(make_token()))
    assert issuer.fetches == 1
    clock.now += 2
    assert api.get("/v1/status", headers=bearer(make_token())).status == 200
    assert issuer.fetches == 2


@pytest.mark.parametrize("failure", [requests.exceptions.ConnectionError, requests.exceptions.ConnectTimeout,
                                     requests.exceptions.ReadTimeout])
def test_an_issuer_that_is_down_is_503_quickly(make_client: Callable[..., Client], requests_mock: Any,
                                               failure: type[Exception]) -> None:
    discovery = requests_mock.get(DISCOVERY, exc=failure)
    client = make_client(**TOKEN_SETTINGS)
    started = time.monotonic()
    for _ in range(10):
        r = client.get("/v1/status", headers=bearer(make_token()))
        assert r.status == 503, r
        assert r.json()["status"] == 503 and "issuer" in r.json()["message"]
        assert int(r.headers["retry-after"]) > 0
    assert time.monotonic() - started < 5
    assert discovery.call_count == 1  # tried once; the others did not wait on it


@pytest.mark.parametrize("breakage", ["500", "not json", "wrong issuer", "http jwks", "no keys", "jwks 404",
                                      "private key only", "huge"])
def test_a_broken_issuer_is_503_not_500(make_client: Callable[..., Client], requests_mock: Any,
                                        caplog: pytest.LogCaptureFixture, breakage: str) -> None:
    good = {"issuer": ISSUER, "jwks_uri": JWKS_URI}
    if breakage == "500":
        requests_mock.get(DISCOVERY, status_code=500)
    elif breakage == "not json":
        requests_mock.get(DISCOVERY, text="<html>")
    elif breakage == "wrong issuer":
        requests_mock.get(DISCOVERY, json={**good, "issuer": "https://evil.example.org"})
    elif breakage == "http jwks":
        requests_mock.get(DISCOVERY, json={**good, "jwks_uri": "http://issuer.example.org/certs"})
    else:
        requests_mock.get(DISCOVERY, json=good)
        if breakage == "no keys":
            requests_mock.get(JWKS_URI, json={"keys": []})
        elif breakage == "jwks 404":
            requests_mock.get(JWKS_URI, status_code=404)
        elif breakage == "private key only":
            requests_mock.get(JWKS_URI, json={"keys": [private_jwk(RSA_KEY)]})
        else:
            requests_mock.get(JWKS_URI, text=json.dumps({"keys": [jwk_of(RSA_KEY, "rsa1")], "pad": "x" * (2 << 20)}))
    client = make_client(**TOKEN_SETTINGS)
    with caplog.at_level(logging.WARNING, logger="condor_restd"):
        r = client.get("/v1/status", headers=bearer(make_token()))
    assert r.status == 503, r
    assert any("cannot fetch the signing keys of token issuer" in m for m in caplog.messages)


def test_cached_keys_keep_working_while_the_issuer_is_down(api: Client, issuer: IssuerMock,
                                                          requests_mock: Any) -> None:
    clock = Clock()
    api.app.auth.issuers.clock = clock  # type: ignore[attr-defined]
    assert api.get("/v1/status", headers=bearer(make_token())).status == 200
    requests_mock.get(DISCOVERY, exc=requests.exceptions.ConnectionError)
    clock.now += auth.KEY_CACHE_SECONDS + 1
    assert api.get("/v1/status", headers=bearer(make_token())).status == 200
    # a key it does not know cannot be checked now: 503, not a verdict on the token
    assert api.get("/v1/status", headers=bearer(make_token(NEW_KEY, "rsa2"))).status == 503


def test_issuers_unit_unknown_kid_is_401_once_keys_are_known(requests_mock: Any) -> None:
    IssuerMock(requests_mock)
    issuers = Issuers([ISSUER], clock=Clock())
    assert issuers.jwk(ISSUER, "rsa1")["kid"] == "rsa1"
    with pytest.raises(Unauthorized):
        issuers.jwk(ISSUER, "nope")


def test_a_request_does_not_wait_long_for_another_ones_fetch(requests_mock: Any) -> None:
    IssuerMock(requests_mock)
    clock = Clock()
    issuers = Issuers([ISSUER], clock=clock, lock_wait=0.1)
    lock = issuers._states[ISSUER].lock
    with lock:  # as if another request were fetching from a slow issuer
        started = time.monotonic()
        with pytest.raises(IssuerUnavailable):
            issuers.jwk(ISSUER, "rsa1")
        assert time.monotonic() - started < 1
    assert issuers.jwk(ISSUER, "rsa1")["kid"] == "rsa1"
    clock.now += auth.KEY_CACHE_SECONDS + 1  # stale now; while a refresh runs, the old keys serve
    with lock:
        assert issuers.jwk(ISSUER, "rsa1")["kid"] == "rsa1"
    assert requests_mock.call_count == 2  # the one fetch, no other yet
    issuers.jwk(ISSUER, "rsa1")
    assert requests_mock.call_count == 4  # refreshed once the lock was free


def test_issuers_unit_down_is_issuer_unavailable(requests_mock: Any) -> None:
    requests_mock.get(DISCOVERY, exc=requests.exceptions.ConnectTimeout)
    with pytest.raises(IssuerUnavailable) as info:
        Issuers([ISSUER], clock=Clock()).jwk(ISSUER, "rsa1")
    assert info.value.status == 503


# ---------------------------------------------------------------------- OWN scope and admins

def test_own_scope_shows_a_user_only_their_jobs(api: Client, pool: DemoPool) -> None:
    token = make_token(sub="bob")
    for schedd, name in (("DEFAULT", "vm"), ("schedd2@vm", "schedd2@vm")):
        for source in ("jobs", "history"):
            r = api.get(f"/v1/{source}/{schedd}", headers=bearer(token))
            assert r.status == 200
            assert ids(r.json()) == jobids_of(pool, "bob@localhost", name, source), (schedd, source)
            assert {job["classad"]["user"] for job in r.json()} <= {"bob@localhost"}


def test_own_scope_is_in_the_constraint_sent_to_the_schedd(make_client: Callable[..., Client],
                                                           issuer: IssuerMock, pool: DemoPool) -> None:
    sent: list[str] = []

    class Recording:
        def __getattr__(self, name: str) -> Any:
            return getattr(pool, name)

        def jobs(self, schedd: str | None, constraint: str, *args: Any) -> Any:
            sent.append(constraint)
            return pool.jobs(schedd, constraint, *args)

    client = make_client(Recording(), isolate=False, **TOKEN_SETTINGS)
    client.get("/v1/jobs/DEFAULT", {"constraint": 'Owner == "alice" || true'}, headers=bearer(make_token()))
    client.get("/v1/jobs/DEFAULT/2/0", headers=bearer(make_token()))
    assert sent == ['(Owner == "alice" || true) && User =?= "bob@localhost"',
                    'ClusterId == 2 && ProcId == 0 && User =?= "bob@localhost"']


WIDENING = ["true || true", "true", 'Owner == "alice"', 'User == "alice@localhost"', 'User != "bob@localhost"',
            'User =!= "bob@localhost" || User =?= "bob@localhost"', "ClusterId >= 0 || ProcId >= 0",
            'MY.User =?= "alice@localhost"', "TARGET.Owner =!= undefined", "!(false)", "true ? true : false",
            "ifThenElse(true, true, true)", "1"]


@pytest.mark.parametrize("constraint", WIDENING)
@pytest.mark.parametrize("source", ["jobs", "history", "grouped_jobs", "grouped_history"])
def test_no_constraint_widens_own_scope(api: Client, pool: DemoPool, constraint: str, source: str) -> None:
    path = f"/v1/{source}/DEFAULT" + ("/Owner" if source.startswith("grouped") else "")
    r = api.get(path, {"constraint": constraint}, headers=bearer(make_token(sub="bob")))
    assert r.status == 200, r
    body = r.json()
    jobs = [job for group in body.values() for job in group] if isinstance(body, dict) else body
    assert {job["classad"]["owner"] for job in jobs} <= {"bob"}
    assert ids(jobs) <= jobids_of(pool, "bob@localhost", "vm", source.replace("grouped_", ""))


@pytest.mark.parametrize("constraint", [") || (true", "true) || (true", "true) || (User =!= undefined",
                                        'false) || (Owner == "alice"', "true /*", "true // x", "true; true",
                                        'true) || ("a" == "a"'])
def test_breaking_out_of_the_parentheses_is_400(api: Client, constraint: str) -> None:
    for path in ("/v1/jobs/DEFAULT", "/v1/history/DEFAULT", "/v1/grouped_jobs/DEFAULT/Owner"):
        r = api.get(path, {"constraint": constraint}, headers=bearer(make_token(sub="bob")))
        assert r.status == 400, (path, r)


def test_another_users_job_is_not_found(api: Client, pool: DemoPool) -> None:
    token = make_token(sub="bob")
    for source in ("jobs", "history"):
        cluster, proc = jobid_of_other(pool, "bob@localhost", source)
        for path in (f"/v1/{source}/DEFAULT/{cluster}/{proc}", f"/v1/{source}/DEFAULT/{cluster}/{proc}/Cmd",
                     f"/v1/{source}/DEFAULT/{cluster}/{proc}/Owner"):
            r = api.get(path, headers=bearer(token))
            assert r.status == 404, (path, r)
        by_cluster = api.get(f"/v1/{source}/DEFAULT/{cluster}", headers=bearer(token)).json()
        assert all(job["classad"]["owner"] == "bob" for job in by_cluster)
        grouped = api.get(f"/v1/grouped_{source}/DEFAULT/Owner/{cluster}", headers=bearer(token)).json()
        assert set(grouped) <= {"bob"}


def test_ones_own_job_is_found(api: Client, pool: DemoPool) -> None:
    jobid = sorted(jobids_of(pool, "bob@localhost"))[0]
    cluster, proc = jobid.split(".")
    r = api.get(f"/v1/jobs/DEFAULT/{cluster}/{proc}/Owner", headers=bearer(make_token(sub="bob")))
    assert r.status == 200 and r.json() == "bob"


@pytest.mark.parametrize("groupby", ["Owner", "User", "AccountingGroup", "ClusterId", "JobStatus"])
def test_grouping_shows_only_ones_own_jobs(api: Client, groupby: str) -> None:
    body = api.get(f"/v1/grouped_jobs/DEFAULT/{groupby}", {"projection": "Owner,User"},
                   headers=bearer(make_token(sub="bob"))).json()
    assert {job["classad"]["user"] for group in body.values() for job in group} <= {"bob@localhost"}
    if groupby in ("Owner", "User"):
        assert set(body) == {"bob" if groupby == "Owner" else "bob@localhost"}


@pytest.mark.parametrize("projection", ["Owner", "ClusterId", "User,Owner,ClusterId", "JobStatus"])
def test_projection_does_not_widen_own_scope(api: Client, pool: DemoPool, projection: str) -> None:
    r = api.get("/v1/jobs/DEFAULT", {"projection": projection}, headers=bearer(make_token(sub="bob")))
    assert ids(r.json()) == jobids_of(pool, "bob@localhost")


def test_a_user_claim_with_a_domain_is_taken_as_is(api: Client, pool: DemoPool) -> None:
    r = api.get("/v1/jobs/DEFAULT", headers=bearer(make_token(sub="bob@localhost")))
    assert ids(r.json()) == jobids_of(pool, "bob@localhost")
    other = api.get("/v1/jobs/DEFAULT", headers=bearer(make_token(sub="bob@elsewhere.org")))
    assert other.json() == []


def test_user_names_are_matched_exactly(api: Client) -> None:
    # ClassAd == on strings ignores case; the scope uses =?=, so BOB is not bob.
    assert api.get("/v1/jobs/DEFAULT", headers=bearer(make_token(sub="BOB"))).json() == []


def test_a_user_with_no_jobs_sees_none(api: Client) -> None:
    assert api.get("/v1/jobs/DEFAULT", headers=bearer(make_token(sub="mallory"))).json() == []


def test_an_admin_sees_every_job(api: Client, pool: DemoPool) -> None:
    token = make_token(sub="alice")
    r = api.get("/v1/jobs/DEFAULT", headers=bearer(token))
    assert len(r.json()) == len(all_jobs(pool))
    cluster, proc = jobid_of_other(pool, "alice@localhost")
    assert api.get(f"/v1/jobs/DEFAULT/{cluster}/{proc}", headers=bearer(token)).status == 200


def test_all_scope_shows_everyone_every_job(make_client: Callable[..., Client], issuer: IssuerMock,
                                            pool: DemoPool) -> None:
    client = make_client(**{**TOKEN_SETTINGS, "user_job_scope": "ALL"})
    r = client.get("/v1/jobs/DEFAULT", headers=bearer(make_token(sub="bob")))
    assert len(r.json()) == len(all_jobs(pool))


def test_status_is_for_any_authenticated_user(api: Client) -> None:
    token = make_token(sub="bob")
    assert api.get("/v1/status", headers=bearer(token)).status == 200
    assert api.get("/v1/grouped_status/MyType", headers=bearer(token)).status == 200


@pytest.mark.parametrize("path,params", [("/v1/config", {}), ("/v1/config/NUM_CPUS", {}),
                                         ("/v1/config", {"daemon": "master"}),
                                         ("/v1/config/NUM_CPUS", {"daemon": "schedd"})])
def test_config_is_for_admins_only(api: Client, path: str, params: dict[str, str]) -> None:
    r = api.get(path, params, headers=bearer(make_token(sub="bob")))
    assert r.status == 403, r
    assert r.json() == {"message": "the configuration is shown to RESTD_ADMIN_USERS only", "status": 403}
    assert api.get(path, params, headers=bearer(make_token(sub="alice"))).status == 200


def test_config_is_admin_only_with_all_scope_too(make_client: Callable[..., Client], issuer: IssuerMock) -> None:
    client = make_client(**{**TOKEN_SETTINGS, "user_job_scope": "ALL"})
    assert client.get("/v1/config", headers=bearer(make_token(sub="bob"))).status == 403


def test_queries_refuse_pool_data_to_nobody_when_tokens_are_on(pool: DemoPool) -> None:
    # Defence in depth: a handler that forgot to pass the identity gets nothing.
    queries = Queries(Settings().replace(**TOKEN_SETTINGS), pool)
    try:
        for call in (lambda: queries.jobs("jobs", None), lambda: queries.status(),
                     lambda: queries.config(), lambda: queries.summary(),
                     lambda: queries.job("history", None, 1, 0)):
            with pytest.raises(Unauthorized):
                call()
        # a user limited to their own jobs gets the counts of their own jobs
        own = queries.summary(Identity("bob@localhost"))
        assert own["scope"] == "own"
        assert {o["owner"] for s in own["jobs"]["schedds"] for o in s["owners"]} == {"bob@localhost"}
        assert queries.summary(Identity("alice@localhost", admin=True))["scope"] == "all"
    finally:
        queries.close()


# ------------------------------------------------------------------------ identity mapping

def authenticator(**changes: Any) -> Authenticator:
    return Authenticator(Settings().replace(**{**TOKEN_SETTINGS, **changes}), issuers=Issuers([]))


def test_a_bare_name_gets_the_uid_domain() -> None:
    assert authenticator().user(ISSUER, {"sub": "bob"}) == "bob@localhost"
    assert authenticator(uid_domain="example.org").user(ISSUER, {"sub": "bob"}) == "bob@example.org"


def test_the_user_claim_is_configurable(issuer: IssuerMock, make_client: Callable[..., Client], pool: DemoPool) -> None:
    client = make_client(**{**TOKEN_SETTINGS, "token_user_claim": "preferred_username"})
    r = client.get("/v1/jobs/DEFAULT", headers=bearer(make_token(sub="12345", preferred_username="bob")))
    assert ids(r.json()) == jobids_of(pool, "bob@localhost")
    r = client.get("/v1/jobs/DEFAULT", headers=bearer(make_token(sub="bob")))
    assert r.status == 403 and "preferred_username" in r.json()["message"]


@pytest.mark.parametrize("value", ["", "  ", 'bo"b', "bob smith", "a@b@c", 42, None, ["bob"]])
def test_unusable_user_claims_are_403(value: Any) -> None:
    with pytest.raises(Forbidden):
        authenticator().user(ISSUER, {"sub": value} if value is not None else {})


MAPFILE = r"""# HTCondor's map file format
CLAIMTOBE .* nobody
SCITOKENS /^https:\/\/issuer\.example\.org,u-(\d+)$/ user\1
SCITOKENS "https://issuer.example.org,the-boss" alice
* /^https:\/\/other\.example\.org\/realms\/x,(.*)$/i \1@other.example.org
* /,bob$/ bob@localhost
"""


def test_map_file_rules() -> None:
    rules = parse_user_map(MAPFILE, "/etc/condor/restd.map")
    assert map_user(rules, f"{ISSUER},u-42") == "user42"
    assert map_user(rules, f"{ISSUER},the-boss") == "alice"
    assert map_user(rules, f"{OTHER_ISSUER},Carol") == "Carol@other.example.org"
    assert map_user(rules, f"{ISSUER},bob") == "bob@localhost"
    assert map_user(rules, f"{ISSUER},mallory") is None
    assert map_user(rules, "nobody") is None  # the CLAIMTOBE line is for another method


def test_map_file_maps_issuer_and_claim_to_a_user(tmp_path: Any) -> None:
    path = tmp_path / "restd.map"
    path.write_text(MAPFILE)
    settings = Settings.from_config({"RESTD_AUTHENTICATION": "TOKEN", "RESTD_TOKEN_ISSUERS": ISSUER,
                                     "RESTD_TOKEN_USER_MAPFILE": str(path), "RESTD_CORS_ORIGINS": "",
                                     "UID_DOMAIN": "localhost", "RESTD_TOKEN_AUDIENCE": AUDIENCE})
    check = Authenticator(settings, issuers=Issuers([]))
    assert check.user(ISSUER, {"sub": "u-7"}) == "user7@localhost"
    assert check.user(ISSUER, {"sub": "the-boss"}) == "alice@localhost"
    with pytest.raises(Forbidden) as info:
        check.user(ISSUER, {"sub": "mallory"})
    assert "RESTD_TOKEN_USER_MAPFILE" in info.value.message


def test_an_identity_is_admin_only_when_listed() -> None:
    check = authenticator()
    assert check.user(ISSUER, {"sub": "alice"}) in check.settings.admin_users
    assert check.user(ISSUER, {"sub": "alice@elsewhere"}) not in check.settings.admin_users


# ------------------------------------------------------------------------------ CORS, OPTIONS

def test_preflight_needs_no_token(api: Client, requests_mock: Any) -> None:
    r = api.request("OPTIONS", "/v1/jobs/DEFAULT", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"})
    assert r.status == 204
    assert r.headers["access-control-allow-origin"] == ORIGIN
    assert "Authorization" in r.headers["access-control-allow-headers"]
    assert requests_mock.call_count == 0


def test_no_wildcard_origin_with_tokens(api: Client) -> None:
    r = api.get("/v1/status", headers={"Origin": "https://evil.example.org", **bearer(make_token())})
    assert "access-control-allow-origin" not in r.headers
    r = api.get("/v1/status", headers={"Origin": ORIGIN})
    assert r.status == 401 and r.headers["access-control-allow-origin"] == ORIGIN  # a page can read the 401


# --------------------------------------------------------------------------------- the logs

def test_a_token_in_the_url_is_400(api: Client, requests_mock: Any) -> None:
    token = make_token()
    for path in ("/v1/status", "/healthz"):
        r = api.get(path, {"access_token": token})
        assert r.status == 400 and "Authorization" in r.json()["message"]
        assert token not in r.text
    assert requests_mock.call_count == 0


def test_no_token_and_no_part_of_one_is_ever_logged(api: Client, caplog: pytest.LogCaptureFixture) -> None:
    good = make_token(sub="bob")
    tokens = [good, make_token(exp=int(time.time()) - 3600), make_token(FORGER_KEY),
              make_token(iss="https://evil.example.org"), make_token(NEW_KEY, "unknown-kid"),
              raw_token({"alg": "none", "kid": "rsa1"}, claims(), lambda data: b"")]
    with caplog.at_level(logging.DEBUG, logger="cherrypy"), \
            caplog.at_level(logging.DEBUG, logger="condor_restd"):
        for token in tokens:
            for path in ("/v1/jobs/DEFAULT", "/v1/config", "/healthz", "/v1/nosuch"):
                api.get(path, headers=bearer(token))
            api.get("/v1/status", {"access_token": token})
            api.get("/v1/status", query=f"access_token={token}&format=json")
            api.get("/v1/status", {"constraint": f'Cmd == "{token}"'}, headers=bearer(good))
    assert any(r.name.startswith("cherrypy.access") for r in caplog.records)  # the access log was captured
    text = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    for token in tokens:
        _, payload, signature = token.split(".")
        assert token not in text
        assert payload not in text
        if signature:
            assert signature not in text


def test_redact() -> None:
    token = make_token()
    line = f'127.0.0.1 - - "GET /v1/status?access_token={token}&x=1 HTTP/1.1" 400'
    assert token not in redact(line) and "access_token=<REDACTED>&x=1" in redact(line)
    assert redact(f"Authorization: Bearer {token}") == "Authorization: Bearer <REDACTED>"
    assert redact("GET /v1/jobs/DEFAULT HTTP/1.1") == "GET /v1/jobs/DEFAULT HTTP/1.1"


# ----------------------------------------------------------------------- authentication NONE

def test_without_authentication_everything_is_open_as_before(client: Client, requests_mock: Any) -> None:
    assert client.get("/v1/jobs/DEFAULT").status == 200
    assert client.get("/v1/config").status == 200
    assert client.get("/v1/status", headers=bearer("garbage")).status == 200
    assert client.get("/v1/status", headers={"Origin": "https://any.example.org"}).headers[
        "access-control-allow-origin"] == "*"
    assert requests_mock.call_count == 0
