"""A tiny IMAP4rev1 server: one mailbox, the handful of commands the bounce reader sends (LOGIN, SELECT,
UID SEARCH, UID FETCH, UID STORE, EXPUNGE, LOGOUT), over a real socket to the real imaplib client."""

from __future__ import annotations

import shlex
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class FakeMailbox:
    user: str
    password: str
    messages: dict[int, bytes] = field(default_factory=dict)
    deleted: set[int] = field(default_factory=set)
    logins: list[str] = field(default_factory=list)

    def add(self, data: bytes) -> None:
        self.messages[max(self.messages, default=0) + 1] = data


def _handler(box: FakeMailbox) -> type[socketserver.StreamRequestHandler]:
    class Handler(socketserver.StreamRequestHandler):
        def reply(self, *lines: bytes) -> None:
            self.wfile.write(b"".join(line + b"\r\n" for line in lines))

        def handle(self) -> None:
            self.reply(b"* OK [CAPABILITY IMAP4rev1] fake ready")
            for raw in self.rfile:
                tag, _, rest = raw.rstrip(b"\r\n").partition(b" ")
                words = rest.split(b" ")
                command = words[0].upper() + (b" " + words[1].upper() if words[0].upper() == b"UID" else b"")
                if not self.answer(tag, command, words):
                    return

        def answer(self, tag: bytes, command: bytes, words: list[bytes]) -> bool:
            if command == b"CAPABILITY":
                self.reply(b"* CAPABILITY IMAP4rev1", tag + b" OK CAPABILITY completed")
            elif command == b"LOGIN":
                user, password = shlex.split(b" ".join(words[1:]).decode())  # IMAP quoted strings
                box.logins.append(user)
                ok = (user, password) == (box.user, box.password)
                self.reply(tag + (b" OK LOGIN completed" if ok else b" NO LOGIN failed"))
            elif command == b"SELECT":
                self.reply(b"* %d EXISTS" % len(box.messages), tag + b" OK [READ-WRITE] SELECT completed")
            elif command == b"UID SEARCH":
                found = b" ".join(b"%d" % uid for uid in sorted(box.messages) if uid not in box.deleted)
                self.reply(b"* SEARCH " + found, tag + b" OK SEARCH completed")
            elif command == b"UID FETCH":
                uid = int(words[2])
                data = box.messages[uid]
                self.wfile.write(b"* %d FETCH (UID %d RFC822 {%d}\r\n" % (uid, uid, len(data)) + data + b")\r\n")
                self.reply(tag + b" OK FETCH completed")
            elif command == b"UID STORE":
                box.deleted.add(int(words[2]))
                self.reply(tag + b" OK STORE completed")
            elif command == b"EXPUNGE":
                for uid in box.deleted:
                    box.messages.pop(uid, None)
                self.reply(tag + b" OK EXPUNGE completed")
            elif command == b"LOGOUT":
                self.reply(b"* BYE", tag + b" OK LOGOUT completed")
                return False
            else:
                self.reply(tag + b" BAD unknown command")
            return True

    return Handler


@contextmanager
def imap_server(box: FakeMailbox) -> Iterator[int]:
    """Serve `box` on a free local port (yielded) until the block ends."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _handler(box))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
