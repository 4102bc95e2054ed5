"""Checks a real answer of the API against the schema served at /api/schema/.

The OpenAPI 3.0 schema is turned into plain JSON Schema once (`nullable` becomes a
null alternative) and made strict: an object may hold only the properties it
documents, so a key a view adds, drops or renames outside its serializer fails.
An answer whose status is not documented must still have one of the error shapes
its path documents; an undocumented success fails.
"""

import json
import re
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from typing import Any

from django.test import Client
from jsonschema import Draft4Validator, FormatChecker, ValidationError

FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _aware_iso_datetime(value: object) -> bool:
    # Every timestamp of the API is ISO 8601 with its offset (billing/periods.isoformat).
    return not isinstance(value, str) or datetime.fromisoformat(value).tzinfo is not None


def strict(node: Any) -> Any:
    """OpenAPI 3.0's schema objects as JSON Schema: nullable spelt out, no extra keys."""
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: strict(value) for key, value in node.items()}
    if "properties" in node:
        node.setdefault("additionalProperties", False)
    if node.pop("nullable", False):
        return {"anyOf": [node, {"type": "null"}]}
    return node


@cache
def served_schema() -> dict[str, Any]:
    response = Client().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200, response.content
    return response.json()


@cache
def _components() -> dict[str, Any]:
    return strict(served_schema()["components"])


@cache
def _path_patterns() -> list[tuple[re.Pattern[str], str]]:
    def pattern(template: str) -> re.Pattern[str]:
        return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")

    return [(pattern(template), template) for template in served_schema()["paths"]]


def path_template(path: str) -> str | None:
    """The schema's path that `path` is an instance of, or None outside the API."""
    matches = [template for pattern, template in _path_patterns() if pattern.match(path)]
    # A literal path ("/api/v1/accounts/") wins over a template that also matches.
    return min(matches, key=lambda template: template.count("{"), default=None)


def _validate(schema: dict[str, Any], body: Any) -> None:
    root = {"components": _components(), "allOf": [strict(schema)]}
    Draft4Validator(root, format_checker=FORMATS).validate(body)


def _error_schemas(template: str) -> list[dict[str, Any]]:
    """Every JSON schema the path documents for its 4xx answers, of any method."""
    return [
        answer["content"]["application/json"]["schema"]
        for operation in served_schema()["paths"][template].values()
        for status, answer in operation["responses"].items()
        if status.startswith("4") and "application/json" in answer.get("content", {})
    ]


def _documented(template: str, method: str, status: int) -> dict[str, Any] | None:
    operation = served_schema()["paths"][template].get(method.lower(), {})
    return operation.get("responses", {}).get(str(status))


def check_answer(
    method: str, path: str, status: int, headers: Mapping[str, str], body: bytes
) -> None:
    """Raises AssertionError, naming the operation, when the answer is not as served."""
    content_type = headers.get("Content-Type", "")
    # Only the versioned API is described (and fetching the schema is itself an answer).
    template = path_template(path) if path.startswith("/api/v1/") else None
    if template is None:
        return
    where = f"{method} {template} {status}"
    answer = _documented(template, method, status)
    if answer is None:
        assert status >= 400, f"{where}: a success the schema does not document"
        _check_error(where, template, content_type, body)
        return
    for name, header in answer.get("headers", {}).items():
        assert name in headers, f"{where}: no {name} header"
        if header["schema"].get("type") == "integer":
            assert headers[name].isdigit(), f"{where}: {name}: {headers[name]!r}"
    if "content" not in answer:  # documented without a body (204)
        assert body == b"", f"{where}: a body where none is documented: {body[:200]!r}"
        return
    media_type = content_type.split(";")[0].strip()
    assert media_type in answer["content"], f"{where}: {media_type} is not documented"
    if media_type == "application/json":
        try:
            _validate(answer["content"][media_type]["schema"], _json(where, body))
        except ValidationError as error:
            at = "".join(f"[{part!r}]" for part in error.absolute_path)
            raise AssertionError(f"{where}: body{at}: {error.message}") from error


def _check_error(where: str, template: str, content_type: str, body: bytes) -> None:
    assert content_type.startswith("application/json"), f"{where}: not JSON ({content_type})"
    document = _json(where, body)
    problems = []
    for schema in _error_schemas(template):
        try:
            _validate(schema, document)
            return
        except ValidationError as error:
            problems.append(error.message)
    raise AssertionError(f"{where}: none of the path's error shapes: {problems}")


def _json(where: str, body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise AssertionError(f"{where}: the body is not JSON: {body[:200]!r}") from None
