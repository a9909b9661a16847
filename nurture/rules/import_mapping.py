"""Which CSV column goes where in a contact: the mapping of an import, guessed from the header or given.

Pure: headers in, a mapping out; a row in, the values by target out. The checking of the values
themselves (an address, a number, a timezone) is people.contacts' job.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

IGNORE = "ignore"
FIELD_PREFIX = "fields."
# What a column may become. `tags` splits at commas and semicolons; `fields.NAME` is a custom field.
TARGETS = ("email", "phone", "first_name", "last_name", "timezone", "locale", "tags", "stage")
FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")  # usable in a template as contact.fields.NAME
# Header spellings seen in exports of other tools, reduced by `_key` (lower case, letters and digits only).
SYNONYMS = {
    "email": "email", "emailaddress": "email", "mail": "email", "email1": "email",
    "phone": "phone", "phonenumber": "phone", "mobile": "phone", "mobilephone": "phone", "cell": "phone",
    "sms": "phone", "tel": "phone", "telephone": "phone",
    "firstname": "first_name", "first": "first_name", "givenname": "first_name", "fname": "first_name",
    "lastname": "last_name", "last": "last_name", "surname": "last_name", "familyname": "last_name",
    "lname": "last_name",
    "timezone": "timezone", "tz": "timezone", "timezoneiana": "timezone",
    "locale": "locale", "language": "locale", "lang": "locale", "languagecode": "locale",
    "tags": "tags", "tag": "tags", "labels": "tags",
    "stage": "stage", "lifecyclestage": "stage",
}


class BadMapping(ValueError):
    """A mapping that cannot be used: an unknown column or target, or no email column."""


@dataclass(frozen=True)
class ColumnMapping:
    """Column index -> target, for the columns that are used (ignored ones are left out)."""

    headers: tuple[str, ...]
    targets: dict[int, str]

    def target_of(self, index: int) -> str:
        return self.targets.get(index, IGNORE)

    def values(self, row: Sequence[str]) -> dict[str, str]:
        """The row's values by target; a custom field's target keeps its `fields.` prefix. Missing cells
        (a short row) are empty."""
        return {target: (row[i].strip() if i < len(row) else "") for i, target in self.targets.items()}


def check_target(target: str) -> str:
    """`target` as used, or BadMapping saying what is allowed."""
    target = target.strip()
    if target in TARGETS or target == IGNORE:
        return target
    if target.startswith(FIELD_PREFIX) and FIELD_NAME.match(target[len(FIELD_PREFIX):]):
        return target
    raise BadMapping(f"{target!r} is not a target: use one of {', '.join(TARGETS)}, fields.NAME (letters, "
                     f"digits, _) or {IGNORE}")


def guess(headers: Sequence[str]) -> dict[int, str]:
    """What each header most likely means: a known spelling of a target, else a custom field of its own
    name, else ignored. Each target is guessed for one column at most (the first)."""
    guessed: dict[int, str] = {}
    taken: set[str] = set()
    for index, header in enumerate(headers):
        target = SYNONYMS.get(_key(header)) or custom_field(header) or IGNORE
        if target != IGNORE and target not in taken:
            guessed[index] = target
            taken.add(target)
    return guessed


def custom_field(header: str) -> str | None:
    """The custom field a column would be by its header ('Company name' -> fields.company_name), or None
    when the header has nothing usable in a name."""
    name = re.sub(r"[^A-Za-z0-9_]+", "_", header.strip()).strip("_").lower()[:64]
    return FIELD_PREFIX + name if name and FIELD_NAME.match(name) else None


def build(headers: Sequence[str], chosen: Mapping[str, str] | None = None, guessed: bool = True) -> ColumnMapping:
    """The mapping for `headers`: `chosen` (header -> target) where given, the guess for the other columns
    when `guessed`, else ignored. Raises BadMapping for an unknown header or target, a target given to two
    columns, or no email column."""
    chosen = dict(chosen or {})
    index_of = {h.strip(): i for i, h in reversed(list(enumerate(headers)))}
    unknown = [h for h in chosen if h.strip() not in index_of]
    if unknown:
        raise BadMapping(f"no column {unknown[0]!r} in the file (its columns: {', '.join(headers)})")
    targets = guess(headers) if guessed else {}
    for header, target in chosen.items():
        targets[index_of[header.strip()]] = target
    return by_index(headers, targets)


def by_index(headers: Sequence[str], targets: Mapping[int, str]) -> ColumnMapping:
    """The mapping of column index -> target (the console's form names columns by place: two columns may
    share a header). Raises BadMapping as `build` does."""
    checked = {i: check_target(t) for i, t in targets.items() if 0 <= i < len(headers)}
    checked = {i: t for i, t in checked.items() if t != IGNORE}
    _check_unique(checked, headers)
    if "email" not in checked.values():
        raise BadMapping("no column is mapped to email (map one: --map 'E-mail=email')")
    return ColumnMapping(tuple(headers), dict(sorted(checked.items())))


def _check_unique(targets: dict[int, str], headers: Sequence[str]) -> None:
    seen: dict[str, int] = {}
    for index, target in sorted(targets.items()):
        if target in seen:
            raise BadMapping(f"columns {headers[seen[target]]!r} and {headers[index]!r} are both mapped to {target}")
        seen[target] = index


def parse_pairs(specs: Iterable[str]) -> dict[str, str]:
    """`--map` values: 'Column=target' pairs, several per value when separated by commas. A column whose
    name holds a comma or an equals sign is given in a value of its own: the last '=' separates."""
    pairs: dict[str, str] = {}
    for spec in specs:
        parts = [spec] if spec.count("=") == 1 else spec.split(",")
        for part in parts:
            if not part.strip():
                continue
            header, sep, target = part.rpartition("=")
            if not sep or not header.strip():
                raise BadMapping(f"{part!r}: give the mapping as COLUMN=TARGET, e.g. 'E-mail=email'")
            pairs[header.strip()] = target.strip()
    return pairs


def split_tags(raw: str) -> tuple[str, ...]:
    """A tags cell: 'vip, wheel; newsletter' -> ('vip', 'wheel', 'newsletter')."""
    return tuple(t.strip() for t in re.split(r"[,;|]", raw) if t.strip())


def _key(header: str) -> str:
    return re.sub(r"[^a-z0-9]", "", header.lower())
