"""Transports: one small class per channel, one `send()` that returns a provider id or raises
`TransportError`. Transports never touch the database: the caller records every outcome."""

from __future__ import annotations

from typing import Protocol

from nurture.mail import OutgoingEmail


class TransportError(Exception):
    """A send failed. `permanent` says whether trying again could help; `recipient_rejected` says the
    address itself was refused (a hard bounce), which suppresses it for every later send."""

    def __init__(self, message: str, permanent: bool = False, recipient_rejected: bool = False,
                 code: int | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent or recipient_rejected
        self.recipient_rejected = recipient_rejected
        self.code = code


class EmailTransport(Protocol):
    def send(self, message: OutgoingEmail) -> str: ...

    def close(self) -> None: ...
