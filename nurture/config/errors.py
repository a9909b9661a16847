"""`ConfigError`, and how pydantic's validation errors become one line that names the variable."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


class ConfigError(ValueError):
    """A configuration variable has a value nurture cannot use. The message starts with the variable's name."""


SECRETS = ("SECRET_KEY", "API_KEY")

# pydantic's wording for the generic checks, said the way an operator editing an environment reads it.
_PHRASES = {
    "int_parsing": "expected a whole number, got {input!r}",
    "int_from_float": "expected a whole number, got {input!r}",
    "float_parsing": "expected a number, got {input!r}",
    "bool_parsing": "expected true or false, got {input!r}",
    "greater_than_equal": "must be at least {ge}, got {input}",
    "greater_than": "must be more than {gt}, got {input!r}",
    "less_than": "must be less than {lt}, got {input!r}",
    "string_too_short": "must be at least {min_length} characters",
    "string_pattern_mismatch": "does not have the expected form, got {input!r}",
}


def variable_of(loc: tuple[int | str, ...]) -> str:
    """Fields are aliased by their variable (`SMS_HOURS`); nested models add their own field name first."""
    names = [part for part in loc if isinstance(part, str) and part.isupper()]
    return names[-1] if names else ".".join(map(str, loc))


def describe(error: Any) -> str:
    """One pydantic error as `NAME: what is wrong`."""
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, ConfigError):  # a rule across variables: its message names the variable itself
        return str(cause)
    name = variable_of(error["loc"])
    if cause is not None:
        return f"{name}: {cause}"
    phrase = _PHRASES.get(error["type"])
    if phrase is None:
        return f"{name}: {error['msg']}, got {error.get('input')!r}"
    return f"{name}: " + phrase.format(input=error.get("input"), **(error.get("ctx") or {}))


def from_validation(exc: ValidationError) -> ConfigError:
    """The first problem, in the order the variables are declared: start-up stops on one clear line."""
    return ConfigError(describe(exc.errors()[0]))
