"""nurture's own words (not the owner's content) in a contact's language, outside a web request: SMS
replies and notices. The web pages use the same catalogs through Flask-Babel (nurture.web.i18n).

The catalogs are `nurture/translations/<locale>/LC_MESSAGES/messages.po`, compiled to `.mo` beside them
(committed; tests/test_locales.py fails when a `.mo` is older than its `.po` or a message is untranslated).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from babel.support import NullTranslations, Translations

from nurture.rules.locales import lookup_chain

TRANSLATIONS_DIR = Path(__file__).resolve().parent.parent / "translations"
SOURCE_LOCALE = "en"  # the language nurture's own words are written in


@lru_cache(maxsize=64)
def translations(locale: str | None) -> NullTranslations:
    """The catalog for `locale` (falling back along its chain: fr_CA -> fr), or the words as written."""
    chain = list(lookup_chain(locale, SOURCE_LOCALE))
    if not chain:
        return NullTranslations()
    return Translations.load(str(TRANSLATIONS_DIR), chain, domain="messages")


def translate(locale: str | None, message: str, **params: object) -> str:
    """`message` in `locale`, with `%(name)s` placeholders filled from `params` (as Flask-Babel does)."""
    text = translations(locale).ugettext(message)
    return text % params if params else text


@lru_cache(maxsize=1)
def app_locales() -> tuple[str, ...]:
    """The languages nurture's own words are shipped in: the source language and every compiled catalog."""
    found = sorted(p.parent.parent.name for p in TRANSLATIONS_DIR.glob("*/LC_MESSAGES/messages.mo"))
    return (SOURCE_LOCALE, *found)
