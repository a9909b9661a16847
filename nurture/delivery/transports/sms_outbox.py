"""The development SMS transport: every text becomes a .txt file in var/outbox/sms/ (nothing is sent)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from nurture.delivery.transports import TransportError
from nurture.rules.sms import OutgoingSms


class SmsOutboxTransport:
    def __init__(self, directory: Path, sender: str = "outbox") -> None:
        self.directory = directory
        self.sender = sender

    def send(self, message: OutgoingSms, time_left: float | None = None) -> str:  # a file write: no wait
        safe_to = re.sub(r"[^0-9+]", "_", message.to)
        safe_id = re.sub(r"[^A-Za-z0-9._-]", "_", message.message_id)
        path = self.directory / f"{safe_to}--{safe_id}.txt"
        temporary = path.with_suffix(".tmp")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            temporary.write_text(self._render(message), encoding="utf-8")
            os.replace(temporary, path)  # a reader never sees half a text
        except OSError as exc:
            raise TransportError(f"cannot write {path}: {exc}") from exc
        return message.message_id

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
