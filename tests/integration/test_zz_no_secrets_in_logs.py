"""Runs last (by name): no key or token the session used appears in any process's log."""

import pytest

pytestmark = pytest.mark.integration


def test_no_secret_in_any_log(stack):
    # Make sure a token sent in the query string, and a failed login, were logged at all.
    p = stack.provision()
    stack.api("GET", "/healthz")
    stack.api("GET", f"/api/v1/accounts/{p.account}/?token={p.token}", token=p.token)
    assert len(stack.secrets) >= 2
    for log in stack.log_files():
        text = log.read_text(errors="replace")
        leaked = [secret[:12] for secret in stack.secrets if secret in text]
        assert leaked == [], f"{log.name} shows secrets starting {leaked}"
