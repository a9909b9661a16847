"""The development transport: every email becomes an .eml file in var/outbox/ (nothing leaves the machine)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from nurture.content.mail import OutgoingEmail
from nurture.delivery.transports import TransportError


class OutboxTransport:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def send(self, message: OutgoingEmail, time_left: float | None = None) -> str:  # a file write: no wait
        local_part = message.message_id.strip("<>").partition("@")[0]
        safe_id = re.sub(r"[^A-Za-z0-9._-]", "_", local_part)
        safe_to = re.sub(r"[^A-Za-z0-9._@+-]", "_", message.recipient)
        path = self.directory / f"{safe_to}--{safe_id}.eml"
        temporary = path.with_suffix(".tmp")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            temporary.write_bytes(message.data)
            os.replace(temporary, path)  # a reader never sees half a message
        except OSError as exc:
            raise TransportError(f"cannot write {path}: {exc}") from exc
        return message.message_id

    def close(self) -> None:
        pass
