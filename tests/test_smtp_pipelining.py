"""PIPELINING (RFC 2920): where the server offers it, MAIL, RCPT and DATA go out in one write and their
replies are read together; the bytes are smtplib's own, a refusal raises what smtplib raises, and nothing
of the message is sent unless all three were accepted (nurture/delivery/transports/smtp_client.py, _Pipelining)."""

from __future__ import annotations

import smtplib
import socket
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nurture.config.values import SmtpSettings
from nurture.content.mail import OutgoingEmail
from nurture.delivery.transports import TransportError
from nurture.delivery.transports.smtp import SmtpTransport
from nurture.delivery.transports.smtp_client import SmtpClient as _Client
from tests.conftest import FakeClock, SmtpServer
from tests.helpers import add_contact, deliveries, send_due

OFFERED = {"size": "10000000", "8bitmime": "", "pipelining": ""}
NOT_OFFERED = {"size": "10000000", "8bitmime": ""}
ACCEPTED = [(250, b"2.1.0 ok"), (250, b"2.1.5 ok"), (354, b"go ahead"), (250, b"2.0.0 queued")]
MESSAGE = b"Subject: hello\r\n\r\n.a line that starts with a dot\r\nthe end"


def scripted(client: smtplib.SMTP, replies: list[tuple[int, bytes]], features: dict[str, str],
             message: bytes = MESSAGE, sender: str = "bounces+1@mail.example.com",
             recipient: str = "ann@example.com") -> tuple[list[bytes], BaseException | None]:
    """What `client` writes (one item a write; RSET and close as markers) sending `message` to a server
    answering `replies` in order, and what it raised. Reading a reply past the script fails the test."""
    writes: list[bytes] = []
    script = iter(replies)
    client.send = lambda s: writes.append(s if isinstance(s, bytes) else s.encode())  # type: ignore[method-assign]
    client.getreply = lambda: next(script)  # type: ignore[method-assign]
    client._rset = lambda: writes.append(b"<rset>")  # type: ignore[method-assign]
    client.close = lambda: writes.append(b"<close>")  # type: ignore[method-assign]
    client.ehlo_resp, client.does_esmtp, client.esmtp_features = b"hello", True, dict(features)
    try:
        client.sendmail(sender, [recipient], message)
    except smtplib.SMTPException as exc:
        return writes, exc
    return writes, None


plain = st.text(alphabet="Aa0!#$%&'*+/=?^_`{|}~.-", min_size=1, max_size=12).map(lambda s: f"{s}@example.com")
messages = st.lists(st.sampled_from([b".", b"\r\n", b"\n", b"x", b"..", b"Subject: x\r\n"]), max_size=30).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(sender=plain, recipient=plain, message=messages)
def test_the_envelope_goes_in_one_write_with_the_bytes_smtplib_sends(sender: str, recipient: str,
                                                                      message: bytes) -> None:
    ours, raised = scripted(_Client(), ACCEPTED, OFFERED, message, sender, recipient)
    theirs, _ = scripted(smtplib.SMTP(), ACCEPTED, OFFERED, message, sender, recipient)
    assert raised is None
    assert b"".join(ours) == b"".join(theirs)
    assert len(ours) == 2 and len(theirs) == 4  # MAIL+RCPT+DATA, then the data; smtplib: one command a write


def test_without_the_offer_each_command_waits_for_its_reply_as_in_smtplib() -> None:
    ours, raised = scripted(_Client(), ACCEPTED, NOT_OFFERED)
    assert raised is None
    assert ours == scripted(smtplib.SMTP(), ACCEPTED, NOT_OFFERED)[0]
    assert len(ours) == 4


def test_anything_unusual_takes_smtplib_s_own_path() -> None:
    """A name with a display part, or non-ASCII: smtplib quotes and encodes it, one command at a time."""
    for sender, recipient in [("Ann <ann@example.com>", "bo@example.com"), ("a@example.com", "zoë@example.com")]:
        ours, _ = scripted(_Client(), ACCEPTED, {**OFFERED, "smtputf8": ""}, sender=sender, recipient=recipient)
        assert len(ours) == 4


REFUSALS = {
    "sender refused": [(451, b"4.3.0 later"), (503, b"need MAIL"), (503, b"need RCPT")],
    "recipient refused": [(250, b"ok"), (550, b"5.1.1 no such user"), (503, b"need RCPT")],
    "recipient refused, DATA accepted all the same": [(250, b"ok"), (550, b"5.1.1 no such user"),
                                                     (354, b"go ahead"), (250, b"empty")],
    "DATA refused": [(250, b"ok"), (250, b"ok"), (451, b"4.3.0 later")],
    "closing at MAIL": [(421, b"4.3.2 shutting down")],
    "closing at RCPT": [(250, b"ok"), (421, b"4.3.2 shutting down")],
    "closing at DATA": [(250, b"ok"), (250, b"ok"), (421, b"4.3.2 shutting down")],
    "message refused": [(250, b"ok"), (250, b"ok"), (354, b"go ahead"), (554, b"5.7.1 spam")],
}


@pytest.mark.parametrize("case", REFUSALS)
def test_a_refusal_raises_what_smtplib_raises_and_the_message_goes_only_after_all_three_were_accepted(
        case: str) -> None:
    replies = REFUSALS[case]
    ours, raised = scripted(_Client(), replies, OFFERED)
    _, expected = scripted(smtplib.SMTP(), replies, NOT_OFFERED)
    assert raised is not None and expected is not None
    assert (type(raised), raised.args) == (type(expected), expected.args)
    body_sent = any(MESSAGE.split(b"\r\n")[0] in write for write in ours)
    assert body_sent == (case == "message refused")
    if case.startswith("closing"):
        assert ours[1:] == [b"<close>"]  # the server is going: nothing more read or written
    elif case == "recipient refused, DATA accepted all the same":
        assert ours[1:] == [b".\r\n", b"<rset>"]  # the data ended at once, empty; the transaction reset
    else:
        assert ours[-1] == b"<rset>"


@pytest.mark.parametrize("offered", [True, False], ids=["offered", "not offered"])
def test_emails_go_out_alike_to_a_server_that_offers_pipelining_and_one_that_does_not(
        make_runtime, sqlite_url, smtp_server: SmtpServer, clock: FakeClock, monkeypatch, offered: bool) -> None:
    smtp_server.handler.pipelining = offered
    smtp_server.handler.replies["gone@example.com"] = "550 5.1.1 No such user"
    writes: list[bytes] = []
    send = _Client.send
    monkeypatch.setattr(_Client, "send", lambda self, s: (writes.append(s if isinstance(s, bytes) else s.encode()),
                                                          send(self, s))[1])
    rt = make_runtime(sqlite_url, EMAIL_BACKEND="smtp", SMTP_URL=smtp_server.url)
    for address in ("ann@example.com", "gone@example.com", "bo@example.com"):
        add_contact(rt, address, "lead-nurture")

    assert send_due(rt) == {"sent": 2, "failed": 1}
    assert sorted(r.rcpt_tos[0] for r in smtp_server.received) == ["ann@example.com", "bo@example.com"]
    [failed] = deliveries(rt, "gone@example.com")
    assert "550" in failed.error and "No such user" in failed.error
    groups = [w for w in writes if w.startswith(b"mail FROM:") and b"\r\nrcpt TO:" in w and w.endswith(b"data\r\n")]
    assert len(groups) == (3 if offered else 0)


class _Scripted(threading.Thread):
    """A raw SMTP server for one connection that offers PIPELINING and closes the connection at `drop`:
    "group" once the MAIL/RCPT/DATA group is in, "data" once the message's final "." is in."""

    def __init__(self, drop: str) -> None:
        super().__init__(daemon=True)
        self.drop, self.listener = drop, socket.create_server(("127.0.0.1", 0))
        self.port, self.got = self.listener.getsockname()[1], b""

    def run(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            conn.sendall(b"220 scripted\r\n")
            self._until(conn, b"\r\n")  # EHLO
            conn.sendall(b"250-scripted\r\n250-PIPELINING\r\n250 SIZE 1000000\r\n")
            self._until(conn, b"data\r\n")
            if self.drop == "group":
                return
            conn.sendall(b"250 ok\r\n250 ok\r\n354 go ahead\r\n")
            self._until(conn, b"\r\n.\r\n")

    def _until(self, conn: socket.socket, end: bytes) -> None:
        start = len(self.got)
        while not self.got.endswith(end) or len(self.got) == start:
            chunk = conn.recv(65536)
            if not chunk:
                return
            self.got += chunk


@pytest.mark.parametrize("drop", ["group", "data"])
def test_a_drop_before_the_data_is_a_plain_retry_and_one_after_it_may_have_been_kept(drop: str) -> None:
    """What the send path records depends on whether the message was handed over (docs/delivery.md, the
    one window): in the pipelined exchange as in the other."""
    server = _Scripted(drop)
    server.start()
    smtp = SmtpTransport(SmtpSettings("127.0.0.1", server.port, None, None, "plain", timeout=5))
    message = OutgoingEmail(envelope_from="bounces@juniper.test", recipient="ann@example.com",
                            message_id="<1@juniper.test>", data=b"Subject: hi\r\n\r\nhello\r\n")
    with pytest.raises(TransportError) as failed:
        smtp.send(message, time_left=10)
    server.join(5)
    assert not failed.value.permanent
    assert failed.value.handed_over == (drop == "data")
    assert (b"hello" in server.got) == (drop == "data")
    assert server.got.count(b"mail FROM:") == 1


def _message(n: int) -> OutgoingEmail:
    return OutgoingEmail(envelope_from="bounces@juniper.test", recipient=f"p{n}@example.com",
                         message_id=f"<{n}@juniper.test>", data=f"Subject: {n}\r\n\r\nmessage {n}\r\n".encode())


def _spied(monkeypatch) -> list[bytes]:  # noqa: ANN001
    writes: list[bytes] = []
    send = _Client.send
    monkeypatch.setattr(_Client, "send", lambda self, s: (writes.append(s if isinstance(s, bytes) else s.encode()),
                                                          send(self, s))[1])
    return writes


def test_an_announced_envelope_is_read_by_its_message_s_start_and_not_written_again(smtp_server: SmtpServer,
                                                                                     monkeypatch) -> None:
    writes = _spied(monkeypatch)
    smtp = SmtpTransport(SmtpSettings(smtp_server.host, smtp_server.port, None, None, "plain", timeout=5))
    first, second = _message(1), _message(2)
    smtp.send(first, time_left=10)
    smtp.announce(second, time_left=10)
    announced = writes[-1]
    assert announced.startswith(b"mail FROM:<bounces@juniper.test>") and b"rcpt TO:<p2@example.com>" in announced
    smtp.start(second, time_left=10)
    assert writes[-1].startswith(b"Subject: 2") and writes.count(announced) == 1  # only the data went now
    assert smtp.finish() == second.message_id
    smtp.close()
    assert [r.rcpt_tos for r in smtp_server.received] == [["p1@example.com"], ["p2@example.com"]]


@pytest.mark.parametrize("then", ["another message", "close"])
def test_an_announced_message_that_is_not_started_is_never_delivered(smtp_server: SmtpServer, then: str) -> None:
    """Its mark failed, or the batch stopped: the envelope open on the server ends with the connection."""
    smtp = SmtpTransport(SmtpSettings(smtp_server.host, smtp_server.port, None, None, "plain", timeout=5))
    smtp.send(_message(1), time_left=10)
    smtp.announce(_message(2), time_left=10)
    if then == "another message":
        assert smtp.send(_message(3), time_left=10) == _message(3).message_id  # on a new connection
    smtp.close()
    expected = ["p1@example.com", "p3@example.com"] if then == "another message" else ["p1@example.com"]
    assert [r.rcpt_tos[0] for r in smtp_server.received] == expected


def test_a_refusal_of_an_announced_envelope_is_raised_by_its_start(smtp_server: SmtpServer) -> None:
    smtp_server.handler.replies["p2@example.com"] = "550 5.1.1 No such user"
    smtp = SmtpTransport(SmtpSettings(smtp_server.host, smtp_server.port, None, None, "plain", timeout=5))
    smtp.send(_message(1), time_left=10)
    smtp.announce(_message(2), time_left=10)
    with pytest.raises(TransportError) as refused:
        smtp.start(_message(2), time_left=10)
    assert refused.value.permanent and refused.value.recipient_rejected and not refused.value.handed_over
    assert smtp.send(_message(3), time_left=10) == _message(3).message_id  # the same connection goes on
    smtp.close()
    assert [r.rcpt_tos[0] for r in smtp_server.received] == ["p1@example.com", "p3@example.com"]
