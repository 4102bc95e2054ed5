"""Webhook POSTs: to the addresses checked for them, within the timeout, no redirects.

For each connection the host is resolved once (webhooks/addresses.py checks every
address), and the socket is connected to one of those very addresses; http.client then
speaks over that socket, with the URL's host in the Host header and, for https, in the
TLS server name (SNI) and the certificate check. So nothing resolves the name a second
time, and a DNS answer that changes meanwhile cannot send the request elsewhere. A 3xx
is an answer like any non-2xx: recorded, retried, never followed.
"""

import http.client
import socket
import ssl
import time
from dataclasses import dataclass
from functools import cache

from webhooks.addresses import (
    Target,
    TargetRefused,
    address_problem,
    addresses_allowed,
    url_target,
)

# Of the receiver's answer only the status matters; the body is read this far, then dropped.
BODY_READ_LIMIT = 64 * 1024
USER_AGENT = "Meterline-Webhooks/1"


@dataclass(frozen=True)
class Answer:
    status_code: int | None  # None: no HTTP answer (refused, timeout, TLS, SSRF rule)
    error: str  # "" when delivered

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@cache
def tls_context() -> ssl.SSLContext:
    """The system's trusted CAs (OpenSSL honours SSL_CERT_FILE), hostnames checked."""
    return ssl.create_default_context()


def webhook_post(
    *, url: str, headers: dict[str, str], body: bytes, timeout: float, allow_private: bool
) -> Answer:
    """POST `body` to `url` once, on a connection of its own (see Courier)."""
    courier = Courier(timeout=timeout, allow_private=allow_private)
    try:
        return courier.post(url=url, headers=headers, body=body)
    finally:
        courier.close()


class Courier:
    """The POSTs of one endpoint's run, over one kept-alive connection while it lasts.

    A connection is opened to an address just resolved and checked, and reused only for
    the same URL's host and port; any failure closes it. A request that finds a reused
    connection closed by the receiver meanwhile (it got no answer) is sent once more on
    a new one. `post` never raises for anything the network or the receiver does.
    """

    def __init__(self, *, timeout: float, allow_private: bool) -> None:
        self.timeout = timeout
        self.allow_private = allow_private
        self._connection: http.client.HTTPConnection | None = None
        self._target: Target | None = None

    def post(self, *, url: str, headers: dict[str, str], body: bytes) -> Answer:
        deadline = time.monotonic() + self.timeout
        try:
            target = url_target(url, allow_private=self.allow_private)
            reused = self._connection is not None and self._target == target
            if not reused:
                self._open(target, deadline)
            try:
                return self._exchange(target, headers, body, deadline)
            except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
                if not reused:
                    raise
                self._open(target, deadline)
                return self._exchange(target, headers, body, deadline)
        except Exception as error:
            self.close()
            return _failure(error, self.timeout)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._connection = self._target = None

    def _open(self, target: Target, deadline: float) -> None:
        self.close()
        addresses = addresses_allowed(target, allow_private=self.allow_private)
        sock = _connect(addresses, target.port, deadline, allow_private=self.allow_private)
        # A request is written at once, whole: Nagle's wait for an ACK would only delay it.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if target.scheme == "https":
            sock.settimeout(_left(deadline))
            sock = tls_context().wrap_socket(sock, server_hostname=target.host)
        self._connection = http.client.HTTPConnection(target.host, target.port)
        self._connection.sock = sock
        self._target = target

    def _exchange(
        self, target: Target, headers: dict[str, str], body: bytes, deadline: float
    ) -> Answer:
        connection = self._connection
        connection.sock.settimeout(_left(deadline))
        sent = {**headers, "Content-Type": "application/json", "User-Agent": USER_AGENT}
        connection.request("POST", target.path, body=body, headers=sent)
        connection.sock.settimeout(_left(deadline))
        response = connection.getresponse()
        response.read(BODY_READ_LIMIT)
        if not response.isclosed() or response.will_close:  # a body too long, or it said so
            self.close()
        return Answer(response.status, _error(response))


def _failure(error: Exception, timeout: float) -> Answer:
    """The attempt's error, as the operator reads it."""
    if isinstance(error, TargetRefused):
        return Answer(None, f"refused: {error}")
    if isinstance(error, TimeoutError):
        return Answer(None, f"timed out after {timeout:g} s")
    if isinstance(error, ConnectionRefusedError):
        return Answer(None, "connection refused")
    if isinstance(error, ssl.SSLError):
        reason = getattr(error, "verify_message", None) or error.reason or error
        return Answer(None, f"TLS: {reason}")
    if isinstance(error, OSError | http.client.HTTPException):
        return Answer(None, f"{type(error).__name__}: {error}")
    raise error


def _connect(
    addresses: list[str], port: int, deadline: float, *, allow_private: bool
) -> socket.socket:
    last: OSError | None = None
    for address in addresses:
        try:
            sock = socket.create_connection((address, port), timeout=_left(deadline))
        except OSError as error:
            last = error
            continue
        # The peer is one of the addresses just checked; say so once more, where it counts.
        peer = sock.getpeername()[0]
        problem = None if allow_private else address_problem(peer)
        if problem:
            sock.close()
            raise TargetRefused(f"connected to {problem}")
        return sock
    raise last or OSError("no address to connect to")


def _error(response: http.client.HTTPResponse) -> str:
    if 200 <= response.status < 300:
        return ""
    if 300 <= response.status < 400:
        location = (response.getheader("Location") or "")[:200]
        return f"HTTP {response.status}: redirect to {location!r} not followed"
    return f"HTTP {response.status}"


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline passed")
    return left
