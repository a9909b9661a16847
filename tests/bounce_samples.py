"""Returned messages as real MTAs and mailbox providers write them, around a message nurture really sent.

Modelled on a Postfix DSN (RFC 3464, multipart/report with text/rfc822-headers), a Gmail-style DSN that
returns the whole message, a qmail plain-text bounce (no DSN at all), and an ARF feedback report as in
RFC 5965's appendix B (Yahoo and Microsoft JMRP send this shape).
"""

from __future__ import annotations


def original_headers(sent: bytes) -> bytes:
    """The header block of the message as it was sent, with the Return-Path a receiver adds."""
    return sent.split(b"\r\n\r\n", 1)[0].replace(b"\r\n", b"\n")


def postfix_dsn(verp: str, recipient: str, sent: bytes, status: str = "5.1.1", action: str = "failed",
                diagnostic: str = "550 5.1.1 <{r}>: Recipient address rejected: User unknown in virtual "
                                  "mailbox table") -> bytes:
    headers = original_headers(sent).decode()
    text = diagnostic.format(r=recipient)
    return f"""Return-Path: <>
Delivered-To: {verp}
Received: by mx.juniper.test (Postfix) id 3F1A2B; Mon, 23 Nov 2026 09:00:05 +0000 (UTC)
Date: Mon, 23 Nov 2026 09:00:05 +0000 (UTC)
From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: {verp}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="3F1A2B.1764147605/mx.example.net"
Message-Id: <20261123090005.3F1A2B@mx.example.net>

This is a MIME-encapsulated message.

--3F1A2B.1764147605/mx.example.net
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.net.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<{recipient}>: host mail.example.com[192.0.2.7] said: {text}

--3F1A2B.1764147605/mx.example.net
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
X-Postfix-Queue-ID: 3F1A2B
X-Postfix-Sender: rfc822; {verp}
Arrival-Date: Mon, 23 Nov 2026 09:00:01 +0000 (UTC)

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: {action}
Status: {status}
Remote-MTA: dns; mail.example.com
Diagnostic-Code: smtp; {text}

--3F1A2B.1764147605/mx.example.net
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

Return-Path: <{verp}>
{headers}

--3F1A2B.1764147605/mx.example.net--
""".replace("\n", "\r\n").encode()


def gmail_dsn_whole_message(recipient: str, sent: bytes, status: str = "4.2.2") -> bytes:
    """A soft bounce that quotes the whole original (message/rfc822) and arrives at the mailbox without
    any Delivered-To: only the original's own Message-ID says which delivery it is."""
    original = sent.decode().replace("\r\n", "\n")
    return f"""From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
To: bounces@juniper.test
Subject: Delivery Status Notification (Failure)
Date: Tue, 24 Nov 2026 10:00:00 -0800
Message-ID: <5f1e8d00.gmail-dsn.{status}@mx.google.com>
MIME-Version: 1.0
Content-Type: multipart/report; boundary="000000000000aaaa"; report-type=delivery-status

--000000000000aaaa
Content-Type: text/plain; charset="UTF-8"

The recipient's inbox is out of storage space. Please direct the recipient to
https://support.google.com/mail/?p=OverQuotaTemp

--000000000000aaaa
Content-Type: message/delivery-status

Reporting-MTA: dns; googlemail.com
Arrival-Date: Tue, 24 Nov 2026 09:59:00 -0800 (PST)

Final-Recipient: rfc822; {recipient}
Action: failed
Status: {status}
Diagnostic-Code: smtp; 452 {status} The recipient's inbox is out of storage space.
Last-Attempt-Date: Tue, 24 Nov 2026 10:00:00 -0800 (PST)

--000000000000aaaa
Content-Type: message/rfc822

{original}
--000000000000aaaa--
""".replace("\n", "\r\n").encode()


def qmail_bounce(verp: str, recipient: str, sent: bytes, reply: str = "550 5.1.1 No such user") -> bytes:
    """qmail writes no DSN: prose, the remote reply, and the original below a break line."""
    original = sent.decode().replace("\r\n", "\n")
    return f"""Return-Path: <>
Delivered-To: {verp}
Date: 23 Nov 2026 09:00:09 -0000
From: MAILER-DAEMON@mail.example.org
To: {verp}
Subject: failure notice
Message-ID: <qmail-bounce.{reply[:3]}@mail.example.org>

Hi. This is the qmail-send program at mail.example.org.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<{recipient}>:
192.0.2.9 does not like recipient.
Remote host said: {reply}
Giving up on 192.0.2.9.

--- Below this line is a copy of the message.

Return-Path: <{verp}>
{original}
""".replace("\n", "\r\n").encode()


def arf_complaint(original_mail_from: str, recipient: str, sent: bytes, feedback_type: str = "abuse",
                  to: str = "fbl@juniper.test") -> bytes:
    """RFC 5965 appendix B.2, as Yahoo's and Microsoft's feedback loops send it to the registered
    address (not the return path: Original-Mail-From carries that)."""
    original = sent.decode().replace("\r\n", "\n")
    return f"""From: <feedback@arf.mail.yahoo.com>
Date: Thu, 26 Nov 2026 14:00:00 -0800 (PST)
Subject: FW: Welcome to Juniper Pottery Studio
To: <{to}>
MIME-Version: 1.0
Message-ID: <arf.{feedback_type}.2026@arf.mail.yahoo.com>
Content-Type: multipart/report; report-type=feedback-report;
     boundary="part1_13d.2e68ed54_boundary"

--part1_13d.2e68ed54_boundary
Content-Type: text/plain; charset="US-ASCII"
Content-Transfer-Encoding: 7bit

This is an email abuse report for an email message received from IP
192.0.2.1 on Thu, 26 Nov 2026 14:00:00 -0800.
For more information about this format please see
http://www.mipassoc.org/arf/.

--part1_13d.2e68ed54_boundary
Content-Type: message/feedback-report

Feedback-Type: {feedback_type}
User-Agent: Yahoo!-Mail-Feedback/2.0
Version: 1
Original-Mail-From: <{original_mail_from}>
Original-Rcpt-To: <{recipient}>
Arrival-Date: Thu, 26 Nov 2026 13:58:00 -0800
Reporting-MTA: dns; mail.yahoo.com
Source-IP: 192.0.2.1

--part1_13d.2e68ed54_boundary
Content-Type: message/rfc822
Content-Disposition: inline

{original}
--part1_13d.2e68ed54_boundary--
""".replace("\n", "\r\n").encode()
