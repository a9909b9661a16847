"""DNS lookups for `nurture doctor`, through dnspython: what a name's TXT, A, AAAA and PTR records say,
or that nobody could be asked (offline, no resolver answering) — which is not the same as "no record"."""

from __future__ import annotations

import dns.exception
import dns.resolver
import dns.reversename

NOT_THERE = (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer)
# A timeout, every nameserver failing or refusing, no nameserver configured at all: we could not look.
UNREACHABLE = (dns.exception.Timeout, dns.resolver.NoNameservers, dns.resolver.NoResolverConfiguration,
               OSError)


class CouldNotLook(Exception):
    """No resolver answered: the machine is offline, or DNS is blocked here."""


def make_resolver(nameserver: str | None = None, timeout: float = 3.0) -> dns.resolver.Resolver:
    """The system's resolver, or one nameserver (`host` or `host:port`); one `timeout` per lookup.
    EDNS with a 1232-byte payload: a DKIM key's TXT record does not fit the 512 bytes of plain DNS."""
    if nameserver:
        resolver = dns.resolver.Resolver(configure=False)
        host, _, port = nameserver.rpartition(":") if nameserver.count(":") == 1 else (nameserver, "", "")
        resolver.nameservers = [host]
        resolver.port = int(port) if port else 53
    else:
        try:
            resolver = dns.resolver.Resolver()
        except dns.resolver.NoResolverConfiguration as exc:
            raise CouldNotLook("no DNS resolver is configured on this machine") from exc
    resolver.lifetime = timeout
    resolver.use_edns(0, 0, 1232)
    return resolver


class Lookup:
    """One resolver, asked once per name and type: the checks ask for the same records more than once."""

    def __init__(self, resolver: dns.resolver.Resolver) -> None:
        self.resolver = resolver
        self._seen: dict[tuple[str, str], list[str]] = {}
        self._unreachable: CouldNotLook | None = None  # once DNS did not answer, don't wait for it again

    def records(self, name: str, rdtype: str) -> list[str]:
        """The records' text ([] when the name or the type is not there). Raises CouldNotLook."""
        key = (name.lower().rstrip("."), rdtype)
        if self._unreachable is not None:
            raise CouldNotLook(f"not asked for {key[0]} {rdtype}: DNS did not answer the lookup before")
        if key not in self._seen:
            try:
                self._seen[key] = self._ask(*key)
            except CouldNotLook as exc:
                self._unreachable = exc
                raise
        return self._seen[key]

    def _ask(self, name: str, rdtype: str) -> list[str]:
        try:
            answer = self.resolver.resolve(name, rdtype, search=False)
        except NOT_THERE:
            return []
        except UNREACHABLE as exc:
            raise CouldNotLook(f"no DNS answer for {name} {rdtype}: {exc}") from exc
        if rdtype == "TXT":  # a long TXT record comes in 255-byte strings: one value, joined without spaces
            return [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in answer]
        return [rdata.to_text().rstrip(".") for rdata in answer]

    def txt(self, name: str) -> list[str]:
        return self.records(name, "TXT")

    def addresses(self, host: str) -> list[str]:
        return self.records(host, "A") + self.records(host, "AAAA")

    def ptr(self, address: str) -> list[str]:
        return self.records(dns.reversename.from_address(address).to_text(), "PTR")
