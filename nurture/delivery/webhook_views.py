"""What the console page and `nurture webhooks list/log` show: each endpoint with its state and counts,
and the log of attempts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlmodel import Session

from nurture.delivery import webhook_outbox as outbox
from nurture.rules.webhooks import Endpoint
from nurture.store import webhooks as store
from nurture.store.webhooks import LoggedAttempt

if TYPE_CHECKING:  # the runtime is handed in; importing it would run an arrow back up
    from nurture.runtime import Runtime


@dataclass(frozen=True)
class EndpointView:
    endpoint: Endpoint
    disabled_at: datetime | None
    failing_since: datetime | None
    pending: int
    delivered: int
    failed: int
    added_in_console: bool = False

    @property
    def state(self) -> str:
        if self.disabled_at:
            return "disabled"
        return "failing" if self.failing_since else "active"

    @property
    def events(self) -> str:
        return ", ".join(self.endpoint.events) or "all events"


def endpoint_views(rt: Runtime) -> list[EndpointView]:
    """Every endpoint in webhooks.yaml (without problems), in file order."""
    with Session(rt.db) as session:
        states = store.endpoint_states(session)
        counts = store.message_counts(session)
    views = []
    for endpoint in outbox.endpoints(rt):
        state = states.get(endpoint.name)
        views.append(EndpointView(endpoint, state.disabled_at if state else None,
                                  state.failing_since if state else None,
                                  *(counts.get((endpoint.name, s), 0) for s in ("pending", "delivered", "failed")),
                                  added_in_console=bool(state and state.url)))
    return views


def attempt_log(rt: Runtime, endpoint: str | None = None, limit: int = 50) -> list[LoggedAttempt]:
    with Session(rt.db) as session:
        return store.attempt_log(session, endpoint, limit)


def describe(logged: LoggedAttempt) -> str:
    """One attempt's outcome in a few words: `200 accepted`, `HTTP 503`, `timed out ...`."""
    attempt = logged.attempt
    if attempt.ok:
        return f"{attempt.status_code} accepted"
    return attempt.error or (f"HTTP {attempt.status_code}" if attempt.status_code else "failed")
