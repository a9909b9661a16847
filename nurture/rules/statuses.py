"""The statuses a contact, an enrollment, a delivery, an alert and a consent record can have, by name.

StrEnums: each member is its plain string (stored as such, see store.models.StatusColumn), so a rule
compares `status == EnrollmentStatus.ACTIVE` and a typo is a NameError, not a branch that never runs.
Here, in the pure layer, because the decisions in rules/ need them as much as the store does.
"""

from __future__ import annotations

from enum import StrEnum


class Subscription(StrEnum):
    """A contact's consent on one channel (Contact.email_status, Contact.sms_status). Only SUBSCRIBED
    allows marketing; transactional messages (a sign-up's confirmation) go to anyone not suppressed."""

    NONE = "none"  # never opted in: sms before its own consent; email of a contact imported without consent
    SUBSCRIBED = "subscribed"
    PENDING = "pending"  # email only: signed up through a double opt-in form, not confirmed yet
    UNSUBSCRIBED = "unsubscribed"
    EXPIRED = "expired"  # email only: never confirmed within SIGNUP_EXPIRY_HOURS


class EnrollmentStatus(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"  # ran out of steps, or reached its goal
    STOPPED = "stopped"  # unsubscribed, exited, or a permanent failure


class DeliveryStatus(StrEnum):
    QUEUED = "queued"  # written with its chunk, before the send; never handed to the server, so taken over quietly
    SENDING = "sending"  # written before the transport is called; left behind only by a worker that died
    SENT = "sent"
    RETRY = "retry"  # a temporary failure: the step is tried again later
    FAILED = "failed"
    SKIPPED = "skipped"
    BOUNCED = "bounced"  # a bounce came back after SENT (people.bounces); only ever follows SENT


class AlertStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class ConsentAction(StrEnum):
    OPT_IN = "opt-in"
    CONFIRM = "confirm"  # the click on a double opt-in link
    OPT_OUT = "opt-out"
