"""Signup forms as files (`forms/*.yaml`) -> `Form` objects, with every problem as `path:line: message`.

Read with line numbers like sequence files (nurture.content.yaml_reader), and kept by a `FormRegistry` that
re-reads a file when it changes. A file with errors never replaces the version that is running. The model
is in nurture.content.form_model; the format is documented in docs/forms.md.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from nurture.content.form_model import (  # noqa: F401
    ATTRIBUTION_KEYS,
    BUILTIN_FIELDS,
    CUSTOM_TYPES,
    DEFAULT_CONFIRM_SEQUENCE,
    DEFAULT_LABELS,
    FIELD_KEYS,
    FIELD_NAME,
    FORM_KEYS,
    HONEYPOT,
    MAGNET_KEYS,
    META_FIELDS,
    RESERVED_FIELDS,
    STARTED,
    FieldSpec,
    Form,
    LeadMagnet,
    normalise_origin,
)
from nurture.content.yaml_reader import NodeReader, Problem, compose
from nurture.content.yaml_reader import line as _line
from nurture.content.yaml_reader import value as _value

# The model is re-exported: callers import forms and their parts from here.
from nurture.rules.locales import InvalidLocale, normalise_locale
from nurture.rules.sequence import Sequence

log = logging.getLogger(__name__)


def _absolute_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


class _FormReader(NodeReader):
    """Collects problems for one form file while turning its node tree into a Form."""

    def items(self, fields: dict[str, Node], key: str) -> list[tuple[Node, str]]:
        """A list of texts, each with its node (for its line)."""
        node = fields.get(key)
        if node is None:
            return []
        if not isinstance(node, SequenceNode) or not all(isinstance(n, ScalarNode) for n in node.value):
            self.problem(node, f"{key!r} must be a list of texts")
            return []
        return [(n, str(_value(n)).strip()) for n in node.value if str(_value(n)).strip()]

    def strings(self, fields: dict[str, Node], key: str) -> tuple[str, ...]:
        return tuple(text for _, text in self.items(fields, key))

    def origins(self, fields: dict[str, Node]) -> tuple[str, ...]:
        result = []
        for node, raw in self.items(fields, "allowed_origins"):
            origin = normalise_origin(raw)
            if origin is None:
                self.problem(node, f"allowed origin {raw!r} must be like https://www.example.com (scheme and "
                                   "host, no path), or *")
            else:
                result.append(origin)
        return tuple(result)

    def number(self, fields: dict[str, Node], key: str, default: int) -> int:
        node = fields.get(key)
        if node is None:
            return default
        value = _value(node)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            self.problem(node, f"{key!r} must be a positive whole number")
            return default
        return value

    def field_spec(self, node: Node, seen: dict[str, int]) -> FieldSpec | None:
        fields = self.mapping(node, FIELD_KEYS, "field")
        if not fields:
            return None
        name = self.text(fields, "name", node, "field")
        if name and not FIELD_NAME.match(name):
            self.problem(fields["name"], f"field name {name!r} must use lowercase letters, digits and _")
        elif name in RESERVED_FIELDS:
            self.problem(fields["name"], f"field name {name!r} is reserved (nurture uses it itself)")
        elif name in seen:
            self.problem(fields["name"], f"duplicate field {name!r} (first on line {seen[name]})")
        if name:
            seen.setdefault(name, _line(fields["name"]))
        kind = self.field_type(fields, name)
        choices = self.strings(fields, "choices")
        if kind == "choice" and not choices:
            self.problem(node, f"field {name!r}: a choice field needs a list of choices")
        if name == "locale":
            choices = self.locales(fields.get("choices") or node, choices)
        return FieldSpec(
            name=name, label=self.text(fields, "label", node, "field", required=False)
            or DEFAULT_LABELS.get(name, name.replace("_", " ").capitalize()),
            type=kind, required=name == "email" or self.flag(fields, "required"), choices=choices,
            max_length=self.number(fields, "max_length", 200),
            placeholder=self.text(fields, "placeholder", node, "field", required=False),
        )

    def locales(self, node: Node, choices: tuple[str, ...]) -> tuple[str, ...]:
        """The `locale` field's choices are language tags (fr, pt-BR), kept normalised (fr, pt_BR)."""
        tags = []
        for choice in choices:
            try:
                tags.append(normalise_locale(choice))
            except InvalidLocale as exc:
                self.problem(node, f"field 'locale': {exc}")
        return tuple(tags)

    def field_type(self, fields: dict[str, Node], name: str) -> str:
        if name in BUILTIN_FIELDS:
            if "type" in fields:
                self.problem(fields["type"], f"field {name!r} has a fixed type; remove 'type'")
            return BUILTIN_FIELDS[name]
        if "type" not in fields:
            return "text"
        return self.choice(fields, "type", fields["type"], "field", CUSTOM_TYPES) or "text"

    def field_list(self, fields: dict[str, Node], root: Node) -> tuple[FieldSpec, ...]:
        node = fields.get("fields")
        if node is None:
            self.problem(root, "form is missing required key 'fields' (at least: - name: email)")
            return ()
        if not isinstance(node, SequenceNode) or not node.value:
            self.problem(node, "'fields' must be a non-empty list of fields")
            return ()
        seen: dict[str, int] = {}
        specs = tuple(s for s in (self.field_spec(n, seen) for n in node.value) if s is not None)
        if "email" not in seen:
            self.problem(node, "'fields' must include the email field (- name: email)")
        return specs

    def lead_magnet(self, fields: dict[str, Node]) -> LeadMagnet | None:
        node = fields.get("lead_magnet")
        if node is None:
            return None
        keys = self.mapping(node, MAGNET_KEYS, "lead_magnet")
        url = self.text(keys, "url", node, "lead_magnet", required=False) or None
        file = self.text(keys, "file", node, "lead_magnet", required=False) or None
        if (url is None) == (file is None):
            self.problem(node, "lead_magnet needs exactly one of 'url' or 'file'")
        if url and not _absolute_url(url):
            self.problem(keys["url"], f"lead_magnet url {url!r} must be an absolute http(s) URL")
        if file and (Path(file).is_absolute() or ".." in Path(file).parts):
            self.problem(keys["file"], f"lead_magnet file {file!r} must be a path inside the forms folder")
        return LeadMagnet(title=self.text(keys, "title", node, "lead_magnet"), url=url, file=file)

    def redirect(self, fields: dict[str, Node], root: Node) -> str | None:
        value = self.text(fields, "redirect", root, "form", required=False) or None
        if value and not _absolute_url(value):
            self.problem(fields["redirect"], f"redirect {value!r} must be an absolute http(s) URL")
        return value

    def opt_in(self, fields: dict[str, Node]) -> bool:
        return self.flag(fields, "double_opt_in") if "double_opt_in" in fields else True

    def form(self, root: Node, version: str) -> Form | None:
        fields = self.mapping(root, FORM_KEYS, "form")
        if not fields:
            return None
        return Form(
            id=self.identifier(fields, "id", root, "form"),
            name=self.text(fields, "name", root, "form"),
            sequence=self.identifier(fields, "sequence", root, "form"),
            consent_text=self.text(fields, "consent_text", root, "form"),
            fields=self.field_list(fields, root),
            title=self.text(fields, "title", root, "form", required=False),
            intro=self.text(fields, "intro", root, "form", required=False),
            confirm_sequence=self.text(fields, "confirm_sequence", root, "form", required=False)
            or DEFAULT_CONFIRM_SEQUENCE,
            tags=self.strings(fields, "tags"),
            double_opt_in=self.opt_in(fields),
            consent_checkbox=self.flag(fields, "consent_checkbox"),
            allowed_origins=self.origins(fields),
            redirect=self.redirect(fields, root),
            submit_label=self.text(fields, "submit_label", root, "form", required=False) or "Sign up",
            success_message=self.text(fields, "success_message", root, "form", required=False),
            lead_magnet=self.lead_magnet(fields),
            phone_region=(self.text(fields, "phone_region", root, "form", required=False) or "US").upper(),
            sms_consent_text=self.sms_consent(fields),
            path=self.path, version=version, key_lines=_key_lines(root),
        )

    def sms_consent(self, fields: dict[str, Node]) -> str:
        text = self.text(fields, "sms_consent_text", fields.get("sms_consent_text"), "form", required=False)
        listed = fields.get("fields")
        has_phone = isinstance(listed, SequenceNode) and any(
            isinstance(item, MappingNode) and any(k.value == "name" and v.value == "phone" for k, v in item.value)
            for item in listed.value)
        if text and not has_phone:
            self.problem(fields["sms_consent_text"], "sms_consent_text needs a phone field to text")
        return text


def _key_lines(root: MappingNode) -> dict[str, int]:
    """The line of each top-level key (not of its value, which for a block starts on the next line)."""
    return {key.value: _line(key) for key, _ in root.value if isinstance(key, ScalarNode)}


def parse_form(source: str, path: str) -> tuple[Form | None, list[Problem]]:
    """Parse one form file's text. Returns the form only when it has no problems."""
    root, problems = compose(source, path)
    if root is None:
        return None, problems or [Problem(path, 1, "file is empty")]
    if not isinstance(root, MappingNode):
        return None, [Problem(path, _line(root), "a form file must be a mapping of keys to values")]
    reader = _FormReader(path)
    form = reader.form(root, hashlib.sha256(source.encode()).hexdigest()[:12])
    problems = sorted(reader.problems)
    return (None if problems else form), problems


def form_files(directory: Path) -> list[Path]:
    """The form files directly in `directory`, in name order."""
    with os.scandir(directory) as entries:
        return sorted(Path(e.path) for e in entries if _is_form_file(e.name))


def _is_form_file(name: str) -> bool:
    return os.path.splitext(name)[1] in (".yaml", ".yml")  # as pathlib's suffix: ".yaml" alone is not one


def _stamped_form_files(directory: Path) -> dict[str, tuple[int, int]]:
    """Each form file directly in `directory` (none when it is missing) with its (mtime, size), for the
    registry. os-level calls, not pathlib's: the registry is asked at every sign-up, and pathlib's objects
    and its own is_dir() stat were 1.6% of a sign-up's CPU in the web worker (bench/README.md, P4)."""
    try:
        with os.scandir(directory) as entries:
            found = [entry.path for entry in entries if _is_form_file(entry.name)]
    except (FileNotFoundError, NotADirectoryError):
        return {}
    stamps = {}
    for path in found:
        try:
            stamps[path] = _stamp(path)
        except FileNotFoundError:  # removed since the scandir
            continue
    return stamps


def _stamp(path: str) -> tuple[int, int]:
    stat = os.stat(path)
    return stat.st_mtime_ns, stat.st_size


def load_forms(directory: Path, display_root: Path | None = None) -> tuple[dict[str, Form], list[Problem]]:
    """Every form in `directory`, keyed by id, and every problem found (including duplicate ids)."""
    forms: dict[str, Form] = {}
    problems: list[Problem] = []
    for file in form_files(directory) if directory.is_dir() else []:
        shown = _display(file, display_root)
        form, found = parse_form(file.read_text(encoding="utf-8"), shown)
        problems += found
        if form is None:
            continue
        if form.id in forms:
            problems.append(Problem(shown, form.line_of("id"), f"form id {form.id!r} is already used by "
                                                               f"{forms[form.id].path}"))
            continue
        forms[form.id] = form
    return forms, problems


def _display(file: Path, root: Path | None) -> str:
    try:
        return str(file.resolve().relative_to(root.resolve())) if root else str(file)
    except ValueError:
        return str(file)


def cross_check(form: Form, sequences: dict[str, Sequence], forms_dir: Path, templates_dir: Path) -> list[Problem]:
    """What one valid form file refers to: its sequences, its lead magnet file, and that the welcome email
    actually delivers the lead magnet (a form promising a guide that never arrives is worse than none)."""
    problems = []

    def add(key: str, message: str) -> None:
        problems.append(Problem(form.path, form.line_of(key), message))

    sequence = sequences.get(form.sequence)
    if sequence is None:
        add("sequence", f"unknown sequence {form.sequence!r} (known: {', '.join(sorted(sequences)) or 'none'})")
    elif sequence.transactional:
        add("sequence", f"sequence {form.sequence!r} is transactional; a form's sequence is its nurture sequence")
    confirm = sequences.get(form.confirm_sequence)
    if form.double_opt_in and confirm is None:
        add("confirm_sequence" if "confirm_sequence" in form.key_lines else "id",
            f"confirmation sequence {form.confirm_sequence!r} not found (double opt-in sends it)")
    elif form.double_opt_in and not confirm.transactional:
        add("confirm_sequence", f"confirmation sequence {form.confirm_sequence!r} must be transactional: true")
    magnet = form.lead_magnet
    if magnet and magnet.file and not (forms_dir / magnet.file).is_file():
        add("lead_magnet", f"lead_magnet file {magnet.file!r} not found in {forms_dir.name}/")
    if magnet and sequence is not None and not _first_email_shows_magnet(sequence, templates_dir):
        add("lead_magnet", f"the first email of sequence {sequence.id!r} never shows the lead magnet "
                           "(use contact.fields.lead_magnet in its template; see docs/forms.md)")
    return problems


def _first_email_shows_magnet(sequence: Sequence, templates_dir: Path) -> bool:
    first = next((s for s in sequence.steps if s.channel == "email" and s.template), None)
    if first is None:
        return False
    sources = [templates_dir / f"{first.template}{suffix}" for suffix in (".html", ".txt")]
    return all(p.is_file() and "lead_magnet" in p.read_text(encoding="utf-8") for p in sources)


# A folder whose modification time was this old when it was listed: any file added, removed or renamed in
# it since then shows as a newer time (the kernel stamps a change with a clock of a few milliseconds' grain;
# FAT's is two seconds). A folder changed more recently than this is listed again at every lookup.
SETTLED_NS = 5_000_000_000


class FormRegistry:
    """The forms a running process serves, re-read when their files change. Every lookup re-checks, so an
    edit is live at once: a stat of the folder and of each form file, and a new listing of the folder when
    its modification time moved (a file came, went or was renamed; editors often save by renaming).

    Every sign-up asks, in a web worker whose threads give each other the GIL at each system call: listing
    the folder every time was six system calls a sign-up, this is two for one form file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._by_file: dict[str, Form] = {}
        self._stamps: dict[str, tuple[int, int]] = {}
        self._by_id: dict[str, Form] = {}
        self._listed: tuple[int, int] | None = None  # the folder's (inode, mtime) when listed, if settled then
        # One refresh at a time: a web worker's threads share the registry, and a thread that found a file
        # stamped while another was still parsing it answered 404 for a form that exists.
        self._lock = threading.Lock()

    def refresh(self) -> list[Problem]:
        """Re-read changed files. Returns the problems of files whose new version was refused."""
        with self._lock:
            stamps = self._stamps_now()
            if stamps == self._stamps:  # nothing changed: the common case
                return []
            return self._refresh(stamps)

    def _stamps_now(self) -> dict[str, tuple[int, int]]:
        """Each form file's (mtime, size) now: the files known, when the folder has not changed since it was
        listed at a moment it had settled (see SETTLED_NS); else from a new listing."""
        try:
            stat = os.stat(self.directory)
        except (FileNotFoundError, NotADirectoryError):
            self._listed = None
            return {}
        folder = (stat.st_ino, stat.st_mtime_ns)
        if folder == self._listed:
            try:
                return {path: _stamp(path) for path in self._stamps}
            except FileNotFoundError:  # removed since the folder's stat: list it again
                pass
        settled = time.time_ns() - stat.st_mtime_ns > SETTLED_NS  # read before listing: see SETTLED_NS
        stamps = _stamped_form_files(self.directory)
        self._listed = folder if settled else None
        return stamps

    def _refresh(self, stamps: dict[str, tuple[int, int]]) -> list[Problem]:
        problems: list[Problem] = []
        for file in sorted(stamps):
            if self._stamps.get(file) == stamps[file]:
                continue
            self._stamps[file] = stamps[file]  # a refused version is not read again until it changes
            form, found = parse_form(Path(file).read_text(encoding="utf-8"), file)
            if form is None:
                problems += found
                log.error("%s has errors; %s", file, "keeping the running version" if file in self._by_file
                          else "not loaded")
                continue
            self._by_file[file] = form
        for gone in set(self._stamps) - set(stamps):
            self._by_file.pop(gone, None)
            del self._stamps[gone]
        self._by_id = {form.id: form for form in self._by_file.values()}
        return problems

    def get(self, form_id: str) -> Form | None:
        self.refresh()
        return self._by_id.get(form_id)

    def all(self) -> list[Form]:
        self.refresh()
        return sorted(self._by_id.values(), key=lambda f: f.id)
