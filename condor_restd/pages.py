"""HTML for browsers: the front page with a pool summary, and API docs rendered from the OpenAPI document."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def front_page(version: str, endpoints: Mapping[str, str], summary: Mapping[str, Any] | None,
               problem: str | None) -> str:
    return "<!DOCTYPE html><title>condor_restd</title>"


def api_docs(document: Mapping[str, Any]) -> str:
    return "<!DOCTYPE html><title>condor_restd API</title>"
