"""Fixtures shared across test folders: an operator API key and a client that sends it."""

import pytest
from rest_framework.test import APIClient

from tests.factories import make_operator_key


@pytest.fixture
def operator_key(db) -> str:
    return make_operator_key()


@pytest.fixture
def api(operator_key) -> APIClient:
    """An API client authenticated as the operator."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {operator_key}")
    return client
