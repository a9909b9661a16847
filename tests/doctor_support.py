"""A DNS server for `nurture doctor`'s tests: a tiny UDP responder built with dnspython's message API,
answering from a dict on 127.0.0.1 — the real resolver queries it, over the network stack."""

from __future__ import annotations

import socket
import threading

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


def txt(value: str) -> str:
    """A TXT record's text form: strings of at most 255 bytes (a DKIM key needs two or more)."""
    return " ".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))


class DnsResponder:
    """Answers (name, type) from `records` (rdata in text form); a name it does not know is NXDOMAIN."""

    def __init__(self, records: dict[tuple[str, str], list[str]]) -> None:
        self.records = {(name.lower().rstrip("."), rdtype): values for (name, rdtype), values in records.items()}
        self.queries: list[tuple[str, str]] = []
        self.stopping = False
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            if self.stopping:
                return
            self.sock.sendto(self._answer(dns.message.from_wire(data)).to_wire(), peer)

    def _answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        question = query.question[0]
        key = (question.name.to_text().rstrip(".").lower(), dns.rdatatype.to_text(question.rdtype))
        self.queries.append(key)
        if key in self.records:
            response.answer.append(dns.rrset.from_text_list(question.name, 300, "IN", question.rdtype,
                                                            self.records[key]))
        elif not any(name == key[0] for name, _ in self.records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response

    def close(self) -> None:
        # Closing the socket does not wake a recvfrom blocked in another thread: a datagram does.
        self.stopping = True
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as waker:
            waker.sendto(b"", self.sock.getsockname())
        self.thread.join()
        self.sock.close()


def closed_port() -> str:
    """A UDP port on 127.0.0.1 nobody listens on: a query there is refused at once (offline, quickly)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"
