"""`nurture bounces serve`: an SMTP endpoint of our own (aiosmtpd) for a relay that forwards bounces and
feedback reports instead of keeping them in a mailbox. The RCPT TO is the VERP return path itself, so
this is the most direct trace there is.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from aiosmtpd.controller import Controller

from nurture.delivery.bounce_mail import take

if TYPE_CHECKING:  # the runtime is handed in; importing it would run an arrow back up
    from nurture.runtime import Runtime

log = logging.getLogger(__name__)


class BounceHandler:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data = envelope.original_content or envelope.content
        try:
            # The database work runs in a thread: the event loop keeps taking other connections meanwhile.
            outcome = await asyncio.get_running_loop().run_in_executor(
                None, take, self.rt, data, tuple(envelope.rcpt_tos))
        except Exception:  # noqa: BLE001 — the relay keeps the message and tries again: nothing is lost
            log.exception("bounce from %s could not be recorded", envelope.mail_from)
            return "451 4.3.0 Could not record the report; try again later"
        # A forged or unreadable report is accepted too: refusing it would only make the relay bounce it.
        return f"250 2.0.0 Report {outcome.what}"


def start_server(rt: Runtime, host: str, port: int) -> Controller:
    """Listen on host:port in a background thread until the controller is stopped."""
    controller = Controller(BounceHandler(rt), hostname=host, port=port, data_size_limit=10_000_000)
    controller.start()
    return controller
