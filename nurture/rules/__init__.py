"""The rules: what a sequence is, what is due and when, what conditions and stages mean.

Pure: no database, no network, no templates, no clock. Every function is handed `now` and what it needs.
Imports nothing from the rest of nurture. See docs/architecture.md.
"""
