#!/bin/sh
# Re-extract nurture's own words, merge them into every language's catalog, and compile the catalogs.
# Run from the repository root after changing a message; then translate what `msgfmt`-style stats show as
# untranslated (tests/test_locales.py fails until every message is).
set -e
BIN=${BIN:-.venv/bin}
"$BIN/pybabel" extract -F nurture/translations/babel.cfg -k translate:2 -k Words -k detailed \
  --no-location --sort-output --omit-header -o nurture/translations/messages.pot .
"$BIN/pybabel" update -i nurture/translations/messages.pot -d nurture/translations --no-fuzzy-matching
"$BIN/pybabel" compile -d nurture/translations --statistics
