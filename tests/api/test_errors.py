"""The API's one error shape: code, detail, and for a 400 each bad field by its path."""

import pytest
from rest_framework.exceptions import ErrorDetail

from billing.api.errors import flatten_errors

BODY = {"name": "Acme", "currency": "EUR", "timezone": "UTC"}


def test_nested_errors_are_flattened_to_paths():
    detail = {
        "tiers": [{}, {"up_to": [ErrorDetail("must ascend", code="invalid")]}],
        "name": [ErrorDetail("required", code="required")],
        "non_field_errors": ["bad"],
    }
    assert flatten_errors(detail) == {
        "tiers[1].up_to": ["must ascend"],
        "name": ["required"],
        "non_field_errors": ["bad"],
    }


def test_a_bare_list_is_non_field_errors():
    assert flatten_errors(["Expected a dictionary"]) == {
        "non_field_errors": ["Expected a dictionary"]
    }


@pytest.mark.django_db
def test_a_body_that_is_not_an_object(api):
    response = api.post("/api/v1/accounts/", [1, 2], format="json")
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["non_field_errors"]


@pytest.mark.django_db
def test_an_unexpected_error_is_500_json_without_traceback(api, monkeypatch, caplog):
    def broken(**kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr("billing.api.views.account_create", broken)
    response = api.post("/api/v1/accounts/", BODY, format="json")
    assert response.status_code == 500
    assert response.json() == {"code": "server_error", "detail": "Internal server error."}
    assert "secret internals" not in response.content.decode()
    assert "secret internals" in caplog.text  # logged for the operator of the service
