"""/u/<token>/unsubscribe: the unsubscribe link (the footer's, and List-Unsubscribe's one-click, RFC 8058);
/u/<token>: the preference page behind the footer's "manage preferences" link.

GET shows a page and changes nothing (link scanners and previews fetch links): the unsubscribe page asks
for one click on its button; the preference page offers every choice. POST with
`List-Unsubscribe=One-Click`, as a mailbox provider sends it — no cookie, no session, no CSRF token, no
Origin — unsubscribes from all marketing email and answers 200, never a redirect, at either address (mail
sent before the two were apart carries /u/<token> as its List-Unsubscribe). The signed token in the URL is
the only credential, so nothing here sets or reads a cookie.
"""

from __future__ import annotations

from dataclasses import replace

from flask import Blueprint, Response, render_template, request
from flask_babel import gettext
from sqlmodel import Session

from nurture.people import preferences
from nurture.people.preferences import Origin, UnknownLink
from nurture.rules.tokens import BadToken
from nurture.web import runtime
from nurture.web.i18n import use_locale

bp = Blueprint("unsubscribe", __name__)

ACTIONS = ("sequence", "all", "resubscribe", "sms-off", "sms-on")
def sms_consent_text() -> str:
    """Shown beside the button, and stored verbatim (in the language shown) in the consent record when texts
    are turned on."""
    return gettext("By turning texts on you agree to receive marketing text messages from %(brand)s. "
                   "Message and data rates may apply. Reply STOP to cancel, HELP for help.",
                   brand=runtime().settings.brand_name)


def _page(template: str, status: int = 200, **context: object) -> tuple[str, int]:
    brand = runtime().settings.brand_name
    return render_template(template, brand=brand, sms_consent=sms_consent_text(), **context), status


def _bad_link() -> tuple[str, int]:
    return _page("link_invalid.html", 400)


def _target(session: Session, delivery_id: int) -> preferences.LinkTarget:
    """What the link points at; the page is shown in its contact's language from here on."""
    target = preferences.resolve(session, delivery_id)
    use_locale(target.contact.locale)
    return target


def _origin(method: str, delivery_id: int) -> Origin:
    return Origin(method=method, delivery_id=delivery_id, ip=request.remote_addr,
                  user_agent=request.headers.get("User-Agent"))


def mask(address: str) -> str:
    """a***@example.com: enough for the owner to recognise, not much for whoever a link was forwarded to."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}{'*' * max(len(local) - 1, 2)}@{domain}"


def _link_page(token: str, template: str) -> tuple[str, int]:
    """A page about the delivery `token` signs (GET: shown, nothing changed), or the bad-link page."""
    rt = runtime()
    try:
        delivery_id = rt.signer.delivery_id(token)
        with Session(rt.db) as session:
            target = _target(session, delivery_id)
            sequence = rt.sequences.get(target.delivery.sequence_id)
            return _page(template, contact=target.contact, enrollment=target.enrollment, token=token,
                         sequence_name=sequence.name if sequence else target.delivery.sequence_id,
                         masked=mask(target.contact.email), done=None)
    except (BadToken, UnknownLink):
        return _bad_link()


@bp.get("/u/<token>")
def show(token: str) -> tuple[str, int]:
    """The preference page: every choice."""
    return _link_page(token, "preferences.html")


@bp.get("/u/<token>/unsubscribe")
def confirm_unsubscribe(token: str) -> tuple[str, int]:
    """The footer's Unsubscribe: one button, and the way to the preference page."""
    return _link_page(token, "unsubscribe.html")


@bp.post("/u/<token>/unsubscribe")
def unsubscribe(token: str) -> tuple[str, int] | Response:
    """One-click (RFC 8058) or the unsubscribe page's button: out of all marketing email."""
    return _change(token, "all", "unsubscribe-link")


@bp.post("/u/<token>")
def change(token: str) -> tuple[str, int] | Response:
    """The preference page's forms (and one-click, for mail whose List-Unsubscribe points here)."""
    return _change(token, request.form.get("action", ""), "preference-page")


def _change(token: str, action: str, method: str) -> tuple[str, int] | Response:
    rt = runtime()
    try:
        delivery_id = rt.signer.delivery_id(token)
    except BadToken:
        return _bad_link()
    one_click = request.form.get("List-Unsubscribe") == "One-Click"
    action = "all" if one_click else action
    if action not in ACTIONS:
        return _page("link_invalid.html", 400, reason=gettext("That request was not understood."))
    now = rt.clock()
    with Session(rt.db) as session:
        try:
            target = _target(session, delivery_id)
        except UnknownLink:
            return _bad_link()
        origin = _origin("one-click" if one_click else method, delivery_id)
        _apply(session, action, target, origin, now)
        session.commit()
        if one_click:
            return Response(gettext("You have been unsubscribed from all marketing email.") + "\n", 200,
                            mimetype="text/plain")
        session.refresh(target.contact)
        if target.enrollment is not None:
            session.refresh(target.enrollment)
        sequence = rt.sequences.get(target.delivery.sequence_id)
        return _page("preferences.html", contact=target.contact, enrollment=target.enrollment,
                     sequence_name=sequence.name if sequence else target.delivery.sequence_id,
                     masked=mask(target.contact.email), done=action)


def _apply(session: Session, action: str, target: preferences.LinkTarget, origin: Origin, now) -> None:  # noqa: ANN001
    contact = target.contact
    if action == "all":
        preferences.unsubscribe_all(session, contact, origin, now)
    elif action == "sequence" and target.enrollment is not None:
        preferences.leave_sequence(session, contact, target.enrollment, origin, now)
    elif action == "resubscribe":
        preferences.resubscribe(session, contact, origin, now)
    elif action in ("sms-on", "sms-off"):
        if action == "sms-on":
            origin = replace(origin, consent_text=sms_consent_text())
        preferences.set_sms(session, contact, action == "sms-on", origin, now)
