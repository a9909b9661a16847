"""What the pacing and reputation tests share: a relay that answers "slow down" for chosen domains, and
small readers of what the send path recorded."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller
from sqlmodel import Session, select

from nurture.runtime import Runtime
from nurture.store.models import Contact, Delivery, Enrollment, Event
from tests.conftest import SmtpHandler, SmtpServer, free_port


@dataclass
class DomainRelay(SmtpHandler):
    """The conftest relay, plus a reply per recipient domain at RCPT time (e.g. gmail.com -> 421), and a
    count of every RCPT it was asked, answered or not."""

    domain_replies: dict[str, str] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: ANN001, ANN201
        self.asked.append(address)
        reply = self.domain_replies.get(address.rpartition("@")[2])
        if reply:
            return reply
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    def asked_for(self, domain: str) -> int:
        return sum(1 for address in self.asked if address.endswith("@" + domain))

    def received_for(self, domain: str) -> int:
        return sum(1 for r in self.received if r.rcpt_tos[0].endswith("@" + domain))


def domain_relay() -> Iterator[SmtpServer]:
    """A DomainRelay on a free port, for a fixture to yield from."""
    handler = DomainRelay()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, data_size_limit=10_000_000)
    controller.start()
    yield SmtpServer("127.0.0.1", port, handler)
    controller.stop()


def events_of(rt: Runtime, type_: str) -> list[Event]:
    with Session(rt.db) as session:
        return list(session.exec(select(Event).where(Event.type == type_).order_by(Event.id)))


def enrollments_of(rt: Runtime, domain: str) -> list[Enrollment]:
    with Session(rt.db) as session:
        return list(session.exec(select(Enrollment).join(Contact, Contact.id == Enrollment.contact_id)
                                 .where(Contact.email.endswith("@" + domain)).order_by(Enrollment.id)))


def deliveries_to(rt: Runtime, domain: str) -> list[Delivery]:
    with Session(rt.db) as session:
        return list(session.exec(select(Delivery).where(Delivery.recipient.endswith("@" + domain))
                                 .order_by(Delivery.id)))
