"""The HTTP transport for webhooks out: one signed POST, a short timeout, no redirects, and no private
addresses unless allowed. It never touches the database: the caller records the attempt.

SSRF care: the host is resolved here, every address it resolves to is checked, and the connection is made
to the checked address (the TLS name and Host header stay the endpoint's), so a DNS answer that changes
between the check and the connect (rebinding) cannot lead the worker into the private network.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3
from urllib3.exceptions import HTTPError, NewConnectionError, SSLError, TimeoutError

from nurture.delivery.transports import TransportError

USER_AGENT = "nurture-webhooks/1"


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # with the query

    @classmethod
    def of(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TransportError(f"not an http(s) address: {url[:100]!r}", permanent=True)
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise TransportError("the address has a bad port", permanent=True) from None
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(parts.scheme, parts.hostname, port, path)


def resolve(host: str, port: int, allow_private: bool) -> str:
    """The address to connect to. Refuses a host any of whose addresses is not public, unless allowed."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TransportError(f"cannot resolve {host}: {exc}") from None
    addresses = [info[4][0] for info in infos]
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if not allow_private and (not ip.is_global or ip.is_multicast):
            raise TransportError(f"{host} resolves to a private or reserved address ({ip}); refused "
                                 f"(set WEBHOOKS_ALLOW_PRIVATE=true to allow)", permanent=True)
    return addresses[0]


class WebhookTransport:
    """POSTs one body. `send` returns the 2xx status code, or raises TransportError (a non-2xx status in
    `code`; `permanent` when trying again cannot help, e.g. a refused address)."""

    def __init__(self, timeout_seconds: float, allow_private: bool) -> None:
        self.timeout = urllib3.Timeout(connect=timeout_seconds, read=timeout_seconds)
        self.allow_private = allow_private

    def send(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        target = Target.of(url)
        address = resolve(target.host, target.port, self.allow_private)
        default_port = 443 if target.scheme == "https" else 80
        host_header = target.host if target.port == default_port else f"{target.host}:{target.port}"
        pool = self._pool(target, address)
        try:
            response = pool.urlopen("POST", target.path, body=body, redirect=False, retries=False,
                                    headers={**headers, "Host": host_header, "User-Agent": USER_AGENT},
                                    preload_content=False)
            response.read(4096)  # the body is not used; read a little so the connection closes cleanly
            response.release_conn()
        except HTTPError as exc:
            raise TransportError(_said(exc, self.timeout.connect_timeout)) from None
        finally:
            pool.close()
        if not 200 <= response.status < 300:
            raise TransportError(f"HTTP {response.status}", code=response.status)
        return response.status

    def _pool(self, target: Target, address: str) -> urllib3.HTTPConnectionPool:
        if target.scheme == "https":
            return urllib3.HTTPSConnectionPool(address, target.port, timeout=self.timeout, maxsize=1,
                                               server_hostname=target.host, assert_hostname=target.host)
        return urllib3.HTTPConnectionPool(address, target.port, timeout=self.timeout, maxsize=1)


def _said(exc: HTTPError, seconds: object) -> str:
    """urllib3's error in a few words for the log: `connection refused`, `timed out after 5 s` ..."""
    if isinstance(exc, NewConnectionError):  # first: urllib3 makes it a kind of timeout, for old callers
        # "HTTPConnection(...): Failed to establish a new connection: [Errno 111] Connection refused"
        return "cannot connect: " + re.sub(r"^\[Errno -?\d+\] ", "", str(exc).rsplit(": ", 1)[-1])
    if isinstance(exc, TimeoutError):
        return f"timed out after {seconds} s"
    if isinstance(exc, SSLError):
        return f"TLS error: {exc}"[:300]
    return f"{type(exc).__name__}: {exc}"[:300]
