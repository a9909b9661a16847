"""Channels: what differs between email and SMS on the send path, behind one small interface.

`nurture.delivery.dispatch` (the one place that wires store -> engine -> rendering -> transport) looks the step's
channel up here and never branches on channel names itself.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from nurture.rules.sequence import Sequence, Step
from nurture.store.models import Contact


class Transport(Protocol):
    def send(self, message: Any, time_left: float | None = None) -> str:
        """Send `message`; give up (temporary TransportError) once `time_left` seconds have passed."""

    def close(self) -> None: ...


class Channel(Protocol):
    name: str
    status_field: str  # the Contact column holding this channel's consent: "subscribed" means yes

    def address(self, contact: Contact) -> str | None:
        """Where this contact is reached on this channel, or None when it cannot be."""

    def compose(self, rt: Runtime, contact: Contact, sequence: Sequence, step: Step, delivery_id: int,
                now: datetime) -> Any:
        """The finished message for the transport (has a `message_id`). Raises RenderError."""

    def hold(self, rt: Runtime, contact: Contact, now: datetime) -> tuple[datetime, str] | None:
        """(until, reason) when this channel may not send to this contact right now (quiet hours)."""

    def open_transport(self, rt: Runtime) -> Transport: ...


_CHANNELS: dict[str, Channel] = {}


def register(channel: Channel) -> None:
    _CHANNELS[channel.name] = channel


def channel_for(name: str) -> Channel:
    return _CHANNELS[name]


def all_channels() -> list[Channel]:
    return list(_CHANNELS.values())


from nurture.delivery.channels.email import EmailChannel  # noqa: E402  (registers after the protocol exists)
from nurture.delivery.channels.sms import SmsChannel  # noqa: E402

if TYPE_CHECKING:  # the runtime is handed in; importing it would run an arrow back up
    from nurture.runtime import Runtime

register(EmailChannel())
register(SmsChannel())
