"""Where webhooks may go: https URLs whose host resolves to public addresses only.

An endpoint URL is the operator's, but whatever it names, the Celery worker POSTs to it
from inside Meterline's network (server-side request forgery). So, unless
METERLINE_WEBHOOK_ALLOW_PRIVATE is set (tests and local setups, which may then also use
http://):
- the scheme must be https, and the URL carries no user or password;
- every address the host resolves to must be public: not loopback, private, link-local,
  multicast, reserved, unspecified or shared (100.64/10), IPv4 inside IPv6 included
  (mapped, 6to4, Teredo);
- this is checked when the endpoint is made or changed (400 naming `url`), and again at
  each delivery on the addresses resolved for it, which are the very ones connected to
  (webhooks/sending.py): a DNS answer that changes in between (rebinding) cannot lead
  to a private address. Redirects are never followed.
"""

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_PORTS = {"https": 443, "http": 80}


class TargetRefused(Exception):
    """The URL may not be delivered to; the message says why, for the operator."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # with its query


def url_target(url: str, *, allow_private: bool) -> Target:
    """The parts of a webhook URL that is well formed and allowed (DNS not asked yet)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise TargetRefused(f"not a valid URL: {error}") from None
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes:
        raise TargetRefused(
            "must be an https:// URL" if not allow_private else "must be an https:// or http:// URL"
        )
    if not parts.hostname:
        raise TargetRefused("names no host")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("must not carry a user or password (requests are signed instead)")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, parts.hostname, port or DEFAULT_PORTS[parts.scheme], path)


def address_problem(address: str) -> str | None:
    """Why a webhook may not go to this IP address, or None if it is public."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    inner = _embedded_ipv4(ip)
    if inner is not None:
        problem = address_problem(str(inner))
        return f"{address} carries {problem}" if problem else None
    kinds = [
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
        ("non-public", not ip.is_global),
    ]
    for kind, matches in kinds:
        if matches:
            return f"{address} is a {kind} address"
    return None


def _embedded_ipv4(ip: ipaddress.IPv4Address | ipaddress.IPv6Address):
    if ip.version == 4:
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def host_addresses(host: str, port: int) -> list[str]:
    """Every address `host` resolves to now, in the resolver's order (TargetRefused if none)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise TargetRefused(f"{host} does not resolve ({error})") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def addresses_allowed(target: Target, *, allow_private: bool) -> list[str]:
    """The host's addresses, resolved once, all public (unless private ones are allowed)."""
    addresses = host_addresses(target.host, target.port)
    if not allow_private:
        for address in addresses:
            problem = address_problem(address)
            if problem:
                raise TargetRefused(f"{target.host} resolves to {problem}")
    return addresses


def url_problem(url: str, *, allow_private: bool) -> str | None:
    """Why an endpoint may not have this URL (checked when it is made or changed), or None."""
    try:
        addresses_allowed(url_target(url, allow_private=allow_private), allow_private=allow_private)
    except TargetRefused as refused:
        return str(refused)
    return None
