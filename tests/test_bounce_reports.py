"""Reading returned messages (nurture.content.reports) and the signed return path (nurture.rules.tokens),
without fixtures: bytes in, a Report out."""

from __future__ import annotations

import pytest

from nurture.content.reports import parse_report
from nurture.rules.tokens import LinkSigner
from tests.bounce_samples import arf_complaint, gmail_dsn_whole_message, postfix_dsn, qmail_bounce

SIGNER = LinkSigner("test-secret-key-0123456789")
VERP = SIGNER.return_path(42, "bounces@juniper.test")
SENT = (b"From: Juniper Pottery Studio <hello@juniper.test>\r\nTo: ann@example.com\r\n"
        b"Subject: Welcome\r\nMessage-ID: <nurture.42." + SIGNER.message_tag(42).encode()
        + b"@juniper.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nHello Ann\r\n")


def test_the_return_path_names_its_delivery_and_nothing_else() -> None:
    assert VERP.startswith("bounces+16.") and VERP.endswith("@juniper.test")
    assert SIGNER.returned_delivery(VERP) == 42
    assert SIGNER.returned_delivery(f"<{VERP.upper()}>") == 42  # an MTA that folds case changes nothing
    assert SIGNER.returned_delivery(f"<nurture.42.{SIGNER.message_tag(42)}@juniper.test>") == 42


@pytest.mark.parametrize("forged", [
    "bounces+17." + VERP.split(".", 1)[1],  # another delivery, the MAC of this one
    VERP.replace("+16.", "+16.0"),  # a MAC one character longer
    LinkSigner("another-secret-key-0000").return_path(42, "bounces@juniper.test"),  # someone else's key
    "bounces+16.@juniper.test", "bounces@juniper.test", "ann@example.com", "",
    "<nurture.42.0123456789@juniper.test>", "<nurture.43." + SIGNER.message_tag(42) + "@juniper.test>",
])
def test_a_forged_return_path_names_no_delivery(forged: str) -> None:
    assert SIGNER.returned_delivery(forged) is None


def test_a_postfix_dsn_is_a_hard_bounce_with_its_status_and_words() -> None:
    report = parse_report(postfix_dsn(VERP, "ann@example.com", SENT))
    assert report.kind == "hard"
    assert report.status == "5.1.1"
    assert report.recipient == "ann@example.com"
    assert report.reporter == "mx.example.net"
    assert report.diagnostic and "User unknown" in report.diagnostic
    assert report.traces[0] == VERP  # Delivered-To, the most direct trace, first
    assert report.fingerprint == "<20261123090005.3F1A2B@mx.example.net>"
    assert report.reason.startswith("hard bounce: 5.1.1 550 5.1.1 <ann@example.com>: Recipient address rejected")


def test_a_failed_4xx_dsn_is_a_soft_bounce_traced_by_the_quoted_message_id() -> None:
    report = parse_report(gmail_dsn_whole_message("ann@example.com", SENT))
    assert (report.kind, report.status) == ("soft", "4.2.2")
    assert VERP not in report.traces  # the mailbox kept no envelope: only the quoted original names it
    assert [t for t in report.traces if SIGNER.returned_delivery(t) == 42] == [
        f"nurture.42.{SIGNER.message_tag(42)}@juniper.test"]


def test_a_delayed_dsn_is_only_a_warning() -> None:
    report = parse_report(postfix_dsn(VERP, "ann@example.com", SENT, status="4.4.1", action="delayed",
                                      diagnostic="connect to mail.example.com timed out"))
    assert report.kind == "delayed"


def test_a_semicolon_in_the_servers_words_is_kept() -> None:
    data = postfix_dsn(VERP, "ann@example.com", SENT, diagnostic="550 5.1.1 no such user; check the address")
    assert parse_report(data).diagnostic == "550 5.1.1 no such user; check the address"


def test_a_dsn_without_a_status_field_is_classed_by_its_reply_code() -> None:
    data = postfix_dsn(VERP, "ann@example.com", SENT, status="", diagnostic="452 mailbox full")
    assert (parse_report(data).kind, parse_report(data).status) == ("soft", "4.0.0")


@pytest.mark.parametrize(("reply", "kind", "status"), [
    ("550 5.1.1 No such user", "hard", "5.1.1"),
    ("452 4.2.2 Mailbox over quota, giving up after 7 days", "soft", "4.2.2"),
    ("554 delivery error: dd This user doesn't have an account", "hard", "5.0.0"),
])
def test_a_plain_qmail_bounce_is_read_by_flufl_bounce(reply: str, kind: str, status: str) -> None:
    report = parse_report(qmail_bounce(VERP, "ann@example.com", SENT, reply))
    assert (report.kind, report.status, report.recipient) == (kind, status, "ann@example.com")
    assert report.traces[0] == VERP
    assert report.diagnostic == f"Remote host said: {reply}"


def test_an_arf_abuse_report_is_a_complaint_traced_by_original_mail_from() -> None:
    report = parse_report(arf_complaint(VERP, "ann@example.com", SENT))
    assert report.kind == "complaint"
    assert report.recipient == "ann@example.com"
    assert report.reporter == "Yahoo!-Mail-Feedback/2.0"
    assert VERP in report.traces and "fbl@juniper.test" in report.traces
    assert report.reason == "spam complaint: feedback type abuse"


def test_a_not_spam_feedback_report_is_no_complaint() -> None:
    assert parse_report(arf_complaint(VERP, "ann@example.com", SENT, "not-spam")).kind == "unknown"


def test_an_ordinary_reply_is_no_bounce() -> None:
    data = (b"From: ann@example.com\r\nTo: " + VERP.encode() + b"\r\nSubject: Re: Welcome\r\n"
            b"Message-ID: <reply.1@example.com>\r\n\r\nThanks, see you at the studio!\r\n")
    report = parse_report(data, (VERP,))
    assert report.kind == "unknown"
    assert report.traces[0] == VERP  # the envelope recipient given by the SMTP endpoint comes first
