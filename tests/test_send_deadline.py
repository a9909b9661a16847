"""A send never outlives its claim's lease: the SMTP transport bounds every wait by the time the batch has
left, not only by the timeout (a server that answers a line at a time would hold a send for many timeouts).
The whole path, with real workers, is in tests/faults/test_slow_server.py."""

from __future__ import annotations

import pytest

from nurture.config.values import SmtpSettings
from nurture.content.mail import OutgoingEmail
from nurture.delivery.transports import TransportError
from nurture.delivery.transports.smtp import SmtpTransport
from tests.fixes_support import drip_smtp  # noqa: F401 (fixture)

MESSAGE = OutgoingEmail(envelope_from="bounces@juniper.test", recipient="slow@example.com",
                        message_id="<1@juniper.test>", data=b"Subject: hi\r\n\r\nhello\r\n")


def transport(port: int, timeout: float = 2.0) -> SmtpTransport:
    return SmtpTransport(SmtpSettings("127.0.0.1", port, None, None, "plain", timeout=timeout))


def test_it_gives_up_a_send_that_would_outlive_the_time_left(drip_smtp) -> None:  # noqa: F811
    server, port = drip_smtp
    server.drip["slow@example.com"] = 1  # 5 lines 0.5 s apart: each within the 2 s timeout, 2.5 s in all
    smtp = transport(port)
    with pytest.raises(TransportError, match="SMTP connection problem") as failed:
        smtp.send(MESSAGE, time_left=1.0)
    assert not failed.value.permanent  # tried again later, by whoever holds the step then
    assert server.received == []  # the server never got the message: nothing to send twice
    assert smtp.send(MESSAGE, time_left=5.0) == MESSAGE.message_id  # a new connection, the same message
    smtp.close()
    assert server.received == ["slow@example.com"]


def test_the_timeout_alone_lets_a_drip_fed_reply_run_past_it(drip_smtp) -> None:  # noqa: F811
    # Why the time left is needed at all: every wait here is shorter than the timeout.
    server, port = drip_smtp
    server.drip["slow@example.com"] = 1
    smtp = transport(port, timeout=1.0)
    assert smtp.send(MESSAGE) == MESSAGE.message_id
    smtp.close()
    assert server.received == ["slow@example.com"]


def test_it_sends_nothing_once_the_time_is_up(drip_smtp) -> None:  # noqa: F811
    server, port = drip_smtp
    smtp = transport(port)
    with pytest.raises(TransportError, match="ran out of time"):
        smtp.send(MESSAGE, time_left=0.0)
    assert server.received == []
