"""Everything a process needs, built once from Settings and passed in: database engine, Redis, sequences,
compiled templates, link signer, transport factory and the clock.

Web, CLI and worker each build one `Runtime`; tests build their own with a fake clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

import jinja2
from redis import Redis
from sqlalchemy.engine import Engine

from nurture.config import Settings, load_settings
from nurture.content.checker import TemplateCheck
from nurture.content.integrations_file import IntegrationsFile
from nurture.content.registry import SequenceRegistry
from nurture.content.rendering import TemplateCatalog, make_environment, make_text_environment
from nurture.content.segments_file import SegmentFiles
from nurture.delivery.transports import EmailTransport, SmsTransport
from nurture.delivery.transports.outbox import OutboxTransport
from nurture.delivery.transports.sms_outbox import SmsOutboxTransport
from nurture.delivery.transports.smtp import SmtpTransport
from nurture.delivery.transports.twilio import TwilioTransport
from nurture.rules.inbound import Integrations
from nurture.rules.segments import Segment
from nurture.rules.tokens import LinkSigner
from nurture.store.db import make_engine


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    settings: Settings
    db: Engine
    sequences: SequenceRegistry
    catalog: TemplateCatalog
    signer: LinkSigner
    clock: Callable[[], datetime] = utc_now
    redis: Redis | None = None
    transport_factory: Callable[[], EmailTransport] | None = field(default=None)
    sms_rate: Any = None  # nurture.delivery.channels.sms.SendRate, made on first use (it may hold per-process state)
    email_pacer: Any = None  # nurture.delivery.pacing.Pacer, made on first use (likewise)
    integrations_file: IntegrationsFile | None = None  # integrations.yaml, re-read when it changes

    @property
    def segments(self) -> dict[str, Segment]:
        """The segments in force now, by id (a file with errors keeps those already loaded)."""
        return self.sequences.segments()

    @property
    def integrations(self) -> Integrations:
        """The Stripe product map, inbound hooks and attribution windows in force now."""
        if self.integrations_file is None:
            self.integrations_file = IntegrationsFile(self.settings.integrations_file)
        return self.integrations_file.get()

    @property
    def env(self) -> jinja2.Environment:
        return self.catalog.env

    def email_transport(self) -> EmailTransport:
        """A fresh transport (one SMTP connection, reused for a whole batch)."""
        if self.transport_factory is not None:
            return self.transport_factory()
        if self.settings.email_backend == "smtp":
            assert self.settings.smtp is not None  # load_settings guarantees it
            return SmtpTransport(self.settings.smtp)
        return OutboxTransport(self.settings.outbox_dir)

    def sms_transport(self) -> SmsTransport:
        """A fresh SMS transport (one HTTP session to Twilio, reused for a whole batch)."""
        sms = self.settings.sms
        if sms.backend == "twilio":
            assert sms.twilio is not None  # load_settings guarantees it
            return TwilioTransport(sms.twilio)
        sender = sms.twilio.sender if sms.twilio else ""
        return SmsOutboxTransport(self.settings.outbox_dir / "sms", sender or "outbox")

    def redis_connection(self) -> Redis:
        if self.redis is None:
            if not self.settings.redis_url:
                raise RuntimeError("REDIS_URL is not set: the worker and the scheduler need Redis")
            self.redis = Redis.from_url(self.settings.redis_url)
        return self.redis


def build_runtime(settings: Settings, clock: Callable[[], datetime] = utc_now) -> Runtime:
    sequences = SequenceRegistry(settings.sequences_dir, TemplateCheck.for_settings(settings))
    sequences.segment_files = SegmentFiles(settings.segments_dir)
    sequences.refresh()
    return Runtime(
        settings=settings,
        db=make_engine(settings.database_url),
        sequences=sequences,
        catalog=TemplateCatalog(make_environment(settings.templates_dir),
                                text_env=make_text_environment(settings.sms.templates_dir)),
        signer=LinkSigner(settings.secret_key),
        clock=clock,
    )


_override: Runtime | None = None


def use_runtime(runtime: Runtime | None) -> None:
    """Make `runtime` the one jobs use in this process (tests; None to go back to the environment's)."""
    global _override
    _override = runtime


@cache
def _from_environment() -> Runtime:
    return build_runtime(load_settings())


def current_runtime() -> Runtime:
    """The process's runtime, for RQ jobs (which take ids, not objects, and so must find it themselves)."""
    return _override if _override is not None else _from_environment()
