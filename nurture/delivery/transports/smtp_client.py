"""The SMTP client the transport speaks through: smtplib's, with what a send path sending thousands of
messages over one connection needs (nurture.delivery.transports.smtp uses it).

- plain addresses written into MAIL and RCPT as they are (smtplib parses each);
- every wait bounded by the send's deadline, not only by the timeout;
- DATA dot-stuffed with `bytes.replace`, its final reply optionally read later (the transport's start/finish);
- replies cut from the socket's bytes without a buffered file between;
- PIPELINING (RFC 2920) where the server offers it, and an envelope written ahead of its message (announce).

The bytes on the wire are smtplib's own: tests/test_smtp_client.py and tests/test_smtp_pipelining.py.
"""

from __future__ import annotations

import re
import smtplib
import socket
import sys
import time
from collections.abc import Callable, Sequence

# An address made only of these (dot-atom text, the '@' and nothing that needs quoting) is what
# smtplib.quoteaddr returns it as, in angle brackets: tests/test_smtp_client.py holds the two equal.
_PLAIN = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.@-]+\Z")


class _PlainAddresses:
    """smtplib's MAIL and RCPT run each address through `email.utils.parseaddr` (~0.1 ms, two a message:
    more than the rest of the client's work on the message). The send path's addresses are checked when
    they are stored and the envelope sender is nurture's own, so a plain one goes out as it is; anything
    else (a display name, a quoted local part, non-ASCII) takes smtplib's own path."""

    def mail(self, sender: str, options: Sequence[str] = ()) -> tuple[int, bytes]:
        # (SMTPUTF8 among the options switches smtplib's command encoding: left to it.)
        if not _PLAIN.match(sender) or any(o.lower() == "smtputf8" for o in options):
            return super().mail(sender, options)  # type: ignore[misc]
        self.putcmd("mail", f"FROM:<{sender}>{_options(self, options)}")  # type: ignore[attr-defined]
        return self.getreply()  # type: ignore[attr-defined]

    def rcpt(self, recip: str, options: Sequence[str] = ()) -> tuple[int, bytes]:
        if not _PLAIN.match(recip):
            return super().rcpt(recip, options)  # type: ignore[misc]
        self.putcmd("rcpt", f"TO:<{recip}>{_options(self, options)}")  # type: ignore[attr-defined]
        return self.getreply()  # type: ignore[attr-defined]


def _options(client: object, options: Sequence[str]) -> str:
    """As smtplib writes them: ESMTP options only to a server that spoke ESMTP."""
    return " " + " ".join(options) if options and getattr(client, "does_esmtp", False) else ""


class _Deadline:
    """Every wait of the SMTP exchange bounded by the time left until `deadline` (time.monotonic()), not
    only by the timeout: the timeout bounds each wait, and a server that answers a little at a time (a
    tarpit, a multi-line reply drip-fed) would otherwise hold one send for many timeouts."""

    deadline: float | None = None
    sock: socket.socket | None
    file: ArmedReader | None
    timeout: float

    def _wait_for(self, timeout: float) -> float:
        if self.deadline is None:
            return timeout
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the send ran out of time (its claim's lease ends)")
        return min(timeout, left)

    def _arm(self) -> None:
        if self.sock is not None:
            wait = self._wait_for(self.timeout)
            # settimeout is a system call (ioctl FIONBIO) even when the value is unchanged, and a message
            # arms eight times (four commands, four replies): while the deadline is further off than the
            # timeout, the wait armed last time is the one to arm again.
            if self.sock.gettimeout() != wait:
                self.sock.settimeout(wait)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return super()._get_socket(host, port, self._wait_for(timeout))  # type: ignore[misc]

    def send(self, s: bytes | str) -> None:
        self._arm()
        super().send(s)  # type: ignore[misc]

    def getreply(self) -> tuple[int, bytes]:
        # smtplib reads a reply line by line from a file over the socket: each receive is armed anew, so a
        # reply drip-fed a line (or a byte) at a time is bounded too, not only its first line.
        if getattr(self, "file", None) is None and self.sock is not None:
            self.file = ArmedReader(self.sock, self._arm)
        reader = self.file
        if not isinstance(reader, ArmedReader) or self.debuglevel > 0:  # type: ignore[attr-defined]
            return super().getreply()  # type: ignore[misc]
        try:
            line = reader.readline(smtplib._MAXLINE + 1)  # type: ignore[attr-defined]
        except OSError as exc:  # as smtplib.getreply
            self.close()  # type: ignore[attr-defined]
            raise smtplib.SMTPServerDisconnected(f"Connection unexpectedly closed: {exc}") from exc
        if len(line) <= smtplib._MAXLINE and line[3:4] == b" " and line[:3].isdigit():  # type: ignore[attr-defined]
            # A one-line reply (every reply of a send, from a server that works): smtplib's own result,
            # without its loop. Anything else is handed back to smtplib, the line first.
            return int(line[:3]), line[4:].strip(b" \t\r\n")
        reader.unread(line)
        return super().getreply()  # type: ignore[misc]


class _DotStuffedData:
    """smtplib's DATA, with the message's dot-stuffing done by `bytes.replace` instead of its regex:
    `re.sub(br'(?m)^\\.', ...)` over a 13 KB message cost ~50 µs a message, more than the rest of the
    client's work on it; the replace is a memchr-speed scan. The same bytes on the wire
    (tests/test_smtp_client.py holds them equal to smtplib's); a str message takes smtplib's own path."""

    # Set by SmtpTransport.send for the message it is about to send: no line of it starts with "." (the
    # builder knows that without scanning it: OutgoingEmail.dot_free). Taken, and cleared, by hand_over().
    next_dot_free = False
    # Set once the whole message, its final "." too, is in the socket: from then on a timeout or a drop
    # leaves the server perhaps holding it (RFC 5321 6.1). Cleared by SmtpTransport.send before each send.
    handed_over = False
    # Set by SmtpTransport.start: data() returns once the message is in the socket, as if the server had
    # said 250, and final_reply() reads what it did say (SmtpTransport.finish). Taken, and cleared, by hand_over().
    defer_final_reply = False

    def data(self, msg: bytes | str) -> tuple[int, bytes]:
        if not isinstance(msg, bytes):
            self.next_dot_free = self.defer_final_reply = False
            return super().data(msg)  # type: ignore[misc]
        self.putcmd("data")  # type: ignore[attr-defined]
        code, reply = self.getreply()  # type: ignore[attr-defined]
        if self.debuglevel > 0:  # type: ignore[attr-defined]
            self._print_debug("data:", (code, reply))  # type: ignore[attr-defined]
        if code != 354:
            self.next_dot_free = self.defer_final_reply = False
            raise smtplib.SMTPDataError(code, reply)
        return self.hand_over(msg)

    def hand_over(self, msg: bytes) -> tuple[int, bytes]:
        """The message after the server's 354: its dot-stuffed data and final ".", then the answer (unless
        deferred to final_reply)."""
        dot_free, self.next_dot_free = self.next_dot_free, False
        defer, self.defer_final_reply = self.defer_final_reply, False
        self.send(dot_stuffed(msg, dot_free))  # type: ignore[attr-defined]
        self.handed_over = True
        if defer:
            return 250, b"deferred: read by final_reply()"
        code, reply = self.getreply()  # type: ignore[attr-defined]
        if self.debuglevel > 0:  # type: ignore[attr-defined]
            self._print_debug("data:", (code, reply))  # type: ignore[attr-defined]
        return code, reply

    def final_reply(self) -> None:
        """The server's answer to a message data() handed over without waiting: what smtplib.sendmail does
        with it (421: the connection is closed; another refusal: RSET), raised as smtplib does."""
        self.check_answer(*self.getreply())  # type: ignore[attr-defined]

    def check_answer(self, code: int, reply: bytes) -> None:
        """The answer to a message's data as smtplib.sendmail takes it: anything but 250 is raised as
        SMTPDataError, after closing the connection (421) or resetting the transaction."""
        if code != 250:
            if code == 421:
                self.close()  # type: ignore[attr-defined]
            else:
                self._rset()  # type: ignore[attr-defined]
            raise smtplib.SMTPDataError(code, reply)


def dot_stuffed(message: bytes, dot_free: bool = False) -> bytes:
    """`message` as DATA carries it (RFC 5321 4.5.2): a line that starts with "." gets another, the last
    line ends with CRLF, then the lone "." that ends the data. What smtplib.SMTP.data sends for bytes.
    `dot_free`: the caller knows no line starts with "." (then nothing is scanned)."""
    if dot_free:
        stuffed, head = message, b""
    else:
        stuffed = message.replace(b"\n.", b"\n..")  # (?m)^ matches after "\n" only, as here
        head = b"." if stuffed.startswith(b".") else b""
    tail = b".\r\n" if stuffed.endswith(b"\r\n") else b"\r\n.\r\n"
    return b"".join((head, stuffed, tail))


class ArmedReader:
    """smtplib's reply file: lines cut from what the socket gives, every receive waiting only as long as
    the deadline allows. (`sock.makefile` put a BufferedReader and a Python SocketIO between smtplib and
    the socket, ~3 µs of each of the four replies a message.) A line already received is returned
    without waiting, as a buffered file would."""

    def __init__(self, sock: socket.socket, arm: Callable[[], None]) -> None:
        self.sock, self.arm = sock, arm
        self.buffer = b""

    def readline(self, size: int = -1) -> bytes:
        """Up to and with the next LF, at most `size` bytes (all of it when negative), or what is left at
        the end of the stream; the file protocol's readline."""
        limit = size if size >= 0 else sys.maxsize
        while True:
            end = self.buffer.find(b"\n", 0, limit) + 1
            if end or len(self.buffer) >= limit:
                end = end or limit
                line, self.buffer = self.buffer[:end], self.buffer[end:]
                return line
            self.arm()
            chunk = self.sock.recv(_RECEIVE)
            if not chunk:
                line, self.buffer = self.buffer, b""
                return line
            self.buffer += chunk

    def unread(self, line: bytes) -> None:
        """Put `line` back in front: the next readline starts with it."""
        self.buffer = line + self.buffer

    def close(self) -> None:
        self.buffer = b""


_RECEIVE = 8192  # bytes asked of the socket at a time (as io.DEFAULT_BUFFER_SIZE: a reply is far less)


class _Pipelining:
    """RFC 2920 PIPELINING, where the server offers it (Postfix, Exim, the big relays all do): MAIL, RCPT
    and DATA go out in one write and their three replies are read together, so a message costs two round
    trips (the commands; the data and its "."), not four. On a relay tens of milliseconds away that is most
    of the time a message holds the connection; on localhost a bare loop into the bench's sink sends a
    third more messages a second than smtplib's (bench/README.md, P1). The bytes on the wire are smtplib's own
    (tests/test_smtp_client.py). Anything else (several recipients, an address that is not plain, ESMTP
    options, debug output, a str message) takes smtplib's sendmail, one command at a time.

    Every reply of the group is read before anything is decided (RFC 2920 3.1): a refused MAIL or RCPT
    leaves the server answering 503 to what followed; if it said 354 to DATA all the same, the data is
    ended at once with a lone "." (no message), and the transaction reset."""

    # The envelope `announce` wrote ahead of its message, its replies unread: (sender, recipient, size).
    announced: tuple[str, str, int] | None = None

    def sendmail(self, from_addr: str, to_addrs: str | Sequence[str], msg: bytes | str,
                 mail_options: Sequence[str] = (), rcpt_options: Sequence[str] = ()) -> dict:
        self.ehlo_or_helo_if_needed()  # type: ignore[attr-defined]
        to = [to_addrs] if isinstance(to_addrs, str) else list(to_addrs)
        plain = not mail_options and not rcpt_options and len(to) == 1 and self._pipelinable(from_addr, to[0], msg)
        announced, self.announced = self.announced, None
        if announced is not None and (not plain or announced != (from_addr, to[0], len(msg))):
            # Another message's envelope is open on the server: only dropping the connection ends it unsent.
            self.close()  # type: ignore[attr-defined]
            raise smtplib.SMTPServerDisconnected("another message's envelope was announced on this connection")
        if not plain:
            return super().sendmail(from_addr, to_addrs, msg, mail_options, rcpt_options)  # type: ignore[misc]
        try:
            if announced is None:
                self._write_envelope(from_addr, to[0], len(msg))
            self._read_envelope(from_addr, to[0])
        except BaseException:
            self.next_dot_free = self.defer_final_reply = False  # type: ignore[attr-defined]  # (this message's)
            raise
        self.check_answer(*self.hand_over(msg))  # type: ignore[attr-defined]
        return {}

    def announce(self, sender: str, recipient: str, msg: bytes) -> bool:
        """Write the envelope of the message to be sent next without waiting for its replies: `sendmail` of
        that message reads them. False (nothing written) where it would not be pipelined."""
        self.ehlo_or_helo_if_needed()  # type: ignore[attr-defined]
        if self.announced is not None or not self._pipelinable(sender, recipient, msg):
            return False
        self._write_envelope(sender, recipient, len(msg))
        self.announced = (sender, recipient, len(msg))
        return True

    def _pipelinable(self, sender: str, recipient: str, msg: bytes | str) -> bool:
        return (isinstance(msg, bytes) and self.has_extn("pipelining")  # type: ignore[attr-defined]
                and self.debuglevel == 0 and bool(_PLAIN.match(sender)) and bool(_PLAIN.match(recipient)))  # type: ignore[attr-defined]

    def _write_envelope(self, sender: str, recipient: str, size: int) -> None:
        """MAIL, RCPT and DATA in one write: smtplib's command lines."""
        option = f" size={size}" if self.has_extn("size") else ""  # type: ignore[attr-defined]
        self.send(f"mail FROM:<{sender}>{option}\r\nrcpt TO:<{recipient}>\r\ndata\r\n")  # type: ignore[attr-defined]

    def _read_envelope(self, sender: str, recipient: str) -> None:
        """The three replies; returns once the server has said 354, else raises what smtplib would for the
        first refusal."""
        mail = self._group_reply()
        if mail[0] == 421:
            raise smtplib.SMTPSenderRefused(*mail, sender)
        rcpt = self._group_reply()
        if rcpt[0] == 421:
            raise _refused(mail, rcpt, sender, recipient)
        data = self._group_reply()
        refused = _refused(mail, rcpt, sender, recipient)
        if data[0] == 421:
            raise refused or smtplib.SMTPDataError(*data)
        if refused or data[0] != 354:
            if data[0] == 354:  # DATA accepted though nobody is to receive it: ended at once, empty
                self.send(b".\r\n")  # type: ignore[attr-defined]
                self.getreply()  # type: ignore[attr-defined]
            self._rset()  # type: ignore[attr-defined]
            raise refused or smtplib.SMTPDataError(*data)

    def _group_reply(self) -> tuple[int, bytes]:
        """The next reply of the group; 421 (the server is closing the connection) closes ours, as smtplib
        does, and nothing more is read."""
        code, reply = self.getreply()  # type: ignore[attr-defined]
        if code == 421:
            self.close()  # type: ignore[attr-defined]
        return code, reply


def _refused(mail: tuple[int, bytes], rcpt: tuple[int, bytes], sender: str,
             recipient: str) -> smtplib.SMTPException | None:
    """What smtplib raises for a refused MAIL or RCPT of the group, or None when both were accepted."""
    if mail[0] != 250:
        return smtplib.SMTPSenderRefused(*mail, sender)
    if rcpt[0] not in (250, 251):
        return smtplib.SMTPRecipientsRefused({recipient: rcpt})
    return None


class SmtpClient(_Pipelining, _PlainAddresses, _DotStuffedData, _Deadline, smtplib.SMTP):
    pass


class SmtpSslClient(_Pipelining, _PlainAddresses, _DotStuffedData, _Deadline, smtplib.SMTP_SSL):
    pass


