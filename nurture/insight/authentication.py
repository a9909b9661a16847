"""Is the From domain ready for the bulk-sender rules (Gmail and Yahoo since 2024, Microsoft since May
2025: SPF, DKIM and DMARC aligned with the From domain, one-click unsubscribe, reverse DNS for the sending
IPs)? What `nurture doctor` prints: one finding per rule, and for each missing one the exact record to add.

DNS that cannot be reached is "could not look", never "missing": a build without network must not fail.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_private_key

from nurture.config import Settings
from nurture.insight.dns_records import CouldNotLook, Lookup

OK, MISSING, WARN, UNKNOWN, SKIPPED = "ok", "missing", "warn", "could not look", "skipped"

# Relays whose SPF include is well known: (host suffix, the mechanism the sender's SPF record needs).
KNOWN_RELAYS = (
    (".amazonaws.com", "include:amazonses.com"), (".sendgrid.net", "include:sendgrid.net"),
    (".postmarkapp.com", "include:spf.mtasv.net"), (".mailgun.org", "include:mailgun.org"),
    (".gmail.com", "include:_spf.google.com"), (".office365.com", "include:spf.protection.outlook.com"),
    (".outlook.com", "include:spf.protection.outlook.com"), (".sparkpostmail.com", "include:sparkpostmail.com"),
    (".mandrillapp.com", "include:spf.mandrillapp.com"), (".zoho.com", "include:zoho.com"),
)


@dataclass(frozen=True)
class Finding:
    rule: str  # SPF, DKIM, DMARC, one-click unsubscribe, reverse DNS
    state: str  # ok | missing | warn | could not look | skipped
    detail: str
    advice: str = ""


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


def aligned(domain: str, from_domain: str) -> bool:
    """Relaxed DMARC alignment, roughly: the same domain, or one under the other. (The real rule compares
    organizational domains, which needs the public suffix list; this errs on the side of warning.)"""
    return domain == from_domain or domain.endswith("." + from_domain) or from_domain.endswith("." + domain)


def tags(record: str) -> dict[str, str]:
    """`v=DKIM1; k=rsa; p=...` → {v: DKIM1, k: rsa, p: ...} (whitespace inside values dropped, as RFC 6376)."""
    found = {}
    for part in record.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            found[name.strip().lower()] = "".join(value.split())
    return found


def check_all(settings: Settings, lookup: Lookup) -> list[Finding]:
    checks: list[tuple[str, Callable[[Settings, Lookup], Finding]]] = [
        ("SPF", spf), ("DKIM", dkim), ("DMARC", dmarc), ("reverse DNS", reverse_dns)]
    findings = [_looked(rule, check, settings, lookup) for rule, check in checks]
    return findings[:3] + [one_click(settings)] + findings[3:]


def _looked(rule: str, check: Callable[[Settings, Lookup], Finding], settings: Settings, lookup: Lookup) -> Finding:
    try:
        return check(settings, lookup)
    except CouldNotLook as exc:
        return Finding(rule, UNKNOWN, f"could not look: {exc}")


# --- SPF -----------------------------------------------------------------------------------------------------

def relay_host(settings: Settings) -> str | None:
    return settings.smtp.host.lower() if settings.email_backend == "smtp" and settings.smtp else None


def relay_mechanism(host: str | None) -> str | None:
    if host is None:
        return None
    return next((mechanism for suffix, mechanism in KNOWN_RELAYS if host.endswith(suffix)), None)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _covers(record: str, addresses: list[str]) -> bool:
    networks = []
    for term in record.split()[1:]:
        name, _, value = term.lstrip("+").partition(":")
        if name.lower() in ("ip4", "ip6") and value:
            try:
                networks.append(ipaddress.ip_network(value, strict=False))
            except ValueError:
                continue
    ips = [ip for ip in map(_ip, addresses) if ip is not None]
    return bool(ips) and all(any(ip in net for net in networks if net.version == ip.version) for ip in ips)


def spf(settings: Settings, lookup: Lookup) -> Finding:
    """SPF is checked on the envelope sender's domain (the VERP return path: BOUNCE_ADDRESS or MAIL_FROM)."""
    domain, from_domain = domain_of(settings.bounce_address), settings.mail_domain
    host = relay_host(settings)
    wanted = relay_mechanism(host) or (f"ip4:{host}" if host and _ip(host) else "include:<your relay's SPF domain>")
    records = [r for r in lookup.txt(domain) if r.lower().startswith("v=spf1")]
    if not records:
        return Finding("SPF", MISSING, f"no SPF record at {domain} (the envelope sender's domain)",
                       f'add a TXT record at {domain}:  "v=spf1 {wanted} ~all"')
    if len(records) > 1:
        return Finding("SPF", MISSING, f"{len(records)} SPF records at {domain}: receivers treat that as an "
                       f"error (permerror)", "merge them into one TXT record starting v=spf1")
    record = records[0]
    if not aligned(domain, from_domain):
        return Finding("SPF", WARN, f"{record} at {domain}, which is not {from_domain} or under it: SPF passes "
                       f"but does not align for DMARC", f"set BOUNCE_ADDRESS to an address at {from_domain} or a "
                       f"subdomain of it")
    return _spf_covers_relay(record, domain, host, lookup)


def _spf_covers_relay(record: str, domain: str, host: str | None, lookup: Lookup) -> Finding:
    if host is None:
        return Finding("SPF", OK, f"{record} (EMAIL_BACKEND is not smtp: no relay to check it against)")
    known = relay_mechanism(host)
    terms = [term.lstrip("+").lower() for term in record.split()]
    if known:
        if known in terms:
            return Finding("SPF", OK, f"{record} (covers the relay {host})")
        return Finding("SPF", MISSING, f"{record} does not include your relay {host}",
                       f"add {known} to the SPF record at {domain}, before its all")
    addresses = [host] if _ip(host) else lookup.addresses(host)
    if _covers(record, addresses):
        return Finding("SPF", OK, f"{record} (covers the relay {host}: {', '.join(addresses)})")
    if any(term.startswith(("include:", "a", "mx", "redirect=")) for term in terms[1:]):
        return Finding("SPF", WARN, f"{record}: could not tell whether it covers the relay {host} "
                       f"(an include, a or mx is not followed here)",
                       f"make sure the record names {host}'s sending IPs ({', '.join(addresses) or 'none found'})")
    return Finding("SPF", MISSING, f"{record} does not cover the relay {host} ({', '.join(addresses) or 'no address'})",
                   f"add the relay's SPF include (see its documentation) or ip4:<its sending IPs> at {domain}")


# --- DKIM ----------------------------------------------------------------------------------------------------

def our_dkim_keys(private_pem: bytes) -> tuple[bytes, ...]:
    """The public key forms a DKIM record's p= may carry for our private key (SubjectPublicKeyInfo DER,
    or the bare RSA key; for Ed25519 the raw 32 bytes)."""
    public = load_pem_private_key(private_pem, password=None).public_key()
    if isinstance(public, ed25519.Ed25519PublicKey):
        return (public.public_bytes(Encoding.Raw, PublicFormat.Raw),)
    return (public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo),
            public.public_bytes(Encoding.DER, PublicFormat.PKCS1))


def dkim(settings: Settings, lookup: Lookup) -> Finding:
    key = settings.dkim
    if key is None:
        return Finding("DKIM", WARN, "nurture does not sign (DKIM_SELECTOR, DKIM_DOMAIN, DKIM_PRIVATE_KEY are not "
                       "set): unless your relay signs with your domain, receivers see no DKIM",
                       f"set the three DKIM_* variables, or turn on your relay's DKIM for {settings.mail_domain}")
    name = f"{key.selector}._domainkey.{key.domain}"
    ours = our_dkim_keys(key.private_key)
    publish = base64.b64encode(ours[0]).decode()
    kind = "ed25519" if len(ours) == 1 else "rsa"
    record = f'add a TXT record at {name}:  "v=DKIM1; k={kind}; p={publish}"'
    published = [tags(r) for r in lookup.txt(name) if "p=" in r]
    if not published:
        return Finding("DKIM", MISSING, f"no DKIM key at {name}", record)
    try:
        keys = [base64.b64decode(t.get("p", ""), validate=True) for t in published]
    except (binascii.Error, ValueError):
        return Finding("DKIM", MISSING, f"the key at {name} is not base64", f"replace it: {record}")
    if not any(k in ours for k in keys):
        revoked = all(not k for k in keys)
        what = "is revoked (empty p=)" if revoked else "is not the key nurture signs with (DKIM_PRIVATE_KEY)"
        return Finding("DKIM", MISSING, f"the key at {name} {what}", f"replace it: {record}")
    if not aligned(key.domain, settings.mail_domain):
        return Finding("DKIM", WARN, f"the key at {name} matches, but d={key.domain} does not align with "
                       f"{settings.mail_domain}", f"sign with DKIM_DOMAIN={settings.mail_domain}")
    return Finding("DKIM", OK, f"the key at {name} matches DKIM_PRIVATE_KEY (d={key.domain})")


# --- DMARC ---------------------------------------------------------------------------------------------------

def dmarc(settings: Settings, lookup: Lookup) -> Finding:
    domain = settings.mail_domain
    # A subdomain without its own record falls back to its organizational domain's (taken here as the
    # last two labels, which is wrong for co.uk and the like: then the record is asked for at co.uk).
    names = [f"_dmarc.{domain}"] + ([f"_dmarc.{'.'.join(domain.split('.')[-2:])}"] if domain.count(".") > 1 else [])
    for name in names:
        records = [r for r in lookup.txt(name) if r.replace(" ", "").upper().startswith("V=DMARC1")]
        if records:
            policy = tags(records[0]).get("p")
            if policy not in ("none", "quarantine", "reject"):
                return Finding("DMARC", MISSING, f"{records[0]} at {name} has no valid p= policy",
                               f'make it  "v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain}"')
            return Finding("DMARC", OK, f"{records[0]} at {name} (p={policy})")
    return Finding("DMARC", MISSING, f"no DMARC record at _dmarc.{domain}",
                   f'add a TXT record at _dmarc.{domain}:  "v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain}" '
                   f"(p=none is the least the bulk-sender rules accept; tighten it once the reports show all "
                   f"your mail passes)")


# --- one-click unsubscribe, reverse DNS ----------------------------------------------------------------------

def one_click(settings: Settings) -> Finding:
    """Every marketing email carries List-Unsubscribe (BASE_URL/u/...) and List-Unsubscribe-Post (RFC 8058);
    what can be wrong is the address: mailbox providers offer one click only on an https link."""
    if settings.base_url.startswith("https://"):
        signed = " and signed by DKIM" if settings.dkim else ""
        return Finding("one-click unsubscribe", OK, f"List-Unsubscribe <{settings.base_url}/u/...> with "
                       f"List-Unsubscribe-Post: List-Unsubscribe=One-Click in every marketing email{signed}")
    return Finding("one-click unsubscribe", MISSING, f"BASE_URL is {settings.base_url}: the List-Unsubscribe "
                   f"link must be https for Gmail and Yahoo to offer one click",
                   "set BASE_URL to the public https address the service is reached at")


def reverse_dns(settings: Settings, lookup: Lookup) -> Finding:
    """The relay's address should have a PTR name that resolves back to it. What the receiver sees is the
    relay's outbound address, which may differ: this checks the one nurture talks to."""
    host = relay_host(settings)
    if host is None:
        return Finding("reverse DNS", SKIPPED, "EMAIL_BACKEND is not smtp: no relay to look at")
    addresses = [host] if _ip(host) else lookup.addresses(host)
    if not addresses or any(_ip(a) is not None and _ip(a).is_loopback for a in addresses):  # type: ignore[union-attr]
        return Finding("reverse DNS", SKIPPED, f"the relay {host} is on this machine or has no address: its "
                       f"outbound addresses cannot be seen from here")
    for address in addresses:
        names = lookup.ptr(address)
        if not names:
            return Finding("reverse DNS", MISSING, f"no PTR record for {address} (the relay {host})",
                           "ask whoever runs that address (the relay, the hosting provider) to set its reverse DNS")
        if not any(address in lookup.addresses(name) for name in names):
            return Finding("reverse DNS", WARN, f"{address} points to {', '.join(names)}, which does not resolve "
                           f"back to it", f"make {names[0]} resolve to {address}")
    return Finding("reverse DNS", OK, f"the relay {host} ({', '.join(addresses)}) has forward-confirmed reverse DNS")
