"""Templates -> message text. One Jinja2 environment per process; each email template is flattened into
its layout, CSS-inlined and compiled once per version of its source files, never per message.

Why the flattening: premailer needs the whole document (the layout's <style> and the step's markup) to
inline CSS, and it mangles Jinja source (`href="{{ url }}"` -> `{{%20url%20}}`, `a > b` -> `a &gt; b`).
So the child's blocks are spliced into the layout as text, every Jinja tag is swapped for an inert
placeholder, premailer runs once, and the tags are put back. premailer costs ~2.7 ms a call; paid per
message it would be most of the send path's CPU (see bench/dispatch.py).
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
from premailer import Premailer

from nurture.content.qp import Blocks, Runs, static_blocks
from nurture.rules import experiments
from nurture.rules.locales import localized_name
from nurture.rules.sequence import Sequence, Step

_EXTENDS = re.compile(r"{%-?\s*extends\s+[\"']([^\"']+)[\"']\s*-?%}")
_BLOCK = re.compile(r"{%-?\s*block\s+(\w+)\s*-?%}(.*?){%-?\s*endblock(?:\s+\1)?\s*-?%}", re.S)
_JINJA_TAG = re.compile(r"{{.*?}}|{%.*?%}|{#.*?#}", re.S)
_PLACEHOLDER = re.compile(r"JINJA(\d{5})TAG")
FRESH_FOR = timedelta(seconds=1)  # how long the send path trusts a template's files after a look (email())


class RenderError(Exception):
    """A template could not be rendered for this contact (missing data, syntax error, missing file)."""


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str
    # The template's unchanging runs of lines, quoted-printable already (nurture.content.qp): building the
    # message encodes only what this one changed.
    html_blocks: Blocks | Runs = field(default=(), repr=False, compare=False)
    text_blocks: Blocks | Runs = field(default=(), repr=False, compare=False)
    locale: str | None = None  # whose variant of the template was used; None: the default files


@dataclass(frozen=True)
class _Compiled:
    uptodate: tuple[Callable[[], bool], ...]
    version: str
    html: jinja2.Template
    text: jinja2.Template
    html_blocks: Runs
    text_blocks: Runs
    locale: str | None = None  # the locale whose `<template>.<locale>.html` was found, if any
    # The environment's globals, flattened once: what Template.render merges under every context (see
    # _render_in). nurture never adds globals to the catalog's environment after it is made.
    globals: dict[str, Any] = field(default_factory=dict)


def make_environment(templates_dir: Path) -> jinja2.Environment:
    """The process's Jinja2 environment. StrictUndefined: a typo fails in `nurture check`, not in an inbox.
    Autoescape for .html files and for strings (the inlined HTML is compiled from a string); text parts
    and subjects are compiled with autoescape off."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=True),
        keep_trailing_newline=True,
    )


def make_text_environment(templates_dir: Path) -> jinja2.Environment:
    """For text-only templates (SMS): plain Jinja, no escaping, StrictUndefined. Jinja's own cache compiles
    each template once and again only when its file changes (auto_reload)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
    )


class ExtendsLoop(jinja2.TemplateError):
    """A template that extends itself, directly or through others: most often a language's layout that
    extends the default name (`_layout.fr.html` saying `{% extends "_layout.html" %}`, which for a French
    contact is `_layout.fr.html` again)."""

    def __init__(self, message: str, name: str, chain: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.name = name  # the name asked for a second time
        self.chain = chain  # the names extended on the way to it, the first one flattened first


def flatten(name: str, load: Callable[[str], str]) -> str:
    """`name`'s source with `{% extends %}` resolved textually: the child's blocks replace the parent's.

    Only what nurture's layouts use: one parent per template and blocks that do not nest. A parent may
    extend another (a language's layout holds the footer's words and extends the file with the look): the
    most derived file's block wins, as in Jinja. `nurture check` reports templates that need more (nested
    blocks, `super()`).
    """
    source, extends = _spliced(name, load, ())
    return _BLOCK.sub(lambda m: m[2], source) if extends else source  # the blocks' tags gone, their text kept


def _spliced(name: str, load: Callable[[str], str], extending: tuple[str, ...]) -> tuple[str, bool]:
    """`name`'s source with its parents' resolved, every block still between its tags (a child further down
    may replace it), and whether it extends one."""
    if name in extending:
        raise ExtendsLoop(f"{' extends '.join((*extending, name))}: a template cannot extend itself", name,
                          extending)
    source = load(name)
    match = _EXTENDS.search(source)
    if not match:
        return source, False
    parent, _ = _spliced(match[1], load, (*extending, name))
    blocks = {m[1]: m[0] for m in _BLOCK.finditer(source)}
    return _BLOCK.sub(lambda m: blocks.get(m[1], m[0]), parent), True


def inline_css(html_source: str) -> str:
    """premailer over Jinja source, with every Jinja tag hidden behind a placeholder it cannot mangle."""
    tags: list[str] = []

    def hide(match: re.Match[str]) -> str:
        tags.append(match[0])
        return f"JINJA{len(tags) - 1:05d}TAG"

    hidden = _JINJA_TAG.sub(hide, html_source)
    inlined = Premailer(
        hidden,
        keep_style_tags=True,  # media queries for phones cannot be inlined; keep them in <head>
        remove_classes=False,
        strip_important=False,
        disable_validation=True,
        allow_network=False,
        cssutils_logging_level=logging.CRITICAL,
    ).transform()
    return _PLACEHOLDER.sub(lambda m: tags[int(m[1])], inlined)


def email_templates(sequence: Sequence) -> list[str]:
    """The email templates `sequence` sends, each once: an email step's own, or each of its offers'.
    Wait steps and steps with offers have no template of their own, and a text step's is not an email."""
    names: list[str] = []
    for step in sequence.steps:
        if step.channel == "email":
            names += [offer.template for offer in step.offers]
            names += [form.template for form in sent_forms(step) if form.template]
    return list(dict.fromkeys(names))


def sent_forms(step: Step) -> list[Step]:
    """The step as each contact may get it: once, or once per variant of its experiment (the variant's
    template and subject, and its line in the file for problems)."""
    if not step.variants:
        return [step]
    forms = []
    for variant in step.variants:
        lines = {**step.key_lines, **{key: variant.line for key in ("template", "subject")
                                      if getattr(variant, key)}}
        forms.append(replace(experiments.with_variant(step, variant), key_lines=lines))
    return forms


def _exists(env: jinja2.Environment, name: str) -> bool:
    """Whether `name` is a template of `env`, without reading it: one stat per folder of the loader."""
    loader = env.loader
    if isinstance(loader, jinja2.FileSystemLoader):
        return any((Path(folder) / name).is_file() for folder in loader.searchpath)
    try:
        assert loader is not None
        loader.get_source(env, name)
        return True
    except jinja2.TemplateNotFound:
        return False


def _mtime(folder: Path) -> int | None:
    try:
        return folder.stat().st_mtime_ns
    except OSError:
        return None  # not there (yet): created later, it changes this


class TemplateCatalog:
    """Compiled email templates, rebuilt only when one of their source files changes.

    Per locale: every file a template is made of (the template, its layout, the text part) is looked for
    as `<name>.<locale>.<ext>` along the contact's lookup chain (nurture.rules.locales.lookup_chain), then
    as the default `<name>.<ext>`. Each (template, chain) is compiled once per version of its files; a
    localized file added later is noticed (the missing ones are part of the up-to-date check: a stat each).
    """

    def __init__(self, env: jinja2.Environment, text_env: jinja2.Environment | None = None) -> None:
        self.env = env
        self.text_env = text_env
        self._compiled: dict[tuple[str, tuple[str, ...]], _Compiled] = {}
        self._checked: dict[tuple[str, tuple[str, ...]], datetime | None] = {}  # when found up to date
        self._subjects: dict[str, jinja2.Template] = {}
        self._lock = threading.Lock()

    def _source(self, name: str, uptodate: list[Callable[[], bool]]) -> str:
        assert self.env.loader is not None
        source, _filename, check = self.env.loader.get_source(self.env, name)
        if check is not None:
            uptodate.append(check)
        return source

    def _localized_source(self, name: str, chain: tuple[str, ...], uptodate: list[Callable[[], bool]],
                          used: dict[str, str], missing: set[str]) -> str:
        for locale in chain:
            candidate = localized_name(name, locale)
            if _exists(self.env, candidate):
                used[name] = locale
                return self._source(candidate, uptodate)
            missing.add(candidate)
        return self._source(name, uptodate)

    def _still_missing(self, missing: set[str]) -> Callable[[], bool]:
        """A check that the variants looked for and not found are still not there (one added later means
        compiling again). By the mtime of the folders they would be in: a file added changes its folder's,
        and a folder is one stat however many variants (pt_BR, pt; .html, .txt, the layout's) it would hold.
        Measured: a contact whose language has no templates renders at the default's cost, not 4x it."""
        loader = self.env.loader
        if not isinstance(loader, jinja2.FileSystemLoader):
            return lambda: not any(_exists(self.env, name) for name in missing)
        folders = {Path(root) / name for root in loader.searchpath for name in missing}
        stamps = {folder.parent: _mtime(folder.parent) for folder in folders}
        return lambda: all(_mtime(folder) == stamp for folder, stamp in stamps.items())

    def _compile(self, template: str, chain: tuple[str, ...] = ()) -> _Compiled:
        uptodate: list[Callable[[], bool]] = []
        used: dict[str, str] = {}
        missing: set[str] = set()

        def load(name: str) -> str:
            return self._localized_source(name, chain, uptodate, used, missing)

        html_source = inline_css(flatten(f"{template}.html", load))
        text_source = flatten(f"{template}.txt", load)
        version = hashlib.sha256((html_source + "\0" + text_source).encode()).hexdigest()[:12]
        if missing:
            uptodate.append(self._still_missing(missing))
        return _Compiled(
            uptodate=tuple(uptodate),
            version=version,
            html=self.env.from_string(html_source),
            text=self.env.from_string("{% autoescape false %}" + text_source + "{% endautoescape %}"),
            html_blocks=Runs(static_blocks(html_source)),
            text_blocks=Runs(static_blocks(text_source)),
            locale=used.get(f"{template}.html"),
            globals=dict(self.env.globals),
        )

    def email(self, template: str, chain: tuple[str, ...] = (), now: datetime | None = None) -> _Compiled:
        """`template` compiled for a contact whose locale lookup chain is `chain` (() for the default).

        `now` (the send path's clock reading for the message) lets the files' up-to-date check, a stat of
        each (~5 µs a message), be made once a second rather than for every message: a template edited
        while a worker runs is used from the first message composed a second or more after the catalog
        last looked. The same reading twice (a frozen test clock, a resend) looks again, and so does a
        call without `now` (previews, `nurture check`)."""
        key = (template, chain)
        compiled = self._compiled.get(key)
        if compiled is not None and self._recent(key, now):
            return compiled
        if compiled is not None and all(check() for check in compiled.uptodate):
            self._checked[key] = now
            return compiled
        with self._lock:
            try:
                compiled = self._compile(template, chain)
            except jinja2.TemplateNotFound as exc:
                raise RenderError(f"template {exc.name!r} not found") from exc
            except jinja2.TemplateSyntaxError as exc:
                raise RenderError(f"{exc.filename or template}:{exc.lineno}: {exc.message}") from exc
            except ExtendsLoop as exc:
                raise RenderError(str(exc)) from exc
            self._compiled[key] = compiled
            self._checked[key] = now
            return compiled

    def _recent(self, key: tuple[str, tuple[str, ...]], now: datetime | None) -> bool:
        """Whether `key`'s files were found up to date less than a second before `now`, and not at it."""
        checked = self._checked.get(key)
        return now is not None and checked is not None and checked < now < checked + FRESH_FOR

    def subject(self, source: str) -> jinja2.Template | str:
        """The compiled subject line; a subject without any Jinja syntax is itself (a render saved)."""
        if "{" not in source:
            return source
        compiled = self._subjects.get(source)
        if compiled is None:
            compiled = self.env.from_string("{% autoescape false %}" + source + "{% endautoescape %}")
            self._subjects[source] = compiled
        return compiled

    def render_email(self, template: str, subject: str, context: dict[str, Any],
                     chain: tuple[str, ...] = (), now: datetime | None = None) -> RenderedEmail:
        """Render one email for one contact (in the language its `chain` finds files for; the caller picks
        the subject of that language). Raises RenderError with a reason a person can act on. `now`: see
        `email`."""
        compiled = self.email(template, chain, now)
        try:
            # Template.render would build this dict three times (subject, HTML, text), each time flattening
            # the globals' ChainMap in Python; the three share one environment, so it is built once.
            variables = {**compiled.globals, **context}
            return RenderedEmail(
                subject=" ".join(_render_in(self.subject(subject), variables, compiled.globals).split()),
                html=_render_in(compiled.html, variables, compiled.globals),
                text=_render_in(compiled.text, variables, compiled.globals),
                html_blocks=compiled.html_blocks,
                text_blocks=compiled.text_blocks,
                locale=compiled.locale,
            )
        except jinja2.UndefinedError as exc:
            raise RenderError(f"{template}: {exc.message}") from exc
        except jinja2.TemplateError as exc:
            raise RenderError(f"{template}: {exc}") from exc
        except Exception as exc:  # a filter or field can raise anything; it must fail this message only
            raise RenderError(f"{template}: {type(exc).__name__}: {exc}") from exc

    def text_variant(self, name: str, chain: tuple[str, ...] = ()) -> tuple[str, str | None]:
        """The file a text template `name` is read from for `chain`, and its locale (None: the default)."""
        if self.text_env is not None:
            for locale in chain:
                candidate = localized_name(f"{name}.txt", locale)
                if _exists(self.text_env, candidate):
                    return candidate, locale
        return f"{name}.txt", None

    def render_text(self, name: str, context: dict[str, Any], chain: tuple[str, ...] = ()) -> str:
        """Render the text-only template `name` (`<name>.txt`, or `<name>.<locale>.txt` along `chain`, under
        the text templates folder), stripped of leading and trailing whitespace (every character of a text
        is paid for). Raises RenderError."""
        if self.text_env is None:
            raise RenderError(f"{name}: no folder configured for text templates")
        try:
            return self.text_env.get_template(self.text_variant(name, chain)[0]).render(context).strip()
        except jinja2.TemplateNotFound as exc:
            raise RenderError(f"template {exc.name!r} not found") from exc
        except jinja2.TemplateSyntaxError as exc:
            raise RenderError(f"{exc.filename or name}:{exc.lineno}: {exc.message}") from exc
        except jinja2.UndefinedError as exc:
            raise RenderError(f"{name}: {exc.message}") from exc
        except Exception as exc:  # a filter or field can raise anything; it must fail this message only
            raise RenderError(f"{name}: {type(exc).__name__}: {exc}") from exc


def _render(template: jinja2.Template | str, context: dict[str, Any]) -> str:
    return template if isinstance(template, str) else template.render(context)


def _render_in(template: jinja2.Template | str, variables: dict[str, Any], globals_: dict[str, Any]) -> str:
    """`template.render(context)` where `variables` is already the context over the environment's
    globals (`globals_`, flattened): the same Context Jinja makes, without copying them again. Rendering
    reads the variables and never writes them (a `{% set %}` goes to the Context's own vars)."""
    if isinstance(template, str):
        return template
    env = template.environment
    context = env.context_class(env, variables, template.name, template.blocks, globals=globals_)
    try:
        return env.concat(template.root_render_func(context))  # type: ignore[attr-defined]
    except Exception:
        env.handle_exception()  # as Template.render: the same exception, its traceback in template lines
        raise  # (not reached: handle_exception raises)
