"""The SMTP transport's client writes MAIL FROM and RCPT TO exactly as smtplib would, without parsing plain
addresses (nurture/delivery/transports/smtp_client.py: parseaddr cost more than the rest of the client's work)."""

from __future__ import annotations

import smtplib

from hypothesis import given, settings
from hypothesis import strategies as st

from nurture.delivery.transports.smtp_client import SmtpClient as _Client


def commands(client: smtplib.SMTP, sender: str, recipient: str, options: list[str]) -> list[str]:
    """The command lines `client` puts for one envelope, with its replies answered 250."""
    sent: list[str] = []
    client.putcmd = lambda cmd, args="": sent.append(f"{cmd} {args}")  # type: ignore[method-assign]
    client.getreply = lambda: (250, b"ok")  # type: ignore[method-assign]
    client.does_esmtp = True
    client.mail(sender, options)
    client.rcpt(recipient, options)
    return sent


ATEXT = "Aa0!#$%&'*+/=?^_`{|}~.@-"
addresses = st.one_of(
    st.text(alphabet=ATEXT, min_size=1, max_size=20),  # plain: the fast path
    st.text(min_size=0, max_size=20),  # anything: display names, quotes, spaces, non-ASCII, empty
    st.builds(lambda name, addr: f"{name} <{addr}>", st.text(max_size=8), st.text(alphabet=ATEXT, max_size=12)),
)


@settings(max_examples=500, deadline=None)
@given(sender=addresses, recipient=addresses, size=st.sampled_from([[], ["size=1234"], ["size=9", "BODY=8BITMIME"]]))
def test_it_writes_the_envelope_as_smtplib_does(sender: str, recipient: str, size: list[str]) -> None:
    assert commands(_Client(), sender, recipient, size) == commands(smtplib.SMTP(), sender, recipient, size)


def test_it_sends_a_verp_return_path_as_it_is() -> None:
    sender = "bounces+12.a1B2-c3_d4@mail.example.com"
    assert commands(_Client(), sender, "ann.o'hara+x@example.org", ["size=10"]) == [
        f"mail FROM:<{sender}> size=10", "rcpt TO:<ann.o'hara+x@example.org> size=10"]


def data_sent(client: smtplib.SMTP, message: bytes) -> list[bytes]:
    """What `client` writes for DATA and `message`, with the server answering 354 then 250."""
    sent: list[bytes] = []
    replies = iter([(354, b"go ahead"), (250, b"queued")])
    client.send = lambda s: sent.append(s if isinstance(s, bytes) else s.encode())  # type: ignore[method-assign]
    client.getreply = lambda: next(replies)  # type: ignore[method-assign]
    assert client.data(message) == (250, b"queued")
    return sent


@settings(max_examples=1000, deadline=None)
@given(message=st.lists(st.sampled_from([b".", b"\r", b"\n", b"\r\n", b"..", b"x", b"=2E", b" "]), max_size=40)
       .map(b"".join))
def test_it_dot_stuffs_the_data_as_smtplib_does(message: bytes) -> None:
    assert data_sent(_Client(), message) == data_sent(smtplib.SMTP(), message)


def test_it_dot_stuffs_a_built_message_as_smtplib_does() -> None:
    message = b"Subject: x\r\n\r\n.starts with a dot\r\n..two\r\n.\r\nmid.dle\r\n."
    assert data_sent(_Client(), message) == data_sent(smtplib.SMTP(), message)
    assert b"\r\n..starts with a dot\r\n...two\r\n..\r\n" in data_sent(_Client(), message)[1]


def test_a_refused_data_command_raises_as_in_smtplib() -> None:
    client = _Client()
    client.putcmd = lambda cmd, args="": None  # type: ignore[method-assign]
    client.getreply = lambda: (451, b"try later")  # type: ignore[method-assign]
    try:
        client.data(b"x")
    except smtplib.SMTPDataError as exc:
        assert (exc.smtp_code, exc.smtp_error) == (451, b"try later")
    else:
        raise AssertionError("no SMTPDataError")


@settings(max_examples=200, deadline=None)
@given(data=st.lists(st.sampled_from([b"250 ok\r\n", b"250-", b"x" * 9, b"\n", b"\r", b"354 go\r\n"]),
                     max_size=12).map(b"".join),
       sizes=st.lists(st.sampled_from([-1, 1, 3, 8, 8193]), min_size=1, max_size=8))
def test_the_reply_reader_cuts_lines_as_a_buffered_socket_file_does(data: bytes, sizes: list[int]) -> None:
    import socket

    from nurture.delivery.transports.smtp_client import ArmedReader

    def lines(make_reader) -> list[bytes]:  # noqa: ANN001
        ours, theirs = socket.socketpair()
        theirs.sendall(data)
        theirs.close()
        reader = make_reader(ours)
        got = [reader.readline(size) for size in sizes * 3]
        ours.close()
        return got

    assert lines(lambda sock: ArmedReader(sock, lambda: None)) == lines(lambda sock: sock.makefile("rb"))


@settings(max_examples=300, deadline=None)
@given(stream=st.lists(st.sampled_from([b"250 ok\r\n", b"250-first\r\n", b"354 go ahead\r\n", b"25x odd\r\n",
                                        b"421 bye\r\n", b"250\r\n", b"250 \r\n", b" 25 spaced\r\n", b"2500 x\r\n",
                                        b"x" * 8200 + b"\r\n", b"250-a\r\n250 b\r\n", b"5"]), max_size=6)
       .map(b"".join))
def test_replies_are_read_as_smtplib_reads_them(stream: bytes) -> None:
    """The one-line fast path returns what smtplib's getreply returns, and hands anything else to it."""
    import socket

    def replies(client: smtplib.SMTP) -> list[object]:
        ours, theirs = socket.socketpair()
        theirs.sendall(stream)
        theirs.close()
        client.sock, client.timeout = ours, 5.0
        got: list[object] = []
        for _ in range(8):
            try:
                got.append(client.getreply())
            except smtplib.SMTPException as exc:
                got.append((type(exc).__name__, str(exc)))
                if client.sock is None:
                    break
        if client.sock is not None:
            client.close()
        return got

    assert replies(_Client()) == replies(smtplib.SMTP())
