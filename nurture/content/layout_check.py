"""What `nurture check` says about layouts as each language's contacts get them.

An email is put together from the files found along its contact's lookup chain: `<name>.<locale>.<ext>`
before `<name>.<ext>`, for the template, its layout and the layout's base alike (TemplateCatalog in
nurture.content.rendering). So `_layout.de.html` alone changes every email a German contact gets, even
with no German template: the layouts are checked for every language that has any localized email file,
not only through that language's own templates.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import jinja2

from nurture.content.rendering import _BLOCK, _EXTENDS, ExtendsLoop, _spliced, flatten
from nurture.rules.locales import localized_name, lookup_chain

_JINJA_COMMENT = re.compile(r"{#.*?#}", re.S)
_LINK_OPENING = re.compile(r"<a\b[^>]*>\Z", re.I)
WORDS_SHOWN = 40  # of a block's default words, in a message


@dataclass(frozen=True)
class Finding:
    """One thing to report, at a file named relative to the email templates folder."""

    name: str
    line: int
    message: str
    error: bool = True  # else a warning: printed, but the check passes


Read = list[tuple[str, str]]  # each file as asked for (`_layout.html`) and as found (`_layout.de.html`)


def chain_of(locale: str | None) -> tuple[str, ...]:
    """The variants a contact in `locale` gets, most specific first (`pt_BR`, then `pt`); () for the default."""
    return lookup_chain(locale, "") if locale else ()


def resolved(templates_dir: Path, name: str, chain: tuple[str, ...]) -> str:
    """The file a contact with lookup `chain` gets for `name`: its first variant that exists, else `name`."""
    for locale in chain:
        if (templates_dir / localized_name(name, locale)).is_file():
            return localized_name(name, locale)
    return name


def loader(env: jinja2.Environment, templates_dir: Path, chain: tuple[str, ...], read: Read) -> Callable[[str], str]:
    """`flatten`'s load for a contact with lookup `chain`; each file it reads is added to `read`, in order."""
    assert env.loader is not None

    def load(name: str) -> str:
        found = resolved(templates_dir, name, chain)
        source = env.loader.get_source(env, found)[0]  # type: ignore[union-attr]
        read.append((name, found))
        return source

    return load


def localized(read: Read) -> bool:
    return any(asked != found for asked, found in read)


def extends_line(source: str) -> int:
    match = _EXTENDS.search(source)
    return source[: match.start()].count("\n") + 1 if match else 1


def loop_message(exc: ExtendsLoop, templates_dir: Path, chain: tuple[str, ...], since: str | None = None) -> str:
    """`exc`'s message, from `since` on in its chain (the whole chain when None), and for a language's file
    read in place of the default name (the usual cause) what it should extend instead."""
    names = (*exc.chain, exc.name)
    cycle = names[names.index(since):] if since in names else names
    found = resolved(templates_dir, exc.name, chain)
    where = ""
    if found != exc.name:
        locale = found.split(".")[-2]
        where = (f" (for {locale!r} contacts {exc.name} is {found}, which must extend another file, such as "
                 f"_base{Path(exc.name).suffix}, the look every language shares)")
    return f"{' extends '.join(cycle)}: a template cannot extend itself{where}"


def chain_failure(exc: jinja2.TemplateError, env: jinja2.Environment, templates_dir: Path, chain: tuple[str, ...],
                  read: Read) -> Finding | None:
    """A loop or a missing parent met while flattening for `chain`, at the file whose `{% extends %}` fails
    (None when no file of the language was read: the default files' problem, reported where they are used)."""
    if not read or not localized(read):
        return None
    asked, found = read[-1]
    line = extends_line(env.loader.get_source(env, found)[0])  # type: ignore[union-attr]
    if isinstance(exc, ExtendsLoop):
        return Finding(found, line, loop_message(exc, templates_dir, chain, since=exc.name))
    if isinstance(exc, jinja2.TemplateNotFound):
        return Finding(found, line, f"template {exc.name!r} not found (extended by {found})")
    return None  # a syntax error: reported for the file itself


def extended_names(templates_dir: Path) -> list[str]:
    """Every file some email template extends (as named in its `{% extends %}`): the layouts."""
    return sorted(_extended_by(templates_dir))


def _extended_by(templates_dir: Path) -> dict[str, set[str]]:
    """Each file some email template extends, with the files (relative names) that extend it."""
    extenders: dict[str, set[str]] = {}
    for path in templates_dir.rglob("*"):
        if path.suffix in (".html", ".txt") and path.is_file():
            match = _EXTENDS.search(path.read_text(encoding="utf-8"))
            if match:
                extenders.setdefault(match[1], set()).add(path.relative_to(templates_dir).as_posix())
    return extenders


def layout_findings(env: jinja2.Environment, templates_dir: Path, locales: Iterable[str]) -> list[Finding]:
    """Each layout as the contacts of every language get it (and as the default ones do): a loop or a missing
    parent among a language's files, a word block that a file along the way leaves empty, and, for a layout
    that emails extend, a link whose text no file along the way writes."""
    found: list[Finding] = []
    extenders = _extended_by(templates_dir)
    for name in sorted(extenders):
        # A layout that only other layouts extend (the starter `_base` files) may leave words to them.
        used_by_emails = any(localized_base(extender) not in extenders for extender in extenders[name])
        for locale in [None, *locales]:
            found += _findings(env, templates_dir, name, locale, used_by_emails)
    return list(dict.fromkeys(found))


def localized_base(name: str) -> str:
    """`_layout.fr.html` -> `_layout.html`: the name other files extend a language's variant by."""
    parts = name.rsplit(".", 2)
    return f"{parts[0]}.{parts[2]}" if len(parts) == 3 and parts[1] and "/" not in parts[1] else name


def _findings(env: jinja2.Environment, templates_dir: Path, name: str, locale: str | None,
              used_by_emails: bool = True) -> list[Finding]:
    chain = chain_of(locale)
    if not (templates_dir / resolved(templates_dir, name, chain)).is_file():
        return []  # a missing layout: reported at each template that extends it
    read: Read = []
    try:
        flatten(name, loader(env, templates_dir, chain, read))
    except (jinja2.TemplateError, OSError) as exc:
        failure = chain_failure(exc, env, templates_dir, chain, read) if isinstance(exc, jinja2.TemplateError) else None
        return [failure] if failure else []
    found = emptied_blocks(env, templates_dir, read, locale)
    return found + (wordless_links(env, read, locale) if used_by_emails else [])


def wordless_links(env: jinja2.Environment, read: Read, locale: str | None) -> list[Finding]:
    """Blocks that are a link's whole text (the unsubscribe link's), empty in the file at the top of `read`
    (the one that extends nothing) and written by no file below it: every email through this layout gets a
    link no one can see or click. (A file that empties words its parent has is `emptied_blocks`' finding.)"""
    source_of = {found: env.loader.get_source(env, found)[0] for _, found in read}  # type: ignore[union-attr]
    top = read[-1][1]
    written = {block[1] for _, found in read[:-1] for block in _BLOCK.finditer(source_of[found])
               if _words(block[2])}
    found: list[Finding] = []
    for block in _BLOCK.finditer(source_of[top]):
        before = source_of[top][: block.start()]
        if _words(block[2]) or block[1] in written or not _LINK_OPENING.search(before.rstrip()):
            continue
        who = f"{locale!r} contacts" if locale else "contacts"
        through = f" through {read[0][1]}" if len(read) > 1 else ""
        found.append(Finding(top, before.count("\n") + 1,
                             f"block {block[1]!r} is the whole text of a link and nothing writes it: emails to "
                             f"{who}{through} get a link no one can see or click; write its words here or in "
                             f"{read[0][1]}"))
    return found


def emptied_blocks(env: jinja2.Environment, templates_dir: Path, read: Read, locale: str | None) -> list[Finding]:
    """Blocks that a file along `read` (most derived first) leaves empty where the file it extends has words.

    A block left out gets the parent's words (the starter `_base` files hold English ones for that); an
    empty block replaces them with nothing, in every email of that language. Inside a link (the unsubscribe
    link's text) that is an error: a link with no text cannot be seen or clicked. Elsewhere a warning: a
    missing sentence or label."""
    chain = chain_of(locale)
    found: list[Finding] = []
    for (_, child), (parent, parent_file) in zip(read, read[1:], strict=False):
        source = env.loader.get_source(env, child)[0]  # type: ignore[union-attr]
        spliced = _spliced(parent, loader(env, templates_dir, chain, []), ())[0]
        defaults = {m[1]: m for m in _BLOCK.finditer(spliced)}
        for block in _BLOCK.finditer(source):
            default = defaults.get(block[1])
            if default is None or _words(block[2]) or not _words(default[2]):
                continue
            in_link = bool(_LINK_OPENING.search(spliced[: default.start()].rstrip()))
            found.append(Finding(child, source[: block.start()].count("\n") + 1,
                                 _emptied_message(block[1], _words(default[2]), parent_file, locale, in_link),
                                 error=in_link))
    return found


def _words(body: str) -> str:
    return " ".join(_JINJA_COMMENT.sub("", body).split())


def _emptied_message(block: str, words: str, parent_file: str, locale: str | None, in_link: bool) -> str:
    shown = words if len(words) <= WORDS_SHOWN else words[: WORDS_SHOWN - 3] + "..."
    who = f"{locale!r} contacts" if locale else "contacts"
    harm = "a link with no text, which no one can see or click" if in_link else "no words there"
    return (f"block {block!r} is empty: emails to {who} get {harm} ({parent_file} has {shown!r}); write the "
            f"words, or leave the block out to get {parent_file}'s")
