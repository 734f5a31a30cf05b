"""Segments (nlp.segment) in the profile store: compiled to one SQL query (`sql`), evaluated for
one person in memory (`memory`), over profiles as of any date (`asof`)."""
