"""Write nurture/rules/us_area_states.py (to stdout) from phonenumbers' geocoding data:

    .venv/bin/python tests/gen_us_area_states.py > nurture/rules/us_area_states.py
"""
import sys
import textwrap
from pathlib import Path

import phonenumbers
from phonenumbers.geodata import GEOCODE_DATA
from phonenumbers.prefix import _find_lang

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from nurture.rules.sms import _STATE_CODES, US_STATES


def state_of(place: str) -> str:
    state = US_STATES.get(place) or place.rpartition(", ")[2]
    return state if state in _STATE_CODES else ""

full = {}
for key, names in GEOCODE_DATA.items():
    if key.startswith("1"):
        name = _find_lang(names, "en", None, None)
        if name is not None:
            full[key] = state_of(name)

def lookup(table, digits):
    for n in range(len(digits), 0, -1):
        if digits[:n] in table:
            return table[digits[:n]]
    return ""

pruned = {}
for key in sorted(full, key=lambda k: (len(k), k)):
    if lookup(pruned, key[:-1]) != full[key]:
        pruned[key] = full[key]
# check equivalence on every key
for key in full:
    assert lookup(pruned, key) == full[key], key
print(len(full), "->", len(pruned), file=sys.stderr)
by_state = {}
for key in sorted(pruned):
    by_state.setdefault(pruned[key], []).append(key[1:])
lines = []
for state in sorted(by_state):
    keys = " ".join(by_state[state])

    wrapped = textwrap.wrap(keys, 100)
    body = "".join(f'        "{w} "\n' for w in wrapped[:-1])
    lines.append(f'    "{state}": (\n' + body + f'        "{wrapped[-1]}"\n    ),')
print(f'''"""US states by telephone prefix, for SMS sending windows (nurture.rules.sms.regions_of).

Generated from phonenumbers {phonenumbers.__version__} (its geocoding data, English names) by
tests/gen_us_area_states.py:
the longest prefix of a number's digits after the country code 1 found here names its state ("" for a
prefix that names none, such as a Canadian or Caribbean one, or a name phonenumbers gives that is not a
state). Only prefixes whose state differs from their shorter prefix's are kept. Why not phonenumbers'
geocoder itself: importing it loads its data for every country and language, ~100 MB in every process that
might text (the worker, the web app).
tests/test_sms.py holds this table to the geocoder for every US prefix it knows.
"""

from __future__ import annotations

# state -> the prefixes (area code, or area code and exchange), space-separated
_PREFIXES: dict[str, str] = {{
''' + "\n".join(lines) + '''
}

PREFIX_STATES: dict[str, str] = {prefix: state for state, prefixes in _PREFIXES.items() for prefix in prefixes.split()}
LONGEST = max(map(len, PREFIX_STATES))


def state_for(national_number: str) -> str:
    """The US state of a NANP number's national digits (10 of them), or "" when the data names none."""
    for length in range(min(LONGEST, len(national_number)), 0, -1):
        state = PREFIX_STATES.get(national_number[:length])
        if state is not None:
            return state
    return ""
''')
