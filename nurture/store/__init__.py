"""The database: tables, migrations, the engine, and the queries the rest of nurture asks for by name.

Exactly-once is decided here: claims are conditional UPDATEs and delivery rows are unique per
enrollment × step × channel. Imports only the rules and the settings.
"""
