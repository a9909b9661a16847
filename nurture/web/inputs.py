"""What arrives over HTTP, checked before anything reaches the database: a bad value is a 4xx naming its
field, never a 500 from the driver.

Strings are checked where they are stored (nurture.people.contacts.check_text and check_json); this module
holds what only the web edge sees: JSON as it is parsed, and ids given in a request body.
"""

from __future__ import annotations

import json
from typing import Any

from flask.json.provider import DefaultJSONProvider

# Every id column is INTEGER: 32 bits on PostgreSQL, 64 on SQLite. The smaller range is the one that holds
# on both; a larger id names no row, and PostgreSQL would answer it with NumericValueOutOfRange.
MAX_ID = 2**31 - 1


def is_db_id(value: object) -> bool:
    """A positive id the database can hold. `True` is an int to Python, and no id to anyone else."""
    return type(value) is int and 1 <= value <= MAX_ID


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):  # 1e999 parses as infinity, which no JSON column can store
        raise ValueError(f"{text} is out of range")
    return value


class StrictJSONProvider(DefaultJSONProvider):
    """Request bodies parsed as RFC 8259 JSON: NaN, Infinity and numbers beyond a float are refused (Python
    takes them, PostgreSQL's json type does not), and nesting deep enough to exhaust the parser's recursion
    is a parse error, so `get_json(silent=True)` answers None and the view a 400, instead of a 500."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return json.loads(s, parse_constant=_refuse_constant, parse_float=_finite_float, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None
