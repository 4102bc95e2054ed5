"""SSRF rules at delivery time: the addresses resolved for a delivery are checked and are
the ones connected to; nothing private is reached without METERLINE_WEBHOOK_ALLOW_PRIVATE.
(The same rules when an endpoint is made: tests/api/test_webhooks.py.)"""

import socket
from contextlib import contextmanager

import pytest

from webhooks.addresses import address_problem
from webhooks.sending import webhook_post

HEADERS = {"webhook-id": "evt_1", "webhook-timestamp": "1", "webhook-signature": "v1,x"}


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("100.64.0.1", "non-public"),
        ("240.0.0.1", "private"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4 inside IPv6
        ("2002:7f00:1::1", "loopback"),  # 6to4 of 127.0.0.1
        ("2002:a00:1::1", "private"),  # 6to4 of 10.0.0.1
    ],
)
def test_addresses_that_are_not_public_are_refused(address, kind):
    problem = address_problem(address)
    assert problem is not None and kind in problem and address in problem


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address):
    assert address_problem(address) is None


@contextmanager
def listening():
    """A TCP port on 127.0.0.1 that notes whether anyone connected to it."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.3)
    try:
        yield server
    finally:
        server.close()


def connected(server: socket.socket) -> bool:
    try:
        conn, _ = server.accept()
    except TimeoutError:
        return False
    conn.close()
    return True


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]"])
def test_a_host_resolving_to_loopback_is_refused_at_delivery_before_any_connection(host):
    with listening() as server:
        port = server.getsockname()[1]
        answer = webhook_post(
            url=f"https://{host}:{port}/hooks",
            headers=HEADERS,
            body=b"{}",
            timeout=2,
            allow_private=False,
        )
        assert answer.status_code is None and not answer.delivered
        assert answer.error.startswith("refused: ") and "loopback" in answer.error
        assert not connected(server)


def test_http_is_refused_without_the_flag_even_to_a_public_address():
    answer = webhook_post(
        url="http://93.184.215.14/hooks",
        headers=HEADERS,
        body=b"{}",
        timeout=2,
        allow_private=False,
    )
    assert answer.error == "refused: must be an https:// URL"


def test_the_host_is_resolved_once_and_the_checked_address_is_the_one_connected_to(monkeypatch):
    """DNS rebinding: a name that answers one address to the check and another to a second
    lookup cannot lead the request to the second, because nothing looks it up again: the
    socket is connected to the address that was checked."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def rebinding(host, port, *args, **kwargs):
        if host != "rebind.test":
            return real(host, port, *args, **kwargs)
        asked.append(host)
        address = "127.0.0.1" if len(asked) == 1 else "127.0.0.2"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with listening() as checked:
        port = checked.getsockname()[1]
        with socket.create_server(("127.0.0.2", port)) as other:
            other.settimeout(0.3)
            # Loopback is allowed here so that the check passes and a connection is made.
            webhook_post(
                url=f"http://rebind.test:{port}/",
                headers=HEADERS,
                body=b"{}",
                timeout=1,
                allow_private=True,
            )
            assert asked == ["rebind.test"]
            assert connected(checked)
            assert not connected(other)
