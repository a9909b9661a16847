"""Locales: a contact's language as one normalised tag, and the order in which its files are looked for.

Pure: Babel's locale data only (files shipped inside the package), no I/O of nurture's own, no clock.
A tag is kept in Babel's form (`fr`, `pt_BR`, `zh_Hant_TW`): `Locale.parse` accepts `fr-FR`, `fr_FR` and
`FR-fr` alike, and its string is what template file names and the message catalogs use.
"""

from __future__ import annotations

from collections.abc import Iterable

from babel import Locale, UnknownLocaleError, negotiate_locale

MAX_LOCALE = 35  # the column's size: BCP 47 allows longer tags, but no language a template is written in


class InvalidLocale(ValueError):
    """A value that names no language Babel knows."""


def normalise_locale(value: str) -> str:
    """`fr-FR` -> `fr_FR`. Raises InvalidLocale for a tag Babel does not know (or an absurd one)."""
    text = value.strip()
    if not text or len(text) > MAX_LOCALE:
        raise InvalidLocale(f"{value!r} is not a language tag like fr or pt-BR")
    try:
        return str(Locale.parse(text, sep="-" if "-" in text else "_"))
    except (ValueError, TypeError, UnknownLocaleError):
        raise InvalidLocale(f"{value!r} is not a language tag like fr or pt-BR") from None


def optional_locale(value: object) -> str | None:
    """An optional locale from a form, a file or the API: empty -> None, else normalised (or InvalidLocale)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise InvalidLocale("a language tag is a text like fr or pt-BR")
    return normalise_locale(value)


def lookup_chain(locale: str | None, default: str) -> tuple[str, ...]:
    """The localized variants to look for before the default files, most specific first: `pt_BR` ->
    (`pt_BR`, `pt`). Empty when the contact's language is the default one (its files have no suffix)."""
    if not locale:
        return ()
    chain: list[str] = [locale]
    parts = locale.split("_")
    while len(parts) > 1:
        parts.pop()
        chain.append("_".join(parts))
    if default in chain:  # en_GB with default en: en_GB's own files, then the plain ones
        chain = chain[: chain.index(default)]
    return tuple(chain)


def negotiate(accepted: Iterable[str], available: Iterable[str]) -> str | None:
    """The best of `available` for a browser's Accept-Language list (best first), or None.

    Babel's negotiate_locale matches `fr-CA` to an available `fr` (by its language) and is case-blind."""
    offered = list(dict.fromkeys(available))
    wanted = [tag.replace("_", "-") for tag in accepted if tag and tag != "*"]
    found = negotiate_locale(wanted, [tag.replace("_", "-") for tag in offered], sep="-")
    return None if found is None else normalise_locale(found)


def localized_name(name: str, locale: str) -> str:
    """`lead/edu-1.html` -> `lead/edu-1.fr.html`: a template's variant for `locale`."""
    stem, dot, extension = name.rpartition(".")
    return f"{stem}.{locale}.{extension}" if dot else f"{name}.{locale}"


class Words(str):
    """A message of nurture's own for a person (a form error, say), in English, that the web layer can show
    in the person's language: `msgid` is looked up in the catalog and `params` filled in again. Pure code
    raises these; nothing below the web layer knows which language a request is in."""

    msgid: str
    params: dict[str, object]

    def __new__(cls, msgid: str, **params: object) -> Words:
        made = super().__new__(cls, msgid % params if params else msgid)
        made.msgid = msgid
        made.params = params
        return made

    @classmethod
    def detailed(cls, msgid: str, english: str) -> Words:
        """English shows `english` (a library's precise reason); other languages the translated `msgid`."""
        made = str.__new__(cls, english)
        made.msgid = msgid
        made.params = {}
        return made
