"""The profile store: every table, every query, the identity graph. SQL lives only here."""
