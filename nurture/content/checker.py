"""`nurture check`: every problem in sequence files and templates, in one run, as `path:line: message`."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import jinja2
import jinja2.meta
from jinja2 import nodes

from nurture.config import Settings
from nurture.content.forms import cross_check, load_forms
from nurture.content.layout_check import Read, chain_failure, chain_of, layout_findings, loader, loop_message, resolved
from nurture.content.lifecycle_file import LIFECYCLE_FILE, parse_lifecycle
from nurture.content.loader import Problem, load_sequences, parse_sequence
from nurture.content.rendering import (
    _BLOCK,
    _EXTENDS,
    _JINJA_TAG,
    ExtendsLoop,
    email_templates,
    flatten,
    make_environment,
    make_text_environment,
    sent_forms,
)
from nurture.content.template_locales import misnamed, template_locales
from nurture.content.views import BrandView, ContactView, SequenceView, StepView
from nurture.rules.lifecycle import Lifecycle
from nurture.rules.locales import localized_name
from nurture.rules.sequence import Sequence, Step
from nurture.rules.sms import segments, ucs2_characters, with_opt_out_notice

# What a template may use, and the attributes of each object (a typo there is an error, not a blank).
CONTEXT_OBJECTS: dict[str, type] = {
    "contact": ContactView,
    "brand": BrandView,
    "sequence": SequenceView,
    "step": StepView,
}
CONTEXT_NAMES = set(CONTEXT_OBJECTS) | {"postal_address", "unsubscribe_url", "preferences_url", "confirm_url",
                                        "referral_url", "rating_links"}
REQUIRED_IN_EMAIL = {
    "unsubscribe_url": "has no unsubscribe link ({{ unsubscribe_url }}); every marketing email needs one",
    "postal_address": "has no postal address ({{ postal_address }}); CAN-SPAM requires one in every email",
}
TEMPLATE_SUFFIXES = (".html", ".txt")
_SOURCE_CHECKS: dict[tuple[str, int, int, str, bool], tuple[list[Problem], list[str]]] = {}


@dataclass(frozen=True)
class SmsCheck:
    """Where text templates live and what `nurture check` warns about in them."""

    templates_dir: Path
    max_segments: int = 2
    brand: str = "Example Business"  # the settings' BRAND_NAME, when `nurture check` builds it
    base_url: str = "http://localhost:8000"


@dataclass(frozen=True)
class CheckResult:
    problems: list[Problem]
    sequences: int
    steps: int
    templates: int
    forms: int = 0
    segments: int = 0
    broadcasts: int = 0
    warnings: list[Problem] = dataclasses.field(default_factory=list)  # printed; they do not fail the check

    @property
    def summary(self) -> str:
        forms = f"{self.forms} form{'s' if self.forms != 1 else ''}, " if self.forms else ""
        forms += f"{self.segments} segment{'s' if self.segments != 1 else ''}, " if self.segments else ""
        forms += f"{self.broadcasts} broadcast{'s' if self.broadcasts != 1 else ''}, " if self.broadcasts else ""
        return (f"ok: {self.sequences} sequences, {self.steps} steps, {forms}{self.templates} templates checked, "
                f"no problems")


def shown_path(path: Path, root: Path) -> str:
    """`path` as problems show it: relative to the project folder when inside it."""
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def _names_used(tree: nodes.Template) -> Iterator[tuple[str, int]]:
    for node in tree.find_all(nodes.Name):
        if node.ctx == "load":
            yield node.name, node.lineno


def _bad_attributes(tree: nodes.Template) -> Iterator[tuple[str, int]]:
    for node in tree.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name) and node.node.name in CONTEXT_OBJECTS:
            allowed = {f.name for f in dataclasses.fields(CONTEXT_OBJECTS[node.node.name])}
            if node.attr not in allowed:
                yield f"{node.node.name}.{node.attr}", node.lineno


class _Checker:
    def __init__(self, sequences_dir: Path, templates_dir: Path, root: Path) -> None:
        self.sequences_dir = sequences_dir
        self.templates_dir = templates_dir
        self.root = root
        self.env = make_environment(templates_dir)
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self.locales = sorted(template_locales(templates_dir))  # the languages the email templates come in

    def add(self, path: Path | str, line: int, message: str) -> None:
        shown = shown_path(path, self.root) if isinstance(path, Path) else path
        self.problems.append(Problem(shown, line, message))

    def add_all(self, problems: list[Problem]) -> None:
        """Problems found by the loader, their paths shown like every other (relative to the root)."""
        self.problems += [Problem(shown_path(Path(p.path), self.root) if Path(p.path).is_absolute() else p.path,
                                  p.line, p.message) for p in problems]

    def warn(self, path: Path, line: int, message: str) -> None:
        self.warnings.append(Problem(shown_path(path, self.root), line, f"warning: {message}"))

    def check_source(self, path: Path, source: str) -> nodes.Template | None:
        """Syntax and names of one template source; returns its AST when it parses."""
        try:
            tree = self.env.parse(source)
        except jinja2.TemplateSyntaxError as exc:
            self.add(path, exc.lineno, f"template syntax error: {exc.message}")
            return None
        declared = jinja2.meta.find_undeclared_variables(tree)
        for name, line in _names_used(tree):
            if name in declared and name not in CONTEXT_NAMES:
                known = ", ".join(sorted(CONTEXT_NAMES))
                self.add(path, line, f"undefined template variable {name!r} (known: {known})")
        for dotted, line in _bad_attributes(tree):
            self.add(path, line, f"undefined template variable {dotted!r}")
        if source.count("{% block") + source.count("{%- block") > 0 and "super()" in source:
            self.add(path, 1, "super() is not supported in email templates (layouts are flattened once)")
        return tree

    def check_template_files(self) -> int:
        files = sorted(p for p in self.templates_dir.rglob("*") if p.suffix in TEMPLATE_SUFFIXES)
        for file in files:
            self.check_source(file, file.read_text(encoding="utf-8"))
            self.check_blocks(file)
        return len(files)

    def check_blocks(self, file: Path) -> None:
        source = file.read_text(encoding="utf-8")
        if _EXTENDS.search(source):
            for _name, body in _BLOCK.findall(source):
                if "{% block" in body or "{%- block" in body:
                    self.add(file, 1, "nested blocks are not supported in email templates")

    def check_sequence(self, sequence: Sequence, file: Path, sms: SmsCheck, stages: Iterable[str]) -> None:
        """One sequence: the templates each step names (and the files those extend), and its stages."""
        texts = [variant for step in sequence.steps if step.channel == "sms" for variant in sent_forms(step)]
        for index, step in enumerate(sequence.steps):
            if step.channel == "email" and (step.template or step.offers or step.variants):
                self.check_email_step(sequence, file, index)
        for step in texts:
            text = sms.templates_dir / f"{step.template}.txt"
            if step.template and not text.is_file():
                self.add(file, step.line_of("template"), f"step {step.id!r}: unknown text template "
                                                         f"{step.template!r} (no {shown_path(text, self.root)})")
        self.check_sources_used(self.templates_dir, [f"{name}{suffix}" for name in email_templates(sequence)
                                                     for suffix in TEMPLATE_SUFFIXES])
        self.check_sources_used(sms.templates_dir, [f"{s.template}.txt" for s in texts if s.template])
        self.check_stages(sequence, file, list(stages))

    def check_sources_used(self, directory: Path, names: list[str]) -> None:
        """Syntax and names of these template files and of every file they extend or include: a layout
        with an error breaks each email that uses it. (A missing file is reported by the step.)"""
        seen: set[str] = set()
        while names:
            name = names.pop()
            path = directory / name
            if name in seen or not path.is_file():
                continue
            seen.add(name)
            problems, referenced = self._source_check(path, email=directory == self.templates_dir)
            self.problems += problems
            names += referenced

    def _source_check(self, path: Path, email: bool) -> tuple[list[Problem], list[str]]:
        """One template file's problems and the files it names, remembered while the file is unchanged:
        every sequence shares the layout, and a process checks each sequence again when it is edited."""
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size, str(self.root), email)
        if key not in _SOURCE_CHECKS:
            before = len(self.problems)
            tree = self.check_source(path, path.read_text(encoding="utf-8"))
            if email:
                self.check_blocks(path)
            referenced = [n for n in jinja2.meta.find_referenced_templates(tree) if n] if tree else []
            if len(_SOURCE_CHECKS) > 1000:  # files come and go while a process runs for months
                _SOURCE_CHECKS.clear()
            _SOURCE_CHECKS[key] = (self.problems[before:], referenced)
            del self.problems[before:]
        problems, referenced = _SOURCE_CHECKS[key]
        return list(problems), list(referenced)

    def check_stages(self, sequence: Sequence, file: Path, stages: list[str]) -> None:
        for step in sequence.steps:
            if step.set_stage and step.set_stage not in stages:
                self.add(file, step.line_of("set_stage"),
                         f"step {step.id!r}: unknown stage {step.set_stage!r} (stages: {', '.join(stages)})")
        for trigger in sequence.triggers:
            if trigger.kind == "stage" and trigger.value not in stages:
                self.add(file, 1, f"trigger names unknown stage {trigger.value!r}")

    def check_email_step(self, sequence: Sequence, sequence_file: Path, step_index: int) -> None:
        step = sequence.steps[step_index]
        for offer in step.offers:  # each offer is a template and a subject of its own
            self.check_email_template(replace(step, template=offer.template, subject=offer.subject), sequence_file)
        if step.variants:  # each variant as it is sent, its problems on the variant's line
            for form in sent_forms(step):
                self.check_email_template(form, sequence_file)
        elif step.template:
            self.check_email_template(step, sequence_file)

    def check_email_template(self, step: Step, sequence_file: Path) -> None:
        missing = False
        for suffix in TEMPLATE_SUFFIXES:
            if not (self.templates_dir / f"{step.template}{suffix}").is_file():
                self.add(sequence_file, step.line_of("template"),
                         f"step {step.id!r}: unknown template {step.template!r} "
                         f"(no {shown_path(self.templates_dir / (step.template + suffix), self.root)})")
                missing = True
        for subject in [step.subject] + [text for _, text in step.subjects[1:]]:
            self.check_subject(sequence_file, step.line_of("subject"), step.id, subject)
        if not missing:
            for suffix in TEMPLATE_SUFFIXES:
                for locale in [None, *self.locales]:  # the layout alone may be a language's
                    self.check_compliance(f"{step.template}{suffix}", locale)

    def check_subject(self, path: Path, line: int, step_id: str, subject: str) -> None:
        try:
            tree = self.env.parse(subject)
        except jinja2.TemplateSyntaxError as exc:
            self.add(path, line, f"step {step_id!r}: subject: template syntax error: {exc.message}")
            return
        for name, _ in _names_used(tree):
            if name in jinja2.meta.find_undeclared_variables(tree) and name not in CONTEXT_NAMES:
                self.add(path, line, f"step {step_id!r}: subject: undefined template variable {name!r}")
        for dotted, _ in _bad_attributes(tree):
            self.add(path, line, f"step {step_id!r}: subject: undefined template variable {dotted!r}")

    def check_compliance(self, name: str, locale: str | None = None) -> None:
        """The flattened template (layout included) must show the unsubscribe link and postal address; for
        a `locale`, flattened as a contact in that language gets it: its localized files, the template's
        or only the layout's. A problem is shown at the language's own file of the template if it has one,
        else at the language's file along the way (its layout): the default template is not at fault."""
        chain = chain_of(locale)
        own = resolved(self.templates_dir, name, chain)
        read: Read = []
        try:
            tree = self.env.parse(flatten(name, loader(self.env, self.templates_dir, chain, read)))
        except jinja2.TemplateError as exc:
            self._chain_failed(exc, name, own, chain, read)
            return
        except OSError:
            return
        localized_files = [found for asked, found in read if asked != found]
        if locale and not localized_files:
            return  # nothing of this language in it: what the default check says
        path = self.templates_dir / (own if own != name or not locale else localized_files[0])
        used = {name for name, _ in _names_used(tree)}
        for variable, message in REQUIRED_IN_EMAIL.items():
            if variable not in used:
                self.add(path, 1, f"email template {message}")

    def _chain_failed(self, exc: jinja2.TemplateError, name: str, own: str, chain: tuple[str, ...],
                      read: Read) -> None:
        """A template that cannot be flattened: at its own file (its language's, if it has one), else at
        the language's layout file that breaks the chain. A syntax error is reported by check_source."""
        if chain and own == name:
            failure = chain_failure(exc, self.env, self.templates_dir, chain, read)
            if failure:
                self.add(self.templates_dir / failure.name, failure.line, failure.message)
            return
        path = self.templates_dir / own
        if isinstance(exc, jinja2.TemplateNotFound):
            self.add(path, 1, f"template {exc.name!r} not found (extended by {name})")
        elif isinstance(exc, ExtendsLoop):
            self.add(path, 1, loop_message(exc, self.templates_dir, chain))

    def check_layouts(self) -> None:
        """Every layout for every language (see nurture.content.layout_check), problems and warnings."""
        for finding in layout_findings(self.env, self.templates_dir, self.locales):
            path = self.templates_dir / finding.name
            if finding.error:
                self.add(path, finding.line, finding.message)
            else:
                self.warn(path, finding.line, finding.message)


def check_forms(forms_dir: Path, sequences: dict[str, Sequence], templates_dir: Path,
                root: Path) -> tuple[int, list[Problem]]:
    """Every form file (see nurture.content.forms), and what each refers to: sequences, lead magnet, welcome email."""
    forms, problems = load_forms(forms_dir, display_root=root)
    for form in forms.values():
        problems += cross_check(form, sequences, forms_dir, templates_dir)
    return len(forms), problems


@dataclass(frozen=True)
class TemplateCheck:
    """Where a sequence's templates live, and what problem paths are shown relative to: what the checks of
    one sequence (`check_sequence_file`) need besides the file itself."""

    templates_dir: Path
    sms_templates_dir: Path
    root: Path

    @classmethod
    def for_settings(cls, settings: Settings) -> TemplateCheck:
        # The project folder is the one holding sequences/: paths read as `nurture check` prints them.
        return cls(settings.templates_dir, settings.sms.templates_dir, settings.sequences_dir.parent)


@dataclass(frozen=True)
class SequenceFileCheck:
    sequence_id: str  # as far as it could be read; else the file's name
    sequence: Sequence | None  # only when there is no problem
    problems: list[Problem]


def check_sequence_file(file: Path, check: TemplateCheck, stages: Iterable[str]) -> SequenceFileCheck:
    """Everything `nurture check` says about one sequence file and the templates it uses. The sequence comes
    back only when there is no problem: the rule for which version of a file may run."""
    sequence, problems = parse_sequence(file.read_text(encoding="utf-8"), str(file), partial=True)
    checker = _Checker(file.parent, check.templates_dir, check.root)
    checker.add_all(problems)
    if sequence is not None:
        checker.check_sequence(sequence, file, SmsCheck(check.sms_templates_dir), stages)
    found = sorted(set(checker.problems))
    sequence_id = sequence.id if sequence is not None and sequence.id else file.stem
    return SequenceFileCheck(sequence_id, None if found else sequence, found)


def check_tree(sequences_dir: Path, templates_dir: Path, root: Path, forms_dir: Path | None = None,
               sms: SmsCheck | None = None) -> CheckResult:
    checker = _Checker(sequences_dir, templates_dir, root)
    sms = sms or SmsCheck(root / "sms_templates")
    sequences, problems = load_sequences(sequences_dir, display_root=root.resolve(), partial=True)
    checker.add_all(problems)
    if not sequences_dir.is_dir():
        checker.add(sequences_dir, 1, "sequences directory not found")
    templates = checker.check_template_files() if templates_dir.is_dir() else 0
    if templates_dir.is_dir():
        checker.check_layouts()
    templates += _check_sms_files(checker, sms)
    rules = _check_lifecycle(checker, sequences_dir, sequences)
    for sequence in sequences.values():
        checker.check_sequence(sequence, sequences_dir / Path(sequence.path).name, sms, rules.stages)
    check_locales(checker, sequences, sequences_dir, sms)
    forms, form_problems = check_forms(forms_dir, sequences, templates_dir, root) if forms_dir else (0, [])
    unique = sorted(set(checker.problems + form_problems), key=lambda p: (p.path, p.line, p.message))
    return CheckResult(problems=unique, sequences=len(sequences), steps=sum(len(s.steps) for s in sequences.values()),
                       templates=templates, forms=forms,
                       warnings=list(dict.fromkeys(checker.warnings)))  # in the order found, file by file


# --- languages ----------------------------------------------------------------------------------------------

def step_files(sequence: Sequence, templates_dir: Path, sms_dir: Path) -> Iterator[tuple[Step, Path]]:
    """Each sending step's default template files (an email's .html and .txt, a text's .txt)."""
    for step in sequence.steps:
        if not step.sends:
            continue
        if step.channel == "sms":
            yield step, sms_dir / f"{step.template}.txt"
            continue
        for template in [offer.template for offer in step.offers] + ([step.template] if step.template else []):
            for suffix in TEMPLATE_SUFFIXES:
                yield step, templates_dir / f"{template}{suffix}"


def check_locales(checker: _Checker, sequences: dict[str, Sequence], sequences_dir: Path, sms: SmsCheck) -> None:
    """A language with some but not all of a sequence's templates: a warning per missing file, at the step
    (contacts in that language get the default file there: a sequence that changes language midway)."""
    locales = template_locales(checker.templates_dir, sms.templates_dir)
    for path, tag in misnamed(checker.templates_dir, sms.templates_dir):
        checker.warn(path, 1, f"the language suffix is spelt {path.name.split('.')[-2]!r}: name it "
                              f"{tag!r} ({path.name.replace('.' + path.name.split('.')[-2] + '.', '.' + tag + '.')}) "
                              "or no contact gets this file")
    for sequence in sequences.values():
        file = sequences_dir / Path(sequence.path).name
        files = list(step_files(sequence, checker.templates_dir, sms.templates_dir))
        for locale in sorted(locales):
            present = [(step, path) for step, path in files
                       if path.with_name(localized_name(path.name, locale)).is_file()]
            if not present or len(present) == len(files):
                continue
            for step, path in files:
                if (step, path) in present:
                    continue
                missing = shown_path(path.with_name(localized_name(path.name, locale)), checker.root)
                checker.warn(file, step.line_of("template"),
                             f"step {step.id!r}: no {missing}: contacts in {locale!r} get the default "
                             f"{shown_path(path, checker.root)} ({len(present)} of {len(files)} files of "
                             f"{sequence.id!r} are in {locale!r})")
        for step in sequence.steps:
            given = dict(step.subjects)
            for locale in sorted(locales):
                localized = step.channel == "email" and step.template and (
                    checker.templates_dir / localized_name(f"{step.template}.html", locale)).is_file()
                if localized and given and locale not in given:
                    checker.warn(file, step.line_of("subject"), f"step {step.id!r}: a {locale!r} template but no "
                                                                f"{locale!r} subject (it gets {step.subject!r})")


# --- text templates (SMS) -----------------------------------------------------------------------------------

_JINJA_COMMENT = re.compile(r"{#.*?#}", re.S)


def _check_sms_files(checker: _Checker, sms: SmsCheck) -> int:
    """Syntax and names of every text template (errors), and what each will cost (warnings)."""
    files = sorted(sms.templates_dir.rglob("*.txt")) if sms.templates_dir.is_dir() else []
    env = make_text_environment(sms.templates_dir)
    for file in files:
        source = file.read_text(encoding="utf-8")
        if checker.check_source(file, source) is None:
            continue
        # Comments are never sent; blank them out but keep their line breaks so line numbers hold.
        sent = _JINJA_COMMENT.sub(lambda m: "\n" * m[0].count("\n"), source)
        for found in ucs2_characters(sent):
            checker.warn(file, found.line, f"{found} makes the text UCS-2: 70 characters a segment instead of "
                                           f"160, so it costs about double; {found.advice}")
        text = with_opt_out_notice(_sample_text(env, file.relative_to(sms.templates_dir), sent, sms), sms.brand)
        cost = segments(text)
        if cost.count > sms.max_segments:
            checker.warn(file, 1, f"{cost} for a sample contact, with the opt-out notice of a first text: "
                                  f"more than SMS_MAX_SEGMENTS ({sms.max_segments})")
    return len(files)


def _sample_text(env: jinja2.Environment, name: Path, source: str, sms: SmsCheck) -> str:
    """The template rendered for a made-up contact with longish names; its bare text if that fails (a
    field the sample lacks)."""
    link = f"{sms.base_url}/x/{'x' * 40}"
    context: dict[str, object] = {name: link for name in CONTEXT_NAMES}  # links, unless named below
    context |= {
        "contact": ContactView("Alexandra", "Richardson", "alexandra.richardson@example.com", "+15035550123",
                               "America/Los_Angeles", "customer", (), {}),
        "brand": BrandView(sms.brand, "hello@example.com", sms.base_url),
        "postal_address": "1200 Example Avenue, Springfield, OR 97477, USA",  # a made-up one of common length
        "sequence": SequenceView("sample", "Sample"),
        "step": StepView("sample", "educate"),
    }
    try:
        return env.get_template(name.as_posix()).render(context).strip()
    except Exception:  # any failure: estimate from the text around the tags instead
        return _JINJA_TAG.sub("", source).strip()


def _check_lifecycle(checker: _Checker, sequences_dir: Path, sequences: dict[str, Sequence]) -> Lifecycle:
    """The lifecycle rules file; returns the rules (the defaults when it has errors or is missing)."""
    path = sequences_dir / LIFECYCLE_FILE
    rules = Lifecycle()
    if path.is_file():
        rules, problems = parse_lifecycle(path.read_text(encoding="utf-8"), shown_path(path, checker.root))
        checker.problems += problems
        if rules.scoring.sequence and rules.scoring.sequence not in sequences:
            checker.add(path, 1, f"scoring.sequence names unknown sequence {rules.scoring.sequence!r}")
    return rules
