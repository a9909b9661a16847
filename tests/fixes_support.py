"""Helpers for the tests of the fixes branch: an SMTP server that drip-feeds its RCPT reply (a tarpit), so that
a send takes many times the SMTP timeout while no single wait exceeds it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
from aiosmtpd.controller import Controller

from tests.conftest import free_port
from tests.faults.conftest import FaultySmtp


async def drip_reply(server, lines: int, pause: float) -> str:  # noqa: ANN001
    """Send `lines` continuation lines of a 250 reply, `pause` seconds apart, then its last line."""
    for n in range(lines):
        await server.push(f"250-checking the recipient ({n + 1})")
        await asyncio.sleep(pause)
    return "250 OK"


@dataclass
class DripHandler:
    """Accepts every message; `drip` maps a recipient to how many of its next RCPTs are drip-fed."""

    lines: int = 5
    pause: float = 0.5
    drip: dict[str, int] = field(default_factory=dict)
    received: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def dripping(self, address: str) -> bool:
        with self.lock:
            left = self.drip.get(address, 0)
            self.drip[address] = max(left - 1, 0)
        return left > 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: ANN001, ANN201
        reply = await drip_reply(server, self.lines, self.pause) if self.dripping(address) else "250 OK"
        envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201
        with self.lock:
            self.received.append(envelope.rcpt_tos[0])
        return "250 Message accepted for delivery"


@contextmanager
def serving(handler: object) -> Iterator[int]:
    """`handler` behind a real aiosmtpd server on a free port, for the duration."""
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@pytest.fixture
def drip_smtp() -> Iterator[tuple[DripHandler, int]]:
    handler = DripHandler()
    with serving(handler) as port:
        yield handler, port


@dataclass
class DrippingFaultySmtp(FaultySmtp):
    """The fault suite's SMTP server, with the RCPT reply drip-fed to the recipients `drip.drip` names."""

    drip: DripHandler = field(default_factory=lambda: DripHandler(lines=12, pause=1.0))

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: ANN001, ANN201
        if self.drip.dripping(address):
            await drip_reply(server, self.drip.lines, self.drip.pause)
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


@pytest.fixture
def dripping_smtp() -> Iterator[tuple[DrippingFaultySmtp, str]]:
    handler = DrippingFaultySmtp()
    with serving(handler) as port:
        yield handler, f"smtp://127.0.0.1:{port}?timeout=3"  # 3 s a wait: a 10 s lease covers it
