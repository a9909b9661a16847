"""Content files: sequences, the lifecycle file, signup forms and templates → checked models.

Errors come out as `path:line: message` problems, never as exceptions mid-load. Rendering (Jinja, CSS
inlined once per template version) and building MIME messages live here too. Imports only the rules and
the settings; never the store.
"""
