"""One webhook POST: to the addresses checked for it, within the timeout, no redirects.

The host is resolved once (webhooks/addresses.py checks every address), and the socket
is connected to one of those very addresses; http.client then speaks over that socket,
with the URL's host in the Host header and, for https, in the TLS server name (SNI) and
the certificate check. So nothing resolves the name a second time, and a DNS answer
that changes meanwhile cannot send the request elsewhere. A 3xx is an answer like any
non-2xx: recorded, retried, never followed.
"""

import http.client
import socket
import ssl
import time
from dataclasses import dataclass
from functools import cache

from webhooks.addresses import TargetRefused, address_problem, addresses_allowed, url_target

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
    """POST `body` to `url`; never raises for anything the network or the receiver does."""
    deadline = time.monotonic() + timeout
    try:
        target = url_target(url, allow_private=allow_private)
        addresses = addresses_allowed(target, allow_private=allow_private)
        sock = _connect(addresses, target.port, deadline, allow_private=allow_private)
        return _exchange(sock, target, headers, body, deadline)
    except TargetRefused as refused:
        return Answer(None, f"refused: {refused}")
    except TimeoutError:
        return Answer(None, f"timed out after {timeout:g} s")
    except ConnectionRefusedError:
        return Answer(None, "connection refused")
    except ssl.SSLError as error:
        reason = getattr(error, "verify_message", None) or error.reason or error
        return Answer(None, f"TLS: {reason}")
    except (OSError, http.client.HTTPException) as error:
        return Answer(None, f"{type(error).__name__}: {error}")


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


def _exchange(
    sock: socket.socket, target, headers: dict[str, str], body: bytes, deadline: float
) -> Answer:
    connection = http.client.HTTPConnection(target.host, target.port)
    try:
        if target.scheme == "https":
            sock.settimeout(_left(deadline))
            sock = tls_context().wrap_socket(sock, server_hostname=target.host)
        connection.sock = sock
        sock.settimeout(_left(deadline))
        sent = {
            **headers,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Connection": "close",
        }
        connection.request("POST", target.path, body=body, headers=sent)
        sock.settimeout(_left(deadline))
        response = connection.getresponse()
        response.read(BODY_READ_LIMIT)
    finally:
        connection.close()
    return Answer(response.status, _error(response))


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
