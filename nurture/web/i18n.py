"""The language of the pages a contact sees (Flask-Babel): the sign-up form and its messages, the confirm
page, the preference page, the feedback page. The owner's console stays in English.

Which language: the contact's own (`contact.locale`) on pages reached by a signed link, once the view has
called `use_locale`; on the anonymous form, a `locale` the site passed (hidden field or `?locale=`), else
the browser's Accept-Language, negotiated against the languages nurture's words are shipped in.
"""

from __future__ import annotations

from babel import Locale
from flask import Flask, current_app, g, request
from flask_babel import Babel, get_locale, gettext, refresh

from nurture.content.app_words import SOURCE_LOCALE, TRANSLATIONS_DIR, app_locales
from nurture.content.template_locales import template_locales
from nurture.rules.locales import InvalidLocale, Words, negotiate, optional_locale
from nurture.runtime import Runtime


def init_app(app: Flask) -> None:
    app.config.update(BABEL_TRANSLATION_DIRECTORIES=str(TRANSLATIONS_DIR), BABEL_DEFAULT_LOCALE=SOURCE_LOCALE)
    Babel(app, locale_selector=_selected)
    app.jinja_env.globals.update(language_name=language_name, translated=translated, page_lang=page_lang)


def _selected() -> str:
    """The page's language: the contact's (or the one passed), as far as nurture's words come in it (fr_CA
    gets fr; de gets the default), else the browser's, else the default."""
    chosen = g.get("nurture_locale")
    if chosen:
        return negotiate([chosen], app_locales()) or _default_page_locale()
    return browser_locale(app_locales()) or _default_page_locale()


def _default_page_locale() -> str:
    default = current_app.extensions["nurture"].settings.default_locale
    return default if negotiate([default], app_locales()) else SOURCE_LOCALE


def browser_locale(available: tuple[str, ...] | list[str] | set[str]) -> str | None:
    """The best of `available` for this request's Accept-Language, or None."""
    return negotiate(request.accept_languages.values(), available)


def use_locale(locale: str | None) -> None:
    """Show the rest of this request in `locale` (a contact's, or one the site passed); None changes nothing."""
    if locale:
        g.nurture_locale = locale
        refresh()


def passed_locale(value: object) -> str | None:
    """A `locale` a page was given (hidden field, `?locale=`): normalised, or None when absent or not a language."""
    try:
        return optional_locale(value) if isinstance(value, str) else None
    except InvalidLocale:
        return None


CONTENT_LOCALES_SECONDS = 60  # how long the languages of the template folders are taken as known


def supported_locales(rt: Runtime) -> list[str]:
    """What a new contact's language may be set to from its browser: a language nurture's own words come in,
    or one the owner wrote templates for (the emails are then in it, even if the pages are not).

    The template folders are walked at most once a minute per process (a walk is a stat per file: cheap,
    but not per sign-up); a language added meanwhile is offered from the next walk on."""
    now = rt.clock()
    cached = current_app.extensions.get("nurture.content_locales")
    if cached is None or (now - cached[0]).total_seconds() >= CONTENT_LOCALES_SECONDS:
        cached = (now, list(template_locales(rt.settings.templates_dir, rt.settings.sms.templates_dir)))
        current_app.extensions["nurture.content_locales"] = cached
    return list(dict.fromkeys([rt.settings.default_locale, *app_locales(), *cached[1]]))


def translated(message: str) -> str:
    """A message of nurture's own (nurture.rules.locales.Words, or a marked constant) in the page's language."""
    if isinstance(message, Words):
        text = gettext(message.msgid, **message.params) if message.params else gettext(message.msgid)
        untranslated = message.msgid % message.params if message.params else message.msgid
        return str(message) if text == untranslated else text  # English keeps a library's precise reason
    return gettext(message)


def page_lang() -> str:
    """The page's language for `<html lang>`: `fr`, `pt-BR`."""
    locale = get_locale()
    return str(locale).replace("_", "-") if locale else SOURCE_LOCALE


def language_name(tag: str) -> str:
    """`fr` -> `Français`: each language by its own name, as a language menu should show it."""
    try:
        locale = Locale.parse(tag)
    except (ValueError, TypeError):
        return tag
    name = locale.get_display_name(locale) or tag
    return name[:1].upper() + name[1:]
