"""The OpenAPI schema at /api/schema/ and the Swagger UI at /api/docs/, served with no CDN."""

import re
from html.parser import HTMLParser

import pytest
from django.core.management import call_command
from django.test import Client
from drf_spectacular.validation import validate_schema

pytestmark = pytest.mark.django_db

# CONTRACT.md section 2, with every path parameter written {id}.
CONTRACT_PATHS = {
    "/api/v1/accounts/": {"post"},
    "/api/v1/accounts/{id}/": {"get"},
    "/api/v1/tariffs/": {"post"},
    "/api/v1/meters/": {"post"},
    "/api/v1/meters/{id}/": {"patch"},
    "/api/v1/meters/{id}/rotate-token/": {"post"},
    "/api/v1/meters/{id}/readings/": {"post"},
    "/api/v1/accounts/{id}/dashboard-keys/": {"post"},
    "/api/v1/accounts/{id}/usage/": {"get"},
    "/api/v1/accounts/{id}/charges/": {"get"},
    "/api/v1/accounts/{id}/close-period/": {"post"},
    "/api/v1/invoices/": {"get"},
}


def schema_of(client: Client) -> dict:
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_schema_is_public_and_valid_openapi_3():
    schema = schema_of(Client())
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "Meterline operator API"
    validate_schema(schema)  # raises on a document that breaks the OpenAPI 3 JSON schema


def test_schema_lists_the_contract_paths():
    paths = {
        re.sub(r"\{[^}]+\}", "{id}", path): set(operations)
        for path, operations in schema_of(Client())["paths"].items()
    }
    for path, methods in CONTRACT_PATHS.items():
        assert path in paths, path
        assert methods <= paths[path], path


def test_operator_api_is_documented_with_the_bearer_key():
    schema = schema_of(Client())
    assert schema["components"]["securitySchemes"]["operatorKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An operator API key, made with `manage.py create_api_key`.",
    }
    create = schema["paths"]["/api/v1/accounts/"]["post"]
    assert create["security"] == [{"operatorKey": []}]
    assert {"201", "400", "401"} <= set(create["responses"])
    ingest = schema["paths"]["/api/v1/meters/{meter_id}/readings/"]["post"]
    assert ingest["security"] == [{"deviceToken": []}]


def test_schema_generates_without_warnings(tmp_path):
    # What `manage.py spectacular --validate --fail-on-warn` checks: every view documented.
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml")
    )


class AssetUrls(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script" and attrs.get("src"):
            self.urls.append(attrs["src"])
        if tag == "link" and attrs.get("href"):
            self.urls.append(attrs["href"])


def test_docs_page_loads_everything_from_our_own_static_files():
    client = Client()
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    parser = AssetUrls()
    parser.feed(page)
    assert any(url.endswith("swagger-ui-bundle.js") for url in parser.urls)
    assert any(url.endswith("swagger-ui.css") for url in parser.urls)
    assert all(url.startswith("/static/") for url in parser.urls), parser.urls
    assert "http://" not in page
    assert "https://" not in page

    # DEBUG is off in the tests, as under daphne: WhiteNoise serves the files.
    for url in parser.urls:
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert b"".join(asset.streaming_content), url
