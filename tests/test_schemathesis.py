"""schemathesis against the app serving the demo pool: no 5xx, and every response as the document says."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from condor_restd.demo import DemoPool
from condor_restd.settings import Settings
from condor_restd.web import make_app

# schemathesis 4 (Python 3.11 and newer) loads the schema from a WSGI app and takes a Config
pytest.importorskip("schemathesis", minversion="4.0")
import schemathesis
from hypothesis import settings

APP = make_app(Settings(), DemoPool())
CONFIG = schemathesis.Config.from_dict({
    "seed": 680,  # the same cases on every run, so that CI is repeatable
    "generation": {"max-examples": 25, "database": "none"},
    "checks": {
        # A schema-valid string is not necessarily a valid ClassAd expression or attribute list:
        # those are 400s, as documented. Everything else is checked.
        "positive_data_acceptance": {"enabled": False},
        # What the daemon promises for bad input; never a 5xx.
        "negative_data_rejection": {"expected-statuses": ["400", "404", "405", "406", "414"]},
    },
})
schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", APP, config=CONFIG)


@pytest.fixture(scope="module", autouse=True)
def _close_app() -> Iterator[None]:
    yield
    APP.queries.close()


@schema.parametrize()
@settings(deadline=None)
def test_api_conforms_to_its_document(case: schemathesis.Case[Any]) -> None:
    case.call_and_validate()
