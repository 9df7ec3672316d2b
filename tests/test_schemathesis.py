"""schemathesis against the app serving the demo pool: no 5xx, and every response as the document says.

Three times: with the defaults (no authentication); with RESTD_AUTHENTICATION = TOKEN, OWN job
scope and a valid token of a user who is not an admin, so that the user's scope clause meets
generated constraints, projections and pages, and /v1/config answers 403; and the writes, with
RESTD_ACTIONS on and a demo user's token, so that generated bodies meet the checks of actions,
edits and submits (each that passes them acts, in a fresh process, on a demo pool of its own).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from condor_restd import demoacts
from condor_restd.demo import DemoPool
from condor_restd.settings import Settings
from condor_restd.web import make_app

# schemathesis 4 (Python 3.11 and newer) loads the schema from a WSGI app and takes a Config
pytest.importorskip("schemathesis", minversion="4.0")
import schemathesis
from hypothesis import settings

STATUSES = ["400", "404", "405", "406", "414"]
CHECKS: dict[str, Any] = {
    # A schema-valid string is not necessarily a valid ClassAd expression, attribute list or
    # cursor: those are 400s, as documented. Everything else is checked.
    "positive_data_acceptance": {"enabled": False},
    # What the daemon promises for bad input; never a 5xx.
    "negative_data_rejection": {"expected-statuses": STATUSES},
}

APP = make_app(Settings(), DemoPool())
CONFIG = schemathesis.Config.from_dict({
    "seed": 680,  # the same cases on every run, so that CI is repeatable
    "generation": {"max-examples": 25, "database": "none"},
    "checks": CHECKS,
})
schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", APP, config=CONFIG)

ISSUER = "https://tokens.example.org"
AUDIENCE = "https://restd.example.org"
SIGNING_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


class IssuerKeys:
    """Stands in for auth.Issuers: the issuer's one signing key, without any network."""

    published = {**jwt.algorithms.RSAAlgorithm.to_jwk(SIGNING_KEY.public_key(), as_dict=True),
                 "kid": "k1", "use": "sig"}

    def jwk(self, issuer: str, kid: str) -> dict[str, Any]:
        return self.published


TOKEN_APP = make_app(Settings().replace(authentication="TOKEN", token_issuers=(ISSUER,),
                                        token_audience=(AUDIENCE,), uid_domain="localhost",
                                        cors_origins=("https://dash.example.org",), user_job_scope="OWN"),
                     DemoPool())
TOKEN_APP.auth.issuers = IssuerKeys()
BOB = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "bob", "exp": int(time.time()) + 3 * 3600},
                 SIGNING_KEY, algorithm="RS256", headers={"kid": "k1"})
TOKEN_CONFIG = schemathesis.Config.from_dict({
    "seed": 681,
    "generation": {"max-examples": 8, "database": "none"},
    "headers": {"Authorization": f"Bearer {BOB}"},
    # bob may not read the configuration: that 403 comes before any parameter is looked at
    "checks": {**CHECKS, "negative_data_rejection": {"expected-statuses": [*STATUSES, "403"]}},
})
token_schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", TOKEN_APP, config=TOKEN_CONFIG) \
    .include(method="GET")


ACT_APP = make_app(Settings().replace(actions=True, edit_attributes=frozenset({"jobprio"})),
                   DemoPool())
ACT_CONFIG = schemathesis.Config.from_dict({
    "seed": 682,
    "generation": {"max-examples": 4, "database": "none"},
    "headers": {"Authorization": f"Bearer {demoacts.token('alice')}"},
    # a body the schema allows may name no job (404), need a confirm (409), be refused by the
    # schedd (403) or the allow list (403), or reuse a key (422): each documented
    "checks": {**CHECKS, "negative_data_rejection": {
        "expected-statuses": [*STATUSES, "401", "403", "409", "413", "415", "422"]},
        # other methods are checked on every path by the first run; here schemathesis would
        # send a GET with a write's body, which is refused as framing (400) before any routing
        "unsupported_method": {"enabled": False}},
})
act_schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", ACT_APP, config=ACT_CONFIG) \
    .include(method_regex="POST|PATCH")


@pytest.fixture(scope="module", autouse=True)
def _close_app() -> Iterator[None]:
    yield
    APP.queries.close()
    TOKEN_APP.queries.close()
    ACT_APP.queries.close()


@schema.parametrize()
@settings(deadline=None)
def test_api_conforms_to_its_document(case: schemathesis.Case[Any]) -> None:
    case.call_and_validate(headers={"Accept-Encoding": "identity"})  # the WSGI client does not inflate gzip


@token_schema.parametrize()
@settings(deadline=None)
def test_api_with_tokens_conforms_to_its_document(case: schemathesis.Case[Any]) -> None:
    case.call_and_validate(headers={"Accept-Encoding": "identity"})  # the WSGI client does not inflate gzip


@act_schema.parametrize()
@settings(deadline=None)
def test_writes_conform_to_their_document(case: schemathesis.Case[Any]) -> None:
    case.call_and_validate(headers={"Accept-Encoding": "identity"})
