"""The development SMS transport: every text becomes a .txt file in var/outbox/sms/ (nothing is sent)."""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path

from nurture.delivery.transports import TransportError
from nurture.rules.sms import OutgoingSms


class SmsOutboxTransport:
    def __init__(self, directory: Path, sender: str = "outbox") -> None:
        self.directory = directory
        self.sender = sender

    def send(self, message: OutgoingSms, time_left: float | None = None) -> str:  # a file write: no wait
        path = self._path(message)
        temporary = path.with_suffix(".tmp")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            temporary.write_text(self._render(message), encoding="utf-8")
            os.replace(temporary, path)  # a reader never sees half a text
        except OSError as exc:
            raise TransportError(f"cannot write {path}: {exc}") from exc
        return message.message_id

    def find_sent(self, message: OutgoingSms, since: datetime, time_left: float | None = None) -> str | None:
        """The text's file, if an earlier attempt wrote it: a retry writes the same file, so the outbox never
        holds two copies; saying so keeps the record the same as with Twilio."""
        path = self._path(message)
        try:
            written = path.read_text(encoding="utf-8")
        except OSError:
            return None
        return message.message_id if written == self._render(message) else None

    def _path(self, message: OutgoingSms) -> Path:
        safe_to = re.sub(r"[^0-9+]", "_", message.to)
        safe_id = re.sub(r"[^A-Za-z0-9._-]", "_", message.message_id)
        return self.directory / f"{safe_to}--{safe_id}.txt"

    def _render(self, message: OutgoingSms) -> str:
        headers = {
            "To": message.to,
            "From": self.sender,
            "Message-Id": message.message_id,
            "Segments": str(message.segments),
            "Status-Callback": message.status_callback or "-",
        }
        return "".join(f"{name}: {value}\n" for name, value in headers.items()) + "\n" + message.body + "\n"

    def close(self) -> None:
        pass
