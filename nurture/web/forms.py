"""Signup forms on the web: the hosted page, the plain HTML form's POST, the script embed, double opt-in links.

| Route | What |
|---|---|
| GET /forms/<id> | the hosted page (JSON: the form's definition, for custom front ends) |
| POST /forms/<id> | a sign-up: 303 to the thank-you page, or 400 with the form re-shown; JSON when asked |
| OPTIONS /forms/<id> | CORS preflight, for the form's allowed origins only |
| GET /forms/<id>/embed.js | the one-line script embed |
| GET /forms/<id>/thanks | the default thank-you page |
| GET /forms/<id>/download/<token> | a lead magnet file, for whoever got the welcome email |
| GET, POST /confirm/<token> | the double opt-in link: GET shows a button, POST confirms |

Domain errors (InvalidSignup, SignupUnavailable, UnknownSignup, BadToken) become pages or JSON here.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext
from jinja2.utils import htmlsafe_json_dumps
from redis import Redis
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException

from nurture import jobs
from nurture.content.forms import ATTRIBUTION_KEYS, HONEYPOT, STARTED, Form, FormRegistry
from nurture.people import signup
from nurture.people.contacts import ErasedAddress
from nurture.people.submission import FORM_ERROR, InvalidSignup
from nurture.rules.locales import Words
from nurture.rules.tokens import BadToken
from nurture.runtime import Runtime
from nurture.store.models import Subscription
from nurture.web import runtime, submit_limit
from nurture.web.i18n import browser_locale, passed_locale, supported_locales, translated, use_locale
from nurture.web.unsubscribe import mask

log = logging.getLogger(__name__)
bp = Blueprint("forms", __name__)

EMBED_JS = (Path(__file__).parent / "static" / "embed.js").read_text(encoding="utf-8")
# Shown to the person signing up, in their language (nurture.web.i18n.translated).
TOO_MANY = Words("Too many sign-ups from your network just now. Please wait a minute and try again.")
TOO_BIG = Words("That was far more than this form takes. Please send just the form's fields.")
UNAVAILABLE = Words("Sign-ups are paused for a moment. Please try again in a few minutes.")
WRONG_SITE = Words("This form only takes sign-ups from the sites it was set up for.")
NOT_FOUND = Words("There is no such form. The link may be out of date.")
CHECK_FIELDS = Words("Please check the highlighted fields.")
NOT_JSON = Words("The request body must be a JSON object of field names and values.")


def init_app(app: Flask, rt: Runtime) -> None:
    """Register the blueprint, with its per-IP rate limit on submissions (one per app: each app may have
    its own Redis)."""
    app.register_blueprint(bp)
    app.extensions["nurture.forms"] = FormRegistry(rt.settings.forms_dir)
    client = None
    if rt.settings.redis_url:
        # Short timeouts: a Redis that hangs must not hold a visitor's sign-up.
        client = Redis.from_url(rt.settings.redis_url, socket_connect_timeout=submit_limit.TIMEOUT,
                                socket_timeout=submit_limit.TIMEOUT)
        app.extensions["nurture.redis"] = client
    submit_limit.install(app, rt.settings.form_rate_limit, client, jobs.tick_gate_key(rt),
                         submit_limit.limits_prefix(rt.settings.redis_prefix))


def registry() -> FormRegistry:
    return current_app.extensions["nurture.forms"]


def wants_json() -> bool:
    if request.is_json:
        return True
    return request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json"


def _page(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    return render_template(template, brand=runtime().settings.brand_name, **context), status


def _message(status: int, heading: str, message: str, form: Form | None = None) -> tuple[Any, int]:
    heading, message = translated(heading), translated(message)
    if wants_json():
        return jsonify(ok=status < 400, message=message), status
    return _page("form_message.html", status, form=form or _NoForm(), heading=heading, message=message)


class _NoForm:
    """Stands in for a form on pages shown without one (the page title comes from it)."""

    def __init__(self, title: str = "") -> None:
        self.title = self.name = title or gettext("Sign up")


def _form(form_id: str) -> Form:
    form = registry().get(form_id)
    if form is None:
        raise _Missing()
    g.nurture_form = form  # for `cors`, after the view: the folder need not be checked twice a request
    return form


class _Missing(HTTPException):
    code = 404


@bp.errorhandler(_Missing)
def missing(_exc: Exception) -> tuple[Any, int]:
    return _message(404, Words("Form not found"), NOT_FOUND)


@bp.errorhandler(429)
def too_many(_exc: Exception) -> tuple[Any, int]:
    return _message(429, Words("Please wait a moment"), TOO_MANY)


@bp.errorhandler(413)
def too_big(_exc: Exception) -> tuple[Any, int]:
    return _message(413, Words("That was too much"), TOO_BIG)


@bp.after_request
def cors(response: Response) -> Response:
    """CORS for the form's allowed origins only: the allowed Origin is echoed, never `*` for everyone."""
    form_id = (request.view_args or {}).get("form_id")
    origin = request.headers.get("Origin")
    response.vary.add("Origin")
    form = g.get("nurture_form") or (registry().get(form_id) if form_id else None)
    if form is not None and form.allows_origin(origin):
        response.headers["Access-Control-Allow-Origin"] = origin
    return response


def _own_origins() -> set[str]:
    """nurture's own pages (the hosted form) post from here: as configured, and as this request reached us."""
    return {_origin_of(runtime().settings.base_url), _origin_of(request.host_url)}


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _origin_allowed(form: Form) -> bool:
    """A browser names the page a POST comes from (Origin). No Origin (curl, an old browser): allowed,
    there is nothing a forged request could gain that a direct one could not."""
    origin = request.headers.get("Origin")
    return not origin or origin.lower() in _own_origins() or form.allows_origin(origin)


def _hidden_attribution() -> dict[str, str]:
    """The hosted page passes its own query string and referrer on as hidden fields."""
    values = {key: request.args[key] for key in ATTRIBUTION_KEYS if request.args.get(key)}
    if request.referrer and "referrer" not in values:
        values["referrer"] = request.referrer
    return values


def _form_page(form: Form, status: int = 200, values: dict | None = None, errors: dict | None = None,
               hidden: dict | None = None, started: str | None = None) -> tuple[str, int]:
    rt = runtime()
    hidden = dict(hidden or {})
    if g.get("nurture_locale") and "locale" not in hidden and not any(f.name == "locale" for f in form.fields):
        hidden["locale"] = g.nurture_locale  # the page's language goes on with the sign-up
    # The hosted page posts back to where it was opened (a path, not BASE_URL): opened at another address
    # of the same server (127.0.0.1 for localhost, a second domain), a BASE_URL action made the browser
    # post cross-origin, and the origin check answered "Not from this site".
    return _page("form_page.html", status, form=form, action=url_for("forms.submit", form_id=form.id),
                 values=values or {}, errors=errors or {}, honeypot=HONEYPOT, hidden=hidden,
                 started=started or rt.signer.form_token(form.id, rt.clock()))


def definition(form: Form, rt: Runtime) -> dict[str, Any]:
    """What a front end needs to draw the form (the script embed, or someone's own)."""
    return {
        "id": form.id, "title": form.title or form.name, "intro": form.intro,
        "action": f"{rt.settings.base_url}/forms/{form.id}",
        "fields": [{"name": f.name, "label": f.label, "type": f.type, "required": f.required,
                    "choices": list(f.choices), "placeholder": f.placeholder} for f in form.fields],
        "consent_text": form.consent_text, "consent_checkbox": form.consent_checkbox,
        "sms_consent_text": form.sms_consent_text,
        "submit_label": form.submit_label, "honeypot": HONEYPOT,
        "started": rt.signer.form_token(form.id, rt.clock()),
        "attribution": [k for k in ATTRIBUTION_KEYS if k not in ("landing_page", "referrer")],
    }


@bp.get("/forms/<form_id>", provide_automatic_options=False)
def show(form_id: str) -> Any:
    form = _form(form_id)
    if wants_json():
        return jsonify(definition(form, runtime()))
    use_locale(passed_locale(request.args.get("locale")))  # a French site links to ?locale=fr
    return _form_page(form, hidden=_hidden_attribution())


@bp.route("/forms/<form_id>", methods=["OPTIONS"])
def preflight(form_id: str) -> Response:
    form = _form(form_id)
    response = Response(status=204)
    if form.allows_origin(request.headers.get("Origin")):
        response.headers["Access-Control-Allow-Methods"] = "POST"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type, Accept"
        response.headers["Access-Control-Max-Age"] = "86400"
    return response


def _posted() -> dict[str, object]:
    if request.is_json:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise InvalidSignup({FORM_ERROR: NOT_JSON})
        return body
    data: dict[str, object] = dict(request.form.items())
    data.update({name: "" for name in request.files if name not in data})  # a file is no field of ours
    return data


def _visitor() -> signup.Visitor:
    return signup.Visitor(ip=request.remote_addr, user_agent=request.headers.get("User-Agent"))


@bp.post("/forms/<form_id>", provide_automatic_options=False)
def submit(form_id: str) -> Any:
    """A sign-up. It is counted against FORM_RATE_LIMIT first, and Redis answers while the form is read and
    checked; the answer is read before anything is written or answered: past the limit, the answer is the
    429, whatever else was wrong with the request."""
    counting = submit_limit.start()
    try:
        return _submit(form_id, counting)
    finally:
        submit_limit.enforce(counting)  # the 429 in place of any other answer or error


def _submit(form_id: str, counting: submit_limit.Counting) -> Any:
    rt, form = runtime(), _form(form_id)
    if not _origin_allowed(form):
        return _message(403, Words("Not from this site"), WRONG_SITE, form)
    data: dict[str, object] = {}
    try:
        data = _posted()
        use_locale(passed_locale(data.get("locale") or request.args.get("locale")))
        submission = signup.screen(rt, form, data, request.args)
        if submission is not None and submission.locale is None:
            submission = replace(submission, locale=browser_locale(supported_locales(rt)))
        if submission is None:
            log.info("form %s: a bot's submission from %s ignored", form.id, request.remote_addr)
        else:
            tick_waiting = submit_limit.enforce(counting)  # 429 past FORM_RATE_LIMIT from this address
            signup.submit(rt, form, submission, _visitor())
            if not tick_waiting:  # else the tick that was waiting when the limit was counted claims it
                _nudge_worker(rt)
    except InvalidSignup as exc:
        return _invalid(form, data, exc.errors)
    except ErasedAddress:  # answered like any sign-up: nobody learns that this person was ever a contact
        log.info("form %s: a sign-up of an erased address refused, nothing recorded", form.id)
    except signup.SignupUnavailable:
        return _message(503, Words("Please try again soon"), UNAVAILABLE, form)
    return _accepted(form)


def _accepted(form: Form) -> Any:
    """The same answer for a real sign-up, a repeat and a bot: nobody learns whether an address is known,
    and a bot cannot tell that it was turned away."""
    if wants_json():
        return jsonify(ok=True, status=Subscription.PENDING if form.double_opt_in else Subscription.SUBSCRIBED,
                       message=form.thanks_message), 200
    language = f"?locale={g.nurture_locale}" if g.get("nurture_locale") else ""  # the thank-you page in it too
    return redirect(form.redirect or f"{runtime().settings.base_url}/forms/{form.id}/thanks{language}", 303)


def _started_again(rt: Runtime, form: Form, data: dict[str, object]) -> str:
    """The token for the form shown again: the one it came with, if valid, so the fill time still counts
    from when the person first saw the form (a fresh one would make a quick fix of a typo look like a bot)."""
    token = data.get(STARTED)
    try:
        if isinstance(token, str) and rt.signer.form_issued(token, form.id):
            return token
    except BadToken:
        pass
    return rt.signer.form_token(form.id, rt.clock())


def _invalid(form: Form, data: dict[str, object], errors: dict[str, str]) -> Any:
    rt = runtime()
    started = _started_again(rt, form, data)
    errors = {name: translated(message) for name, message in errors.items()}
    if wants_json():
        message = errors.get(FORM_ERROR, translated(CHECK_FIELDS))
        return jsonify(ok=False, errors=errors, message=message, started=started), 400
    kept = {k: v for k, v in data.items() if k not in (HONEYPOT, STARTED) and isinstance(v, str | bool)}
    hidden = {k: str(v) for k, v in kept.items() if k in ATTRIBUTION_KEYS or (k in ("timezone", "locale")
              and not any(f.name == k for f in form.fields))}
    return _form_page(form, 400, values=kept, errors=errors, hidden=hidden, started=started)


def _nudge_worker(rt: Runtime) -> None:
    """Queue a tick now so the email goes out in seconds, not at the next scheduled tick. Best effort:
    without Redis the scheduled tick (or `nurture send-due`) sends it; the database holds what is due.

    A sign-up calls this only when no tick was waiting as its rate limit was counted (the same round trip,
    see submit_limit): under a steady stream of sign-ups, only the first after each tick started. The
    window that leaves: a waiting tick that starts and claims in the milliseconds between that count and
    the sign-up's commit misses it, and the next sign-up's tick or the scheduled one (TICK_SECONDS) sends it."""
    client = current_app.extensions.get("nurture.redis")
    if client is None:
        return
    try:
        jobs.request_tick(rt, client)  # one Redis round trip when a tick is queued already
    except (RedisError, OSError) as exc:
        log.info("could not queue a tick after a sign-up (the next scheduled tick sends it): %s", exc)


@bp.get("/forms/<form_id>/thanks")
def thanks(form_id: str) -> tuple[str, int]:
    form = _form(form_id)
    use_locale(passed_locale(request.args.get("locale")))
    return _page("form_message.html", form=form, heading=gettext("Thank you!"), message=form.thanks_message)


@bp.get("/forms/<form_id>/embed.js")
def embed(form_id: str) -> Response:
    form = _form(form_id)
    config = htmlsafe_json_dumps(definition(form, runtime()))
    body = f"(function () {{\n{EMBED_JS}\nnurtureEmbed({config}, document.currentScript);\n}})();\n"
    # no-store: the script carries the signed time the form was handed out (the minimum fill time).
    return Response(body, mimetype="text/javascript", headers={"Cache-Control": "no-store"})


@bp.get("/forms/<form_id>/download/<token>")
def download(form_id: str, token: str) -> Any:
    rt, form = runtime(), _form(form_id)
    try:
        if rt.signer.lead_magnet_form(token) != form.id:
            raise BadToken("another form's link")
    except BadToken:
        return _message(400, Words("This link isn't valid"),
                        Words("Open the link straight from the email we sent you."), form)
    magnet = form.lead_magnet
    base = rt.settings.forms_dir.resolve()
    path = (base / magnet.file).resolve() if magnet and magnet.file else None
    if path is None or not path.is_relative_to(base) or not path.is_file():
        return _message(404, Words("Not here any more"), Words("This download is no longer available."), form)
    return send_file(path, download_name=path.name)


# --- double opt-in ------------------------------------------------------------------------------------------
# The link's GET only shows a "Confirm" button, and the button POSTs. Mail scanners (Outlook Safe Links,
# corporate gateways) fetch every link in a message before the person sees it; if GET confirmed, every
# address behind such a scanner would confirm itself and the opt-in would prove nothing. One extra click
# is the price of a confirmation that a person actually gave.

def _confirm_contact(token: str) -> int:
    rt = runtime()
    return rt.signer.confirmed_contact(token, rt.settings.signup_expiry_hours * 3600)


def _confirm_page(status: int, state: str, **context: Any) -> Any:
    if wants_json():
        return jsonify(ok=status < 400, status=state), status
    return _page("confirm.html", status, form=_NoForm(gettext("Confirm your email")), state=state, **context)


@bp.get("/confirm/<token>")
def confirm_page(token: str) -> Any:
    try:
        found = signup.waiting(runtime(), _confirm_contact(token))
    except (BadToken, signup.UnknownSignup):
        return _confirm_page(400, "expired")
    use_locale(found.locale)
    if found.confirmed:
        return _confirm_page(200, "already")
    return _confirm_page(200, "ask", masked=mask(found.email))


@bp.post("/confirm/<token>")
def confirm(token: str) -> Any:
    rt = runtime()
    try:
        result = signup.confirm(rt, registry(), _confirm_contact(token), _visitor())
    except (BadToken, signup.UnknownSignup):
        return _confirm_page(400, "expired")
    use_locale(result.locale)
    if not result.confirmed:
        return _confirm_page(200, "already")
    _nudge_worker(rt)  # the welcome email (and the lead magnet) in seconds
    magnet = result.form.lead_magnet if result.form else None
    return _confirm_page(200, "done", lead_magnet_url=result.lead_magnet_url,
                         lead_magnet_title=magnet.title if magnet else "")


def snippets(rt: Runtime, form: Form) -> dict[str, str]:
    """The three ways to embed `form`, as `nurture forms snippet` prints them (outside any request)."""
    from nurture.web import create_app

    with create_app(rt).test_request_context(base_url=rt.settings.base_url):
        return snippets_in_app(rt, form)


def snippets_in_app(rt: Runtime, form: Form) -> dict[str, str]:
    """The same, inside a running app (the console shows them): no second app is built per request."""
    base = rt.settings.base_url
    html = render_template("form_snippet.html", brand=rt.settings.brand_name, form=form,
                           action=f"{base}/forms/{form.id}", values={}, errors={}, honeypot=HONEYPOT,
                           hidden={}, started=rt.signer.form_token(form.id, rt.clock()))
    return {
        "plain HTML form (works without JavaScript)": html,
        "script embed (one line; the form appears where the tag is)":
            f'<script src="{base}/forms/{form.id}/embed.js" async></script>',
        "hosted page (link to it, or share it)": f"{base}/forms/{form.id}",
    }
