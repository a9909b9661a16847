"""`nurture doctor` against a real DNS server on 127.0.0.1 (tests/doctor_support.py): what it finds in the
From domain's records, the exact record it tells you to add, and that no DNS at all is no failure."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from nurture.cli import main
from tests.conftest import worker_env
from tests.doctor_support import DnsResponder, closed_port, txt

RELAY = "email-smtp.us-west-2.amazonaws.com"


def rsa_pem() -> tuple[str, str]:
    """A DKIM key pair: the private PEM (DKIM_PRIVATE_KEY) and the p= of its DNS record."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    public = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return pem, base64.b64encode(public).decode()


@pytest.fixture(scope="module")
def dkim_key() -> tuple[str, str]:
    return rsa_pem()


def good_zone(p: str) -> dict[tuple[str, str], list[str]]:
    return {
        ("juniper.test", "TXT"): [txt("v=spf1 include:amazonses.com ~all"), txt("google-site-verification=abc")],
        ("s1._domainkey.juniper.test", "TXT"): [txt(f"v=DKIM1; k=rsa; p={p}")],
        ("_dmarc.juniper.test", "TXT"): [txt("v=DMARC1; p=quarantine; rua=mailto:dmarc@juniper.test")],
        (RELAY, "A"): ["192.0.2.25"],
        ("25.2.0.192.in-addr.arpa", "PTR"): [RELAY + "."],
    }


@pytest.fixture
def env(project: Path, sqlite_url: str, dkim_key, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    for name, value in worker_env(project, sqlite_url, EMAIL_BACKEND="smtp", SMTP_URL=f"smtp://{RELAY}:587",
                                  BOUNCE_ADDRESS="bounces@juniper.test", DKIM_SELECTOR="s1",
                                  DKIM_DOMAIN="juniper.test", DKIM_PRIVATE_KEY=dkim_key[0]).items():
        monkeypatch.setenv(name, value)


def serve(records: dict[tuple[str, str], list[str]]) -> Iterator[DnsResponder]:
    server = DnsResponder(records)
    yield server
    server.close()


def doctor(nameserver: str, timeout: str = "5") -> Result:
    return CliRunner().invoke(main, ["doctor", "--nameserver", nameserver, "--timeout", timeout])


def test_a_domain_with_everything_in_place_passes(env, dkim_key) -> None:  # noqa: ANN001
    for server in serve(good_zone(dkim_key[1])):
        result = doctor(server.address)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == ("Mail authentication for juniper.test (From: Juniper Pottery Studio <hello@juniper.test>; "
                        "envelope sender at juniper.test)")
    states = [line.split()[:2] for line in lines[1:6]]
    assert states == [["OK", "SPF"], ["OK", "DKIM"], ["OK", "DMARC"], ["OK", "one-click"], ["OK", "reverse"]]
    assert "v=spf1 include:amazonses.com ~all (covers the relay email-smtp.us-west-2.amazonaws.com)" in lines[1]
    assert "the key at s1._domainkey.juniper.test matches DKIM_PRIVATE_KEY (d=juniper.test)" in lines[2]
    assert "(p=quarantine)" in lines[3]
    assert lines[-1] == "nothing missing"
    assert ("s1._domainkey.juniper.test", "TXT") in server.queries  # asked the server, over UDP


def test_it_says_exactly_what_to_add_for_each_missing_record(env, dkim_key) -> None:  # noqa: ANN001
    other_p = rsa_pem()[1]
    zone = {("juniper.test", "TXT"): [txt("google-site-verification=abc")],
            ("s1._domainkey.juniper.test", "TXT"): [txt(f"v=DKIM1; k=rsa; p={other_p}")],
            (RELAY, "A"): ["192.0.2.25"]}
    for server in serve(zone):
        result = doctor(server.address)
    assert result.exit_code == 1
    out = result.output
    assert 'fix: add a TXT record at juniper.test:  "v=spf1 include:amazonses.com ~all"' in out
    assert "the key at s1._domainkey.juniper.test is not the key nurture signs with (DKIM_PRIVATE_KEY)" in out
    assert f'fix: replace it: add a TXT record at s1._domainkey.juniper.test:  "v=DKIM1; k=rsa; p={dkim_key[1]}"' in out
    assert ('fix: add a TXT record at _dmarc.juniper.test:  "v=DMARC1; p=none; '
            'rua=mailto:dmarc-reports@juniper.test"') in out
    assert "no PTR record for 192.0.2.25 (the relay email-smtp.us-west-2.amazonaws.com)" in out
    assert out.endswith("nurture: missing: SPF, DKIM, DMARC, reverse DNS\n")


def test_an_spf_record_that_leaves_out_the_relay_is_missing_its_include(env, dkim_key) -> None:  # noqa: ANN001
    zone = good_zone(dkim_key[1])
    zone[("juniper.test", "TXT")] = [txt("v=spf1 include:_spf.google.com -all")]
    zone[("s1._domainkey.juniper.test", "TXT")] = [txt("v=DKIM1; k=rsa; p=")]
    for server in serve(zone):
        result = doctor(server.address)
    assert result.exit_code == 1
    assert "does not include your relay email-smtp.us-west-2.amazonaws.com" in result.output
    assert "fix: add include:amazonses.com to the SPF record at juniper.test, before its all" in result.output
    assert "the key at s1._domainkey.juniper.test is revoked (empty p=)" in result.output


def test_two_spf_records_and_a_dmarc_without_policy_are_errors(env, dkim_key) -> None:  # noqa: ANN001
    zone = good_zone(dkim_key[1])
    zone[("juniper.test", "TXT")] = [txt("v=spf1 include:amazonses.com ~all"), txt("v=spf1 mx -all")]
    zone[("_dmarc.juniper.test", "TXT")] = [txt("v=DMARC1; rua=mailto:d@juniper.test")]
    for server in serve(zone):
        result = doctor(server.address)
    assert "2 SPF records at juniper.test: receivers treat that as an error (permerror)" in result.output
    assert "has no valid p= policy" in result.output
    assert result.output.endswith("nurture: missing: SPF, DMARC\n")


def test_without_dns_it_says_it_could_not_look_and_does_not_fail(env) -> None:  # noqa: ANN001
    result = doctor(closed_port(), timeout="1")  # the refused query is retried until the timeout
    assert result.exit_code == 0, result.output
    assert [line.split()[:3] for line in result.output.splitlines()[1:4]] == [
        ["COULD", "NOT", "LOOK"]] * 3
    assert "DNS could not be reached (offline?): the records were not checked. This is not a failure." in result.output
    assert result.output.endswith("nothing missing of what could be looked up\n")
