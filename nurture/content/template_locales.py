"""Which languages the owner's content is written in: the `<name>.<locale>.<ext>` files beside the default
ones in the email and SMS template folders (docs/locales.md)."""

from __future__ import annotations

from pathlib import Path

from nurture.rules.locales import InvalidLocale, normalise_locale

TEMPLATE_EXTENSIONS = (".html", ".txt")


def locale_of(path: Path) -> str | None:
    """`edu-1.fr.html` -> `fr`; None for a default file (`edu-1.html`) or a suffix that names no language."""
    parts = path.name.split(".")
    if len(parts) < 3 or f".{parts[-1]}" not in TEMPLATE_EXTENSIONS:
        return None
    try:
        tag = normalise_locale(parts[-2])
    except InvalidLocale:
        return None
    return tag if tag == parts[-2] else None  # `edu-1.FR.html` is no variant: lookups ask for `fr`


def misnamed(*folders: Path) -> list[tuple[Path, str]]:
    """Files whose suffix names a language in another spelling than lookups use (`edu-1.fr-CA.html` for
    `edu-1.fr_CA.html`, `edu-1.FR.html`): never found as variants. Each with the spelling to use."""
    found = []
    for folder in folders:
        for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
            parts = path.name.split(".")
            if not path.is_file() or len(parts) < 3 or f".{parts[-1]}" not in TEMPLATE_EXTENSIONS:
                continue
            try:
                tag = normalise_locale(parts[-2])
            except InvalidLocale:
                continue
            if tag != parts[-2]:
                found.append((path, tag))
    return found


def localized_template(folder: Path, template: str, extension: str, chain: tuple[str, ...]) -> tuple[str, str | None]:
    """The template a contact with locale lookup `chain` gets: `lead/edu-1.fr` and "fr" when
    `lead/edu-1.fr<extension>` exists under `folder`, else the default name and None (as the send path
    picks it: nurture.content.rendering.TemplateCatalog)."""
    for locale in chain:
        if (folder / f"{template}.{locale}{extension}").is_file():
            return f"{template}.{locale}", locale
    return template, None


def template_locales(*folders: Path) -> dict[str, list[Path]]:
    """Every language that has localized files under `folders`, with those files (sorted)."""
    found: dict[str, list[Path]] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            locale = locale_of(path) if path.is_file() else None
            if locale:
                found.setdefault(locale, []).append(path)
    return found
