"""Every answer the API tests receive is checked against the served /api/schema/
(tests/api/schema_check.py), in the test that received it."""

import pytest
from django.test import Client

from tests.api.schema_check import check_answer


@pytest.fixture(autouse=True)
def answers_match_the_schema(monkeypatch):
    # Client.request is where both django's and DRF's test clients end up.
    request = Client.request

    def checked(self, **kwargs):
        response = request(self, **kwargs)
        if not response.streaming:
            check_answer(
                response.request["REQUEST_METHOD"],
                response.request["PATH_INFO"],
                response.status_code,
                response.headers,
                response.content,
            )
        return response

    monkeypatch.setattr(Client, "request", checked)
