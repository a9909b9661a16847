"""Database tables (SQLModel). The same code runs on SQLite and PostgreSQL.

The database is the record: what was sent, to whom, why, and who may be contacted. Redis only carries work,
so anything here must be enough to rebuild the queue after Redis is flushed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, String, Text, UniqueConstraint, text
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from nurture.rules.statuses import AlertStatus, ConsentAction, DeliveryStatus, EnrollmentStatus, Subscription
from nurture.rules.webhooks import WebhookStatus

__all__ = [  # the statuses are re-exported: code above the rules finds them beside the tables
    "Alert", "AlertStatus", "Consent", "ConsentAction", "Contact", "Delivery", "DeliveryStatus", "Enrollment",
    "ErasedAddress",
    "EnrollmentStatus", "Event", "SequenceVersion", "StatusColumn", "Subscription", "Suppression", "UTCDateTime",
    "WebhookAttempt", "WebhookEndpoint", "WebhookMessage", "WebhookStatus",
    "SuppressionChange", "FunnelDirty", "FunnelMember", "FunnelDay", "FunnelRollupState", "SegmentMember",
    "SegmentWatch", "Broadcast",
]


class UTCDateTime(TypeDecorator):
    """Stores naive UTC, returns aware UTC: SQLite keeps no offsets, and comparing naive with aware
    datetimes raises, so every datetime in nurture is aware UTC once it leaves this column."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class StatusColumn(TypeDecorator):
    """A StrEnum stored as its plain string value (the same VARCHAR as before: no data migration), read
    back as the enum member. Writing a value the enum does not know raises, so a misspelt status fails
    at the write, not later as a row no query ever matches."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[StrEnum], length: int = 16) -> None:
        super().__init__(length)
        self.enum = enum
        # Dict lookups, not enum(value) and member.value: every status read or written goes through here,
        # and those cost ~1.4 µs and ~0.4 µs a value against ~0.1 µs for a dict.
        self._members = {member.value: member for member in enum}
        self._plain = {member.value: member.value for member in enum}  # drivers get a plain str

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        if value is None:
            return None
        plain = self._plain.get(value)
        if plain is None:
            raise ValueError(f"{value!r} is not a valid {self.enum.__name__}")
        return plain

    def process_result_value(self, value: str | None, dialect: Any) -> StrEnum | None:
        return None if value is None else self._members[value]


def _json_column() -> Any:
    return Column(JSON, nullable=False)


class Contact(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(index=True, unique=True, max_length=320)  # normalised: see nurture.people.contacts
    phone: str | None = Field(default=None, max_length=20, index=True)  # E.164; replies are matched on it
    first_name: str = Field(default="", max_length=100)
    last_name: str = Field(default="", max_length=100)
    timezone: str | None = Field(default=None, max_length=64)
    # Babel's form of a language tag (fr, pt_BR); None: DEFAULT_LOCALE. See nurture.rules.locales.
    locale: str | None = Field(default=None, max_length=35)
    fields: dict = Field(default_factory=dict, sa_column=_json_column())
    tags: list = Field(default_factory=list, sa_column=_json_column())
    stage: str = Field(default="lead", max_length=32, index=True)  # the contact list filters by it
    # Lead score as of score_at; decay is applied when it is read (see engine.decayed_score).
    score: float = 0.0
    score_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    email_status: Subscription = Field(default=Subscription.SUBSCRIBED, sa_type=StatusColumn(Subscription),
                                       index=True)  # the contact list filters by it
    sms_status: Subscription = Field(default=Subscription.NONE, sa_type=StatusColumn(Subscription))
    source: str | None = Field(default=None, max_length=200)
    # First sign-up's source, UTM tags, referral code, landing page: set once, never overwritten.
    attribution: dict = Field(default_factory=dict, sa_column=_json_column())
    # A double opt-in sign-up waiting for its confirmation: which form, since when (expired by the tick).
    pending_form: str | None = Field(default=None, max_length=64)
    pending_since: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class Enrollment(SQLModel, table=True):
    """A contact's place in one sequence. `step_id` is the next step to send, due at `due_at`.

    `claim_token` / `claimed_until` are the lease a dispatch batch holds while it works on the row: taken
    by a conditional UPDATE, so two workers never work on the same enrollment at once, and released (or
    left to expire, when a worker dies) without any lock held in Redis.
    """

    __table_args__ = (
        UniqueConstraint("contact_id", "sequence_id", "entry", name="uq_enrollment_contact_sequence_entry"),
        Index("ix_enrollment_due", "status", "due_at"),
        # Only claimed rows: every lookup is by one token (migration 0002 says what it saves).
        Index("ix_enrollment_claim_token", "claim_token", sqlite_where=text("claim_token IS NOT NULL"),
              postgresql_where=text("claim_token IS NOT NULL")),
    )

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    sequence_id: str = Field(max_length=64)
    sequence_version: str = Field(default="", max_length=64)
    entry: int = 1  # the how-many-th time this contact entered this sequence
    step_id: str | None = Field(default=None, max_length=64)
    due_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    status: EnrollmentStatus = Field(default=EnrollmentStatus.ACTIVE, sa_type=StatusColumn(EnrollmentStatus))
    step_entered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # when it reached step_id
    stop_reason: str | None = Field(default=None, max_length=200)
    attempts: int = 0  # temporary failures of the current step
    claim_token: str | None = Field(default=None, max_length=32)
    claimed_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class Delivery(SQLModel, table=True):
    """One message to one contact for one step on one channel — at most one row, ever.

    Written with status "sending" before the transport is called and updated after: the unique constraint
    is what makes a second send of the same step impossible, whatever Redis or the workers do.
    """

    __table_args__ = (UniqueConstraint("enrollment_id", "step_id", "channel", name="uq_delivery_step_channel"),)

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    enrollment_id: int = Field(foreign_key="enrollment.id")
    sequence_id: str = Field(max_length=64)
    sequence_version: str = Field(default="", max_length=64)
    step_id: str = Field(max_length=64)
    channel: str = Field(max_length=8)
    kind: str = Field(default="", max_length=32)
    recipient: str = Field(default="", max_length=320)
    status: DeliveryStatus = Field(default=DeliveryStatus.SENDING, sa_type=StatusColumn(DeliveryStatus))
    claim_token: str | None = Field(default=None, max_length=32)
    provider_id: str | None = Field(default=None, max_length=255, index=True)
    # What the provider reported after accepting it (Twilio status callbacks: queued, sent, delivered,
    # undelivered, failed) and its error code; never moved backwards (see store.record_provider_status).
    provider_status: str | None = Field(default=None, max_length=16)
    provider_error_code: int | None = None
    error: str | None = Field(default=None, max_length=1000)
    attempts: int = 0
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The variant of the step's experiment this contact got (None: the step has no variants). Decided by a
    # hash (nurture.rules.experiments), written down so the results and `nurture why` read what was sent.
    variant: str | None = Field(default=None, max_length=64)


class Event(SQLModel, table=True):
    """Append-only timeline of everything that happens to a contact. Never updated, never deleted.

    The table also has `ev_sequence`, `ev_step` and `ev_bot`: the JSON's keys as generated columns, for
    the funnel's index (migration 0006_console_pages, read by nurture.store.funnel). The database fills
    them; they are not mapped here, so no insert ever names them.
    """

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    type: str = Field(max_length=64, index=True)
    data: dict = Field(default_factory=dict, sa_column=_json_column())
    # Set by callers of POST /api/events: the same key twice records one event.
    idempotency_key: str | None = Field(default=None, max_length=200, unique=True)
    delivery_id: int | None = Field(default=None, foreign_key="delivery.id")
    occurred_at: datetime = Field(sa_type=UTCDateTime)
    created_at: datetime = Field(sa_type=UTCDateTime)


class Consent(SQLModel, table=True):
    """Proof of consent (GDPR Art. 7): every opt-in, confirmation and opt-out, per channel. Append-only.

    Who (contact), when, how (`method`: form, one-click, preference-page, api, cli, sms-keyword...), from
    which form or message, the exact consent text shown (and its hash), the IP and the user agent.
    """

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    channel: str = Field(max_length=8)  # email | sms
    action: ConsentAction = Field(sa_type=StatusColumn(ConsentAction))
    method: str = Field(max_length=32)
    scope: str = Field(default="all", max_length=64)  # "all" marketing on the channel, or a sequence id
    form_id: str | None = Field(default=None, max_length=64)
    delivery_id: int | None = Field(default=None, foreign_key="delivery.id")
    consent_text: str | None = Field(default=None, max_length=2000)
    consent_hash: str | None = Field(default=None, max_length=64)
    ip: str | None = Field(default=None, max_length=45)
    user_agent: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(sa_type=UTCDateTime)
    # GDPR Art. 6: the lawful basis an import claimed (consent, legitimate-interest ...); None for the
    # person's own opt-in through a form, link or keyword, where the basis is consent by the act itself.
    legal_basis: str | None = Field(default=None, max_length=32)


class Suppression(SQLModel, table=True):
    """Addresses no send ever passes: hard bounces, complaints, manual entries."""

    id: int | None = Field(default=None, primary_key=True)
    address: str = Field(index=True, unique=True, max_length=320)  # normalised email or E.164 number
    channel: str = Field(default="email", max_length=8)
    reason: str = Field(max_length=200)
    created_at: datetime = Field(sa_type=UTCDateTime)


class Alert(SQLModel, table=True):
    """A notice to a person at the business (hot lead, unhappy customer), sent once by the tick."""

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    kind: str = Field(max_length=32)
    recipient: str = Field(max_length=320)
    subject: str = Field(max_length=300)
    body: str = Field(max_length=10000)
    status: AlertStatus = Field(default=AlertStatus.PENDING, sa_type=StatusColumn(AlertStatus), index=True)
    send_after: datetime | None = Field(default=None, sa_type=UTCDateTime)
    error: str | None = Field(default=None, max_length=1000)
    created_at: datetime = Field(sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class SequenceVersion(SQLModel, table=True):
    """Every version of a sequence file the service has run, by content hash: what in-flight contacts
    were following, so an edit can move them by step id (and `nurture plan` can say how)."""

    __table_args__ = (UniqueConstraint("sequence_id", "version", name="uq_sequence_version"),)

    id: int | None = Field(default=None, primary_key=True)
    sequence_id: str = Field(max_length=64, index=True)
    version: str = Field(max_length=64)
    path: str = Field(max_length=500)
    steps: list = Field(default_factory=list, sa_column=_json_column())  # step ids, in order
    source: str = Field(max_length=200_000)
    loaded_at: datetime = Field(sa_type=UTCDateTime)


class User(SQLModel, table=True):
    """A person who logs in to the owner's console. `owner` may do everything, `viewer` only read.

    The password is kept as an Argon2 hash only. `session_id` is what a login session carries instead of
    the row id: a new one on every password change or reset, so every session opened before it ends.
    """

    __tablename__ = "console_user"  # "user" is a reserved word in PostgreSQL

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(unique=True, max_length=320)  # normalised like a contact's
    password_hash: str = Field(max_length=200)
    role: str = Field(default="viewer", max_length=16)  # owner | viewer
    session_id: str = Field(unique=True, max_length=64)
    created_at: datetime = Field(sa_type=UTCDateTime)
    last_login_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ProviderReceipt(SQLModel, table=True):
    """A provider's webhook event (or Mailgun's signing token) already taken in: providers retry and may
    send the same event twice, and a signed request replayed by someone who saw it must change nothing."""

    __tablename__ = "provider_receipt"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, max_length=200)  # provider:event id (or provider:token:...)
    received_at: datetime = Field(sa_type=UTCDateTime, index=True)


# --- webhooks out (docs/webhooks.md) -------------------------------------------------------------------------

class WebhookEndpoint(SQLModel, table=True):
    """What the service remembers about an endpoint (named in webhooks.yaml, or added in the console with its
    url, events and secret variable): how far through the Event
    table it has been handed (`cursor`, an event id), since when it has been failing, and whether it was
    switched off for failing a whole day (and the owner told)."""

    __tablename__ = "webhook_endpoint"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=64)
    # Set for an endpoint added in the console (one named in webhooks.yaml keeps only its state here).
    url: str | None = Field(default=None, max_length=2000)
    events: list = Field(default_factory=list, sa_column=_json_column())
    secret_env: str | None = Field(default=None, max_length=64)
    cursor: int = 0
    failing_since: datetime | None = Field(default=None, sa_type=UTCDateTime)
    disabled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    owner_told_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class WebhookMessage(SQLModel, table=True):
    """The outbox: one event for one endpoint, body fixed when written (a retry sends the same bytes), at
    most one row per endpoint × event. Claimed for an attempt by a conditional UPDATE, like enrollments."""

    __tablename__ = "webhook_message"
    __table_args__ = (UniqueConstraint("endpoint", "event_id", name="uq_webhook_message_endpoint_event"),
                      Index("ix_webhook_message_due", "status", "next_attempt_at"))

    id: int | None = Field(default=None, primary_key=True)
    endpoint: str = Field(max_length=64, index=True)
    message_id: str = Field(unique=True, max_length=64)  # the webhook-id header: receivers dedupe on it
    event_id: int | None = Field(default=None, foreign_key="event.id")  # None for a test ping
    event_type: str = Field(max_length=64)  # the public name
    body: str = Field(sa_column=Column(Text, nullable=False))
    status: WebhookStatus = Field(default=WebhookStatus.PENDING, sa_type=StatusColumn(WebhookStatus))
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    claim_token: str | None = Field(default=None, max_length=32)
    claimed_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(sa_type=UTCDateTime)
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class WebhookAttempt(SQLModel, table=True):
    """One POST of a message: what came back (status code or error) and how long it took. Append-only:
    the log the console and `nurture webhooks log` show."""

    __tablename__ = "webhook_attempt"
    __table_args__ = (Index("ix_webhook_attempt_endpoint_at", "endpoint", "attempted_at"),)

    id: int | None = Field(default=None, primary_key=True)
    message_id: int = Field(foreign_key="webhook_message.id", index=True)
    endpoint: str = Field(max_length=64)
    attempted_at: datetime = Field(sa_type=UTCDateTime)
    ok: bool = False
    status_code: int | None = None
    error: str | None = Field(default=None, max_length=500)
    duration_ms: int = 0


class SuppressionChange(SQLModel, table=True):
    """Who put an address on the suppression list or took it off, when and why: the list itself keeps only
    what is on it now, and taking someone off means mail may reach them again, so each change is kept."""

    __tablename__ = "suppression_change"

    id: int | None = Field(default=None, primary_key=True)
    address: str = Field(index=True, max_length=320)
    channel: str = Field(max_length=8)
    action: str = Field(max_length=8)  # added | removed
    reason: str = Field(max_length=200)
    actor: str = Field(max_length=320)  # a console user's email, or "cli"
    created_at: datetime = Field(sa_type=UTCDateTime)


class SendingPause(SQLModel, table=True):
    """The reputation guard stopped marketing email (bounce or complaint rate over its threshold) until
    the owner looks and runs `nurture resume-sending`. Held here, not in Redis: a flush must not resume.

    `open_key` is "open" while the pause holds and NULL once resumed: its unique index lets exactly one
    pause be open, so two workers that both see the rate cross write one row and one alert.
    """

    __tablename__ = "sending_pause"

    id: int | None = Field(default=None, primary_key=True)
    open_key: str | None = Field(default=None, max_length=8, unique=True)
    reason: str = Field(max_length=300)
    sends_total: int = 0  # email sends on record when it paused ("paused at send N")
    window_sends: int = 0
    bounce_rate: float = 0.0
    complaint_rate: float = 0.0
    paused_at: datetime = Field(sa_type=UTCDateTime)
    alert_status: AlertStatus = Field(default=AlertStatus.PENDING, sa_type=StatusColumn(AlertStatus))
    alert_recipient: str = Field(default="", max_length=320)
    alert_error: str | None = Field(default=None, max_length=1000)
    resumed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resumed_by: str | None = Field(default=None, max_length=320)
    # The newest delivery id when resumed: the guard then judges only later sends (the owner has looked
    # at these), so a resume is not undone at the next batch by the very bounces that paused it.
    resumed_after: int | None = None


# The reputation guard reads the newest sends by id, and the warm-up counts today's by sent_at.
Index("ix_delivery_sent_at", Delivery.__table__.c.sent_at)  # type: ignore[attr-defined]


class ErasedAddress(SQLModel, table=True):
    """What remains of a person erased at their request (GDPR Art. 17): a digest of their address
    (rules.erasure.address_digest), so that no sign-up, API call or import adds them again by mistake.
    The address itself is nowhere any more."""

    __tablename__ = "erased_address"

    id: int | None = Field(default=None, primary_key=True)
    digest: str = Field(unique=True, max_length=64)
    created_at: datetime = Field(sa_type=UTCDateTime)


class FunnelDirty(SQLModel, table=True):
    """A contact whose funnel counts for a sequence may have changed since the rollup last looked: written
    by database triggers on `delivery` and `event` (migration 0009_funnel_rollup) in the same transaction
    as the change, taken away by the fold (nurture.store.funnel_rollup) in the transaction that counts it.
    Append-only on the send path: no unique key, so concurrent inserts never wait for each other."""

    __tablename__ = "funnel_dirty"

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int
    sequence_id: str = Field(max_length=64)


class FunnelMember(SQLModel, table=True):
    """For one contact, sequence, version ('*' for all of them) and funnel group (`key`: JSON of the metric
    and what it groups by, step first), the latest time that puts the contact in the group: a period that
    ends now holds the contact exactly when it holds this time."""

    __tablename__ = "funnel_member"

    contact_id: int = Field(primary_key=True)
    sequence_id: str = Field(primary_key=True, max_length=64)
    version: str = Field(primary_key=True, max_length=64)
    key: str = Field(primary_key=True, sa_type=Text)
    latest_at: datetime = Field(sa_type=UTCDateTime)


Index("ix_funnel_member_latest", FunnelMember.__table__.c.sequence_id,  # type: ignore[attr-defined]
      FunnelMember.__table__.c.version, FunnelMember.__table__.c.latest_at)  # type: ignore[attr-defined]
Index("ix_funnel_dirty_sequence", FunnelDirty.__table__.c.sequence_id,  # type: ignore[attr-defined]
      FunnelDirty.__table__.c.contact_id)  # type: ignore[attr-defined]


class FunnelDay(SQLModel, table=True):
    """How many contacts' `FunnelMember.latest_at` falls on each UTC day (days since 1970-01-01), per
    sequence, version and group: a period's count is the sum over its whole days plus its first, partial
    day read from funnel_member."""

    __tablename__ = "funnel_day"

    sequence_id: str = Field(primary_key=True, max_length=64)
    version: str = Field(primary_key=True, max_length=64)
    key: str = Field(primary_key=True, sa_type=Text)
    day: int = Field(primary_key=True)
    n: int = 0


class FunnelRollupState(SQLModel, table=True):
    """One row. Each fold updates it first: on PostgreSQL its row lock makes folds take turns (two at once
    would move the same contact twice), on SQLite every transaction takes the write lock anyway."""

    __tablename__ = "funnel_rollup_state"

    id: int = Field(default=1, primary_key=True)
    folds: int = 0
    folded_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


# --- segments (docs/segments.md) ------------------------------------------------------------------------------

class SegmentMember(SQLModel, table=True):
    """A contact seen inside a segment that starts a sequence (`trigger: {segment: ID}`): what tells
    "came into the segment" (enroll) from "still in it" (nothing). Deleted when the contact is seen outside,
    so coming back in is an entry again (the sequence's re-entry policy then decides). The unique key makes
    one of two ticks that see the same entry the one that enrolls."""

    __tablename__ = "segment_member"
    __table_args__ = (UniqueConstraint("segment_id", "contact_id", name="uq_segment_member"),)

    id: int | None = Field(default=None, primary_key=True)
    segment_id: str = Field(max_length=64)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    entered_at: datetime = Field(sa_type=UTCDateTime)


class SegmentWatch(SQLModel, table=True):
    """How far the tick has looked for a triggering segment: the last event id and contact change it
    read (contacts whose facts changed since are looked at again), and the full sweep that catches what
    time alone changes (`inactive: 90d` becomes true with nothing happening): next page after `sweep_after`."""

    __tablename__ = "segment_watch"

    id: int | None = Field(default=None, primary_key=True)
    segment_id: str = Field(unique=True, max_length=64)
    event_cursor: int = 0
    contact_cursor: datetime | None = Field(default=None, sa_type=UTCDateTime)
    sweep_after: int | None = None  # a sweep in progress: the last contact id it reached
    swept_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # when the last sweep finished
    updated_at: datetime = Field(sa_type=UTCDateTime)


# The segment trigger finds contacts changed since its last look by updated_at (migration 0009_segments).
Index("ix_contact_updated_at", Contact.__table__.c.updated_at)  # type: ignore[attr-defined]


class Broadcast(SQLModel, table=True):
    """A one-off message to a segment (docs/broadcasts.md): from `broadcasts/*.yaml` (origin "file", its
    definition refreshed from the file until it is started) or made in the console (origin "console").

    `definition` is what it sends (segment, channel, template, subject, send_at, timing, window) and
    `version` the hash of that and of its template's text: a test send counts for one version, and
    starting freezes it, so what goes out is what the owner saw. The send path runs it as the one-step
    sequence `broadcast:<key>` (rules.broadcasts.as_sequence); `materialised_to` is how far through the
    segment (a contact id) its enrollments are written, a page at a time, so a start resumes.
    """

    __tablename__ = "broadcast"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, max_length=54)  # "broadcast:" + key fits Enrollment.sequence_id
    name: str = Field(max_length=200)
    origin: str = Field(default="file", max_length=8)  # file | console
    path: str | None = Field(default=None, max_length=500)
    definition: dict = Field(default_factory=dict, sa_column=_json_column())
    version: str = Field(default="", max_length=64)
    status: str = Field(default="draft", max_length=16)  # draft | started | cancelled
    send_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # fixed when started
    test_version: str | None = Field(default=None, max_length=64)
    test_to: str | None = Field(default=None, max_length=320)
    test_sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    materialised_to: int = 0
    materialised_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # every member written
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    started_by: str | None = Field(default=None, max_length=320)
    cancelled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


# A broadcast's progress and its cancel find its enrollments by sequence id (migration 0010_broadcasts).
Index("ix_enrollment_sequence", Enrollment.__table__.c.sequence_id, Enrollment.__table__.c.status)  # type: ignore[attr-defined]
