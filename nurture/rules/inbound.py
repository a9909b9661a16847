"""What another system's webhook means for us: a Stripe event or a shop's / booking tool's payload turned into
one event on a contact (a `purchase` with product, amount and currency; a `refund`; a booking).

Pure: handed the parsed payload and the mapping read from integrations.yaml (nurture.content.integrations_file);
verifying signatures and recording the event are the web and people layers' business.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

# Stripe sends amounts in the currency's smallest unit; these have no minor unit at all
# (https://docs.stripe.com/currencies#zero-decimal), so 5000 JPY is 5000 yen, not 50.
ZERO_DECIMAL = frozenset({"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd",
                          "vuv", "xaf", "xof", "xpf"})
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})
STRIPE_PURCHASES = ("checkout.session.completed", "invoice.paid")
STRIPE_REFUNDS = ("charge.refunded",)
SIGNATURE_STYLES = ("nurture", "shopify", "calendly")
MISSING = object()


@dataclass(frozen=True)
class Attribution:
    """How long after a touch a purchase is credited to the sequence step that made it."""

    click: timedelta = timedelta(days=5)
    send: timedelta = timedelta(days=7)


@dataclass(frozen=True)
class Hook:
    """One generic inbound endpoint, POST /integrations/hooks/<name>."""

    name: str
    secret_env: str  # the variable holding the shared secret (never the secret itself: the file is in git)
    signature: str = "nurture"  # one of SIGNATURE_STYLES
    event: str = "purchase"
    fields: Mapping[str, str] = field(default_factory=dict)  # event property (and email) -> dotted path
    idempotency: str = ""  # dotted path of the payload's own id: a retry records nothing new
    when: Mapping[str, str] = field(default_factory=dict)  # dotted path -> value; other payloads are ignored
    products: Mapping[str, str] = field(default_factory=dict)  # the payload's product value -> our product id


@dataclass(frozen=True)
class Integrations:
    stripe_products: Mapping[str, str] = field(default_factory=dict)  # price, product or payment link id -> ours
    hooks: Mapping[str, Hook] = field(default_factory=dict)
    attribution: Attribution = Attribution()


@dataclass(frozen=True)
class Inbound:
    """An event for the contact with `email`, from another system. `key` makes its retries one event."""

    email: str
    type: str
    data: dict
    key: str
    occurred_at: datetime | None = None
    names: Mapping[str, str] = field(default_factory=dict)  # first_name, last_name, phone for a new contact
    # The buyer ticked Stripe Checkout's promotional-emails box (consent_collection.promotions): a consent
    # of its own, recorded as such. Nothing else here ever implies one.
    opted_in: str | None = None  # the consent text to record, naming the session


class NotForUs(ValueError):
    """A payload that is well signed but names no contact or carries nothing we record: acknowledged, ignored."""


def dotted(payload: object, path: str) -> object:
    """`customer.email` or `line_items.0.sku` in a parsed JSON payload; MISSING when any part is absent."""
    here = payload
    for part in path.split("."):
        if isinstance(here, Mapping) and part in here:
            here = here[part]
        elif isinstance(here, list) and part.isdigit() and int(part) < len(here):
            here = here[int(part)]
        else:
            return MISSING
    return here


def major_amount(minor: object, currency: str) -> float | None:
    """Stripe's minor units as the amount a person reads (2400 usd -> 24.0), None when it is not a number."""
    if isinstance(minor, bool) or not isinstance(minor, int):
        return None
    places = 0 if currency in ZERO_DECIMAL else 3 if currency in THREE_DECIMAL else 2
    return float(Decimal(minor).scaleb(-places))


def decimal_amount(value: object) -> float | None:
    """A shop's "199.65" (or 199.65) as a number; None for anything else, never an error."""
    if isinstance(value, bool) or value is MISSING or value is None:
        return None
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return float(amount) if amount.is_finite() and abs(amount) < Decimal(10) ** 12 else None


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def stripe_created(event: Mapping, now: datetime) -> datetime:
    """When Stripe says it happened (`created`, Unix seconds); `now` when absent, odd or in the future."""
    created = event.get("created")
    if isinstance(created, bool) or not isinstance(created, int) or not 0 < created < 2**33:
        return now
    return min(datetime.fromtimestamp(created, UTC), now)


def _stripe_email(obj: Mapping) -> str:
    for path in ("customer_details.email", "customer_email", "billing_details.email", "receipt_email", "email"):
        if email := _text(dotted(obj, path)):
            return email
    return ""


def _stripe_refs(obj: Mapping) -> list[str]:
    """The ids a Stripe object names that integrations.yaml may map to a product: line items' prices and
    products (invoice lines, old and new API shapes; expanded checkout line items), the payment link, and
    `metadata.product` / `metadata.price` set by whoever made the session."""
    refs: list[str] = []
    for container in ("lines", "line_items"):
        lines = dotted(obj, f"{container}.data")
        for line in lines if isinstance(lines, list) else []:
            for path in ("price.id", "price.product", "pricing.price_details.price",
                         "pricing.price_details.product", "plan.id", "plan.product"):
                refs.append(_text(dotted(line, path)))
    refs += [_text(dotted(obj, "payment_link")), _text(dotted(obj, "metadata.product")),
             _text(dotted(obj, "metadata.price"))]
    return [ref for ref in dict.fromkeys(refs) if ref]


def stripe_product(obj: Mapping, products: Mapping[str, str]) -> str:
    """Our product id for what was bought: the first id the object names that the mapping knows."""
    return next((products[ref] for ref in _stripe_refs(obj) if ref in products), "")


def stripe_inbound(event: Mapping, products: Mapping[str, str], now: datetime) -> Inbound:
    """A verified Stripe event as our event. Raises NotForUs for a type we do not record or a payload with no
    email to find the contact by."""
    kind, event_id = _text(event.get("type")), _text(event.get("id"))
    obj = dotted(event, "data.object")
    if kind not in STRIPE_PURCHASES + STRIPE_REFUNDS or not isinstance(obj, Mapping) or not event_id:
        raise NotForUs(f"Stripe event {kind or '(no type)'} is not one nurture records")
    email = _stripe_email(obj)
    if not email:
        raise NotForUs(f"Stripe event {event_id} names no customer email")
    currency = _text(obj.get("currency")).lower()
    data: dict = {"source": "stripe", "stripe_event": event_id, "stripe_object": _text(obj.get("id")),
                  "currency": currency.upper()}
    if payment_intent := _text(obj.get("payment_intent")):
        data["payment_intent"] = payment_intent
    if kind in STRIPE_REFUNDS:
        data["amount"] = major_amount(obj.get("amount_refunded"), currency)
        return Inbound(email, "refund", data, f"stripe:{event_id}", stripe_created(event, now))
    minor = obj.get("amount_total") if kind == "checkout.session.completed" else obj.get("amount_paid")
    data.update(product=stripe_product(obj, products), amount=major_amount(minor, currency))
    name = _text(dotted(obj, "customer_details.name")) or _text(obj.get("customer_name"))
    first, _, last = name.partition(" ")
    opted_in = None
    if kind == "checkout.session.completed" and dotted(obj, "consent.promotions") == "opt_in":
        opted_in = (f"Stripe Checkout: the promotional emails box was ticked (consent.promotions = opt_in) "
                    f"in checkout session {data['stripe_object']}")
    return Inbound(email, "purchase", data, f"stripe:{event_id}", stripe_created(event, now),
                   {"first_name": first, "last_name": last}, opted_in)


CONTACT_KEYS = ("email", "first_name", "last_name", "phone")


def hook_inbound(hook: Hook, payload: object) -> Inbound:
    """A verified payload as the event `hook` maps it to. Raises NotForUs when the `when` filter does not
    match (Calendly sends cancellations to the same address) or it has no email."""
    for path, expected in hook.when.items():
        if str(dotted(payload, path)) != expected:
            raise NotForUs(f"{path} is not {expected!r}: hook {hook.name} ignores this payload")
    values = {name: dotted(payload, path) for name, path in hook.fields.items()}
    email = _text(values.pop("email", MISSING))
    if not email:
        raise NotForUs(f"the payload has no email at {hook.fields.get('email', 'email')!r}")
    names = {key: _text(values.pop(key)) for key in CONTACT_KEYS[1:] if key in values}
    data: dict = {"source": f"hook:{hook.name}"}
    for name, value in values.items():
        if value is MISSING:
            continue
        if name == "amount":
            value = decimal_amount(value)
        elif name == "product":
            value = hook.products.get(str(value), str(value))
        elif name == "currency" and isinstance(value, str):
            value = value.upper()
        data[name] = value
    own_id = dotted(payload, hook.idempotency) if hook.idempotency else MISSING
    if own_id is MISSING or own_id is None or isinstance(own_id, dict | list) or str(own_id) == "":
        raise NotForUs(f"the payload has no id at {hook.idempotency!r} (each event needs one, so a retry "
                       "is recorded once)")
    return Inbound(email, hook.event, data, f"hook:{hook.name}:{own_id}"[:200], None, names)
